"""The well-mixed (D → ∞) limit of the cell–bulk model (docs/models.md §1)."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._base import AbstractModel, param
from ._single import kinetics


class SelkovWellMixed(AbstractModel):
    """m Sel'kov cells exchanging species v with a well-mixed bulk of area |Ω|:

    dŪ/dt = −Ū/τ − (2π/(τ|Ω|)) Σⱼ (d₁ⱼ Ū − d₂ⱼ vⱼ),
    dvⱼ/dt = F₁(vⱼ, wⱼ) + (2π/τ)(d₁ⱼ Ū − d₂ⱼ vⱼ),   dwⱼ/dt = F₂(vⱼ, wⱼ).

    State: `[Ū, v₀ … v_{m−1}, w₀ … w_{m−1}]`. Cell parameters (α, μ, ζ, d₁, d₂) are
    scalars (identical cells) or arrays of length m. For identical cells the steady
    state is v = μ/χ_eff, χ_eff = 1 + (2πd₂/τ)|Ω|/(|Ω| + 2πm d₁), w = μ/(α + v²),
    Ū = 2πm d₂ v/(|Ω| + 2πm d₁); `steady_state` solves the general (linear) case.
    Defaults: the paper's baseline set and the unit disk's area π.
    """

    n_cells: int = eqx.field(static=True)
    tau: Float[Array, ""] = param(1.0)
    d1: Float[Array, "*cells"] = param(0.8)
    d2: Float[Array, "*cells"] = param(0.2)
    area: Float[Array, ""] = param(jnp.pi)
    alpha: Float[Array, "*cells"] = param(0.9)
    mu: Float[Array, "*cells"] = param(2.0)
    zeta: Float[Array, "*cells"] = param(0.15)

    def __check_init__(self):
        if self.n_cells < 1:
            raise ValueError(f"n_cells must be >= 1, got {self.n_cells}")
        for name in ("d1", "d2", "alpha", "mu", "zeta"):
            shape = jnp.shape(getattr(self, name))
            if shape not in ((), (self.n_cells,)):
                raise ValueError(
                    f"{name} must be a scalar or have one value per cell "
                    f"({self.n_cells}), got shape {shape}"
                )

    @property
    def state_names(self) -> tuple[str, ...]:
        m = self.n_cells
        return (
            ("U",) + tuple(f"v{j}" for j in range(m)) + tuple(f"w{j}" for j in range(m))
        )

    def _cells(self, name: str) -> Array:
        return jnp.broadcast_to(getattr(self, name), (self.n_cells,))

    def vector_field(self, t, y, args):
        m = self.n_cells
        u, v, w = y[0], y[1 : m + 1], y[m + 1 :]
        d1, d2 = self._cells("d1"), self._cells("d2")
        flux = d1 * u - d2 * v  # into each cell, per unit 2π/τ
        f1, f2 = kinetics(v, w, self.alpha, self.mu, self.zeta)
        du = -u / self.tau - 2.0 * jnp.pi / (self.tau * self.area) * jnp.sum(flux)
        dv = f1 + 2.0 * jnp.pi / self.tau * flux
        return jnp.concatenate([du[None], dv, f2])

    def steady_state(self) -> Float[Array, " state"]:
        """The equilibrium. With F₂ = 0 (α w + w v² = μ) the remaining equations are
        linear in (Ū, v): μ − v + (2π/τ)(d₁Ū − d₂v) = 0 and the bulk balance."""
        m = self.n_cells
        d1, d2 = self._cells("d1"), self._cells("d2")
        mu, alpha = self._cells("mu"), self._cells("alpha")
        k = 2.0 * jnp.pi / self.tau
        a = jnp.zeros((m + 1, m + 1))
        # Bulk: −Ū − (2π/|Ω|) Σ (d₁Ū − d₂v) = 0.
        a = a.at[0, 0].set(-1.0 - 2.0 * jnp.pi / self.area * jnp.sum(d1))
        a = a.at[0, 1:].set(2.0 * jnp.pi / self.area * d2)
        # Cells: −v − k d₂ v + k d₁ Ū = −μ.
        a = a.at[1:, 0].set(k * d1)
        a = a.at[1:, 1:].set(jnp.diag(-1.0 - k * d2))
        rhs = jnp.concatenate([jnp.zeros(1), -mu])
        sol = jnp.linalg.solve(a, rhs)
        v = sol[1:]
        return jnp.concatenate([sol[:1], v, mu / (alpha + v**2)])

    def initial_state(self):
        # The steady state with the cells' v perturbed unevenly (so that both in-phase
        # and anti-phase modes are excited).
        y = self.steady_state()
        m = self.n_cells
        bump = 1.0 + 0.05 * (1.0 + jnp.arange(m)) / m
        return y.at[1 : m + 1].multiply(bump)
