"""Normal forms of the codimension-one bifurcations (Kuznetsov, *Elements of Applied
Bifurcation Theory*, 3rd ed., §3)."""

from __future__ import annotations

from typing import ClassVar

import jax.numpy as jnp
from jaxtyping import Array, Float

from ._base import AbstractModel, param


class HopfNormalForm(AbstractModel):
    """ż = (μ + iω) z + (a + ib) |z|² z, written in x = Re z, y = Im z.

    In polar form r' = μ r + a r³, θ' = ω + b r². For a < 0 the Hopf point μ = 0 is
    supercritical and the limit cycle for μ > 0 has radius √(−μ/a) and period
    2π/(ω + b r²); its nontrivial Floquet multiplier is exp(−2μ T).
    """

    mu: Float[Array, ""] = param(0.1)
    omega: Float[Array, ""] = param(1.0)
    a: Float[Array, ""] = param(-1.0)
    b: Float[Array, ""] = param(0.0)
    state_names: ClassVar[tuple[str, ...]] = ("x", "y")

    def vector_field(self, t, y, args):
        x, yy = y
        r2 = x**2 + yy**2
        return jnp.stack(
            [
                self.mu * x - self.omega * yy + (self.a * x - self.b * yy) * r2,
                self.omega * x + self.mu * yy + (self.b * x + self.a * yy) * r2,
            ]
        )

    def initial_state(self):
        return jnp.array([0.1, 0.0])


class PitchforkNormalForm(AbstractModel):
    """ȧ = r a − c a³: pitchfork at r = 0 (supercritical for c > 0).

    Closed form from a(0) = a₀: a² = r a₀² e^{2rt} / (r + c a₀² (e^{2rt} − 1)).
    """

    r: Float[Array, ""] = param(1.0)
    c: Float[Array, ""] = param(1.0)
    state_names: ClassVar[tuple[str, ...]] = ("a",)

    def vector_field(self, t, y, args):
        return self.r * y - self.c * y**3

    def initial_state(self):
        return jnp.array([0.01])
