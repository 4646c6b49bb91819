"""Population models with tipping points."""

from __future__ import annotations

from typing import ClassVar

import jax.numpy as jnp
from jaxtyping import Array, Float

from ._base import AbstractModel, param


class MayHarvesting(AbstractModel):
    """May (1977) grazing model: x' = r x (1 − x/k) − h x² / (s² + x²).

    For k = 10, s = 1, r = 1 the high-biomass state disappears in a fold near h ≈ 2.60:
    the standard test bed for critical slowing down (Scheffer et al., Nature 2009).
    """

    r: Float[Array, ""] = param(1.0)
    k: Float[Array, ""] = param(10.0)
    h: Float[Array, ""] = param(1.0)
    s: Float[Array, ""] = param(1.0)
    state_names: ClassVar[tuple[str, ...]] = ("x",)

    def vector_field(self, t, y, args):
        return self.r * y * (1.0 - y / self.k) - self.h * y**2 / (self.s**2 + y**2)

    def initial_state(self):
        return jnp.array([8.0])
