"""Sel'kov glycolysis kinetics in the paper's form (Iyaniwura & Ward, SIAM J. Appl. Dyn.
Syst. 20(1), 2021, arXiv 2007.08765; docs/models.md §1)."""

from __future__ import annotations

from typing import ClassVar

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from .._base import AbstractModel, param


def kinetics(v, w, alpha, mu, zeta) -> tuple[Array, Array]:
    """The paper's reaction terms, elementwise: F₁ = α w + w v² − v,
    F₂ = ζ [μ − (α w + w v²)]."""
    production = alpha * w + w * v**2
    return production - v, zeta * (mu - production)


def kinetics_jacobian(v, w, alpha, mu, zeta) -> Array:
    """∂(F₁, F₂)/∂(v, w), shape (..., 2, 2), at (v, w) elementwise."""
    dv = 2.0 * w * v
    dw = alpha + v**2
    return jnp.stack(
        [jnp.stack([dv - 1.0, dw], -1), jnp.stack([-zeta * dv, -zeta * dw], -1)], -2
    )


class Selkov(AbstractModel):
    """One Sel'kov cell, optionally losing species v across its membrane.

    v' = α w + w v² − v − k v,   w' = ζ [μ − (α w + w v²)],

    with efflux rate k = 2π d₂/τ (k = 0: the isolated cell). With ζ = 1, k = 0 this is
    the textbook model x' = −x + a y + x² y, y' = b − a y − x² y (Strogatz §7.3).

    Closed forms (with χ = 1 + k): steady state v = μ/χ, w = μ/(α + v²); the trace of
    the Jacobian vanishes (a Hopf bifurcation, the determinant ζ χ (α + v²) being
    positive) at α_H(μ) = −μ²/χ² + [−χ + √(χ² + 8 ζ μ²/χ)] / (2ζ), and the steady
    state is unstable (the cell oscillates) for α < α_H.
    """

    alpha: Float[Array, "*cells"] = param(0.9)
    mu: Float[Array, "*cells"] = param(2.0)
    zeta: Float[Array, "*cells"] = param(0.15)
    efflux: Float[Array, "*cells"] = param(0.0)
    state_names: ClassVar[tuple[str, ...]] = ("v", "w")

    def kinetics(self, v: ArrayLike, w: ArrayLike) -> tuple[Array, Array]:
        """The reaction terms F₁, F₂ of the paper (no efflux), elementwise in v, w."""
        return kinetics(v, w, self.alpha, self.mu, self.zeta)

    def vector_field(self, t, y, args):
        v, w = y
        f1, f2 = self.kinetics(v, w)
        return jnp.stack([f1 - self.efflux * v, f2])

    def steady_state(self) -> Float[Array, "2"]:
        """The unique equilibrium (v, w) = (μ/χ, μ/(α + v²))."""
        v = self.mu / (1.0 + self.efflux)
        return jnp.stack([v, self.mu / (self.alpha + v**2)])

    def hopf_alpha(self, mu: ArrayLike | None = None) -> Array:
        """α at the Hopf bifurcation for the given μ (the model's own μ by default)."""
        mu = self.mu if mu is None else jnp.asarray(mu)
        chi = 1.0 + self.efflux
        root = jnp.sqrt(chi**2 + 8.0 * self.zeta * mu**2 / chi)
        s = (root - chi) / (2.0 * self.zeta)
        return s - mu**2 / chi**2

    def analytic_curves(self, x, y, y_values):
        if (x, y) == ("alpha", "mu"):
            mu = jnp.asarray(y_values)
            return {"Hopf (closed form)": (self.hopf_alpha(mu), mu)}
        return {}

    def initial_state(self):
        # Slightly off the equilibrium, so that an unstable state is left promptly.
        return self.steady_state() * jnp.array([1.1, 1.0])
