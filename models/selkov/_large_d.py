"""The large-D ODE–DAE limit of the cell–bulk model (paper's Prop. 2;
docs/models.md §1)."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._base import AbstractModel, param
from ._disk import AREA, neumann_green_matrix
from ._single import kinetics


def _as_centers(centers) -> tuple[tuple[float, float], ...]:
    out = tuple((float(x), float(y)) for x, y in centers)
    if not out:
        raise ValueError("at least one cell centre is needed")
    for x, y in out:
        if x * x + y * y >= 1.0:
            raise ValueError(f"cell centre ({x}, {y}) is not inside the unit disk")
    return out


class SelkovLargeD(AbstractModel):
    """m Sel'kov cells of radius ε in the unit disk, bulk diffusivity D = D₀/ν large
    (ν = −1/log ε), the bulk reduced to its average Ū:

    dŪ/dt = −Ū/τ − (2πD₀/(τ|Ω|)) Σⱼ bⱼ,   duⱼ/dt = F(uⱼ) + (2πD₀/τ) bⱼ e₁,
    (I + D₀P₁ + 2πν𝒢₀) b = Ū e − P₂ v,   P₁ = diag(1/d₁ⱼ), P₂ = diag(d₂ⱼ/d₁ⱼ),

    with 𝒢₀ the Neumann Green's matrix of the unit disk (closed form). The algebraic
    constraint is solved at every evaluation (an m×m system), so this is an ODE.
    State: `[Ū, v₀ … v_{m−1}, w₀ … w_{m−1}]`.
    """

    centers: tuple[tuple[float, float], ...] = eqx.field(
        static=True, converter=_as_centers
    )
    D: Float[Array, ""] = param(1.0)
    tau: Float[Array, ""] = param(1.0)
    eps: Float[Array, ""] = param(0.05)
    d1: Float[Array, "*cells"] = param(0.8)
    d2: Float[Array, "*cells"] = param(0.2)
    alpha: Float[Array, "*cells"] = param(0.9)
    mu: Float[Array, "*cells"] = param(2.0)
    zeta: Float[Array, "*cells"] = param(0.15)

    @property
    def n_cells(self) -> int:
        return len(self.centers)

    @property
    def state_names(self) -> tuple[str, ...]:
        m = self.n_cells
        return (
            ("U",) + tuple(f"v{j}" for j in range(m)) + tuple(f"w{j}" for j in range(m))
        )

    def _cells(self, name: str) -> Array:
        return jnp.broadcast_to(getattr(self, name), (self.n_cells,))

    def _fluxes(self, u: Array, v: Array) -> tuple[Array, Array]:
        """(D₀, b) from the algebraic constraint."""
        nu = -1.0 / jnp.log(self.eps)
        d0 = self.D * nu
        d1, d2 = self._cells("d1"), self._cells("d2")
        green = neumann_green_matrix(jnp.asarray(self.centers))
        a = jnp.eye(self.n_cells) + jnp.diag(d0 / d1) + 2 * jnp.pi * nu * green
        return d0, jnp.linalg.solve(a, u - d2 / d1 * v)

    def vector_field(self, t, y, args):
        m = self.n_cells
        u, v, w = y[0], y[1 : m + 1], y[m + 1 :]
        d0, b = self._fluxes(u, v)
        f1, f2 = kinetics(v, w, self.alpha, self.mu, self.zeta)
        k = 2 * jnp.pi * d0 / self.tau
        du = -u / self.tau - k / AREA * jnp.sum(b)
        return jnp.concatenate([du[None], f1 + k * b, f2])

    def steady_state(self) -> Float[Array, " state"]:
        """The equilibrium: with F₂ = 0, F₁ = μ − v, so (Ū, v, b) solve a linear
        system."""
        m = self.n_cells
        nu = -1.0 / jnp.log(self.eps)
        d0 = self.D * nu
        d1, d2 = self._cells("d1"), self._cells("d2")
        mu, alpha = self._cells("mu"), self._cells("alpha")
        green = neumann_green_matrix(jnp.asarray(self.centers))
        a_mat = jnp.eye(m) + jnp.diag(d0 / d1) + 2 * jnp.pi * nu * green
        k = 2 * jnp.pi * d0 / self.tau
        # Unknowns (Ū, v, b):  −Ū/τ − (k/|Ω|) Σb = 0;  μ − v + k b = 0;
        #                      A b − Ū e + P₂ v = 0.
        n = 1 + 2 * m
        lhs = jnp.zeros((n, n))
        lhs = lhs.at[0, 0].set(-1.0 / self.tau).at[0, 1 + m :].set(-k / AREA)
        lhs = lhs.at[1 : 1 + m, 1 : 1 + m].set(-jnp.eye(m))
        lhs = lhs.at[1 : 1 + m, 1 + m :].set(k * jnp.eye(m))
        lhs = lhs.at[1 + m :, 0].set(-1.0)
        lhs = lhs.at[1 + m :, 1 : 1 + m].set(jnp.diag(d2 / d1))
        lhs = lhs.at[1 + m :, 1 + m :].set(a_mat)
        rhs = jnp.concatenate([jnp.zeros(1), -mu, jnp.zeros(m)])
        sol = jnp.linalg.solve(lhs, rhs)
        v = sol[1 : 1 + m]
        return jnp.concatenate([sol[:1], v, mu / (alpha + v**2)])

    def initial_state(self):
        y = self.steady_state()
        m = self.n_cells
        bump = 1.0 + 0.05 * (1.0 + jnp.arange(m)) / m
        return y.at[1 : m + 1].multiply(bump)
