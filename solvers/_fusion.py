"""Values that XLA computes once.

XLA's CPU compiler fuses elementwise operations into loops and, to do so, copies a
cheap producer (additions and multiplications: a Runge–Kutta stage, a sample of the
dense output) into every loop that reads it. For a plain step this is the fastest
code — the stages never leave the registers — but when many loops read the same
values (the dense output sampled by running reductions, saved or tested for an
event) the recomputation multiplies: a step's stages were computed once per sample,
per component and per consumer.

XLA does not copy an expensive operation, a division, into several consumers.
Dividing by a run-time one therefore makes it compute the values once and keep them
in memory, bit for bit unchanged.
"""

from __future__ import annotations

import jax.numpy as jnp
import jax.tree_util as jtu
from jaxtyping import Array, ArrayLike, PyTree


def run_time_one(t: ArrayLike) -> Array:
    """Exactly 1 for any time `t` that is not NaN (NaN for a NaN time, where every
    value of the step is NaN already) — a one that XLA cannot fold away."""
    t = jnp.asarray(t)
    return jnp.where(jnp.isnan(t), jnp.nan, 1.0).astype(t.dtype)


def computed_once(tree: PyTree[Array], one: Array) -> PyTree[Array]:
    """`tree`'s floating-point leaves divided by `one` (`run_time_one`): the same
    numbers, computed once by XLA instead of inside every loop that reads them."""

    def leaf(x):
        x = jnp.asarray(x)
        if not jnp.issubdtype(x.dtype, jnp.inexact):
            return x
        return x / one.astype(x.dtype)

    return jtu.tree_map(leaf, tree)
