"""Iterating discrete-time maps: `lax.scan`, one step per iterate."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import jax.tree_util as jtu
from jaxtyping import Array, PyTree

from ._reduce import (
    AbstractReduction,
    Segment,
    _flat,
    finish_reductions,
    init_reductions,
    update_reductions,
)
from ._solution import Solution
from ._status import Status


def iterate_map(
    step: Callable[[Any, PyTree, Any], PyTree],
    y0: PyTree[Array],
    n: int,
    args: Any = None,
    *,
    save_every: int = 1,
    n0: int = 0,
    reductions: tuple[AbstractReduction, ...] = (),
) -> Solution:
    """Iterate y_{k+1} = step(k, y_k, args) for k = n0 … n0 + n − 1.

    **Arguments:** `step`, `y0`, `args`; `n` iterates; `save_every`: keep every
    `save_every`-th iterate (`n` must be a multiple), 0 keeps only the last; `n0` the
    first index; `reductions`: running reductions folded over every iterate (their
    values are `Solution.reductions`).

    **Returns:** a `Solution` whose `ts` are iterate indices (as floats) and whose
    status is `NONFINITE` if the orbit escaped to infinity.
    """
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"the number of iterates must be an int >= 0, got {n!r}")
    if save_every < 0 or (save_every and n % save_every):
        raise ValueError(
            f"save_every={save_every} must be 0 or divide the number of iterates {n}"
        )

    dtype = jnp.result_type(float)

    def one(state, k):
        y, carries = state
        y1 = step(k, y, args)
        if reductions:
            t = k.astype(dtype)
            segment = Segment(t, t + 1, _flat(y), _flat(y1), None)
            carries = update_reductions(reductions, carries, segment)
        return (y1, carries), None

    def block(state, k0):
        ks = k0 + jnp.arange(save_every)
        state, _ = jax.lax.scan(one, state, ks)
        return state, state[0]

    carries0 = init_reductions(reductions, float(n0), y0, discrete=True)
    if save_every == 0:
        (y, carries), _ = jax.lax.scan(one, (y0, carries0), n0 + jnp.arange(n))
        ys = jtu.tree_map(lambda a: a[None], y)
        ts = jnp.array([float(n0 + n)])
    else:
        starts = n0 + save_every * jnp.arange(n // save_every)
        (_, carries), ys = jax.lax.scan(block, (y0, carries0), starts)
        ts = (starts + save_every).astype(dtype)
    finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(a)) for a in jtu.tree_leaves(ys)]))
    status = jnp.where(finite, Status.SUCCESS, Status.NONFINITE).astype(jnp.int32)
    steps = jnp.asarray(n)
    stats = {
        "num_steps": steps,
        "num_accepted_steps": steps,
        "num_rejected_steps": jnp.asarray(0),
    }
    values = finish_reductions(reductions, carries)
    return Solution(ts, ys, status, stats, None, values)
