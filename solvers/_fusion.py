"""Values that XLA computes once.

XLA's CPU compiler fuses elementwise operations into loops and, to do so, copies a
cheap producer (additions and multiplications: a Runge–Kutta stage, a sample of the
dense output) into every loop that reads it. For a plain step this is the fastest
code — the stages never leave the registers — but when many loops read the same
values (the dense output sampled by running reductions, saved or tested for an
event) the recomputation multiplies: a step's stages were computed again for every
sample, component and consumer.

XLA does not copy an expensive operation, a division, into several consumers.
`computed_once` divides each value by a one computed from the value itself
(`x / (NaN if x is NaN else 1)`, the identity for every float, infinities
included), which XLA cannot fold away: it computes the values once and keeps them
in memory, bit for bit unchanged.
"""

from __future__ import annotations

import jax.numpy as jnp
import jax.tree_util as jtu
from jaxtyping import Array, PyTree


def computed_once(tree: PyTree[Array]) -> PyTree[Array]:
    """`tree`, the same numbers, computed once by XLA instead of inside every loop
    that reads them (module doc)."""

    def leaf(x):
        x = jnp.asarray(x)
        if not jnp.issubdtype(x.dtype, jnp.inexact):
            return x
        return x / jnp.where(jnp.isnan(x), jnp.nan, 1.0).astype(x.dtype)

    return jtu.tree_map(leaf, tree)
