"""Classic low-dimensional systems used across tests, benchmarks and analysis checks.

Parameter sets and facts: docs/models.md §6 (Lorenz 1963; Rössler 1976; Lorenz 1996;
van der Pol 1926; Prigogine & Lefever 1968; Hénon 1976).
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._base import AbstractMap, AbstractModel, param


class Lorenz(AbstractModel):
    """Lorenz (1963): x' = σ(y − x), y' = x(ρ − z) − y, z' = xy − βz.

    Pitchfork of the origin at ρ = 1; subcritical Hopf of C± at
    ρ = σ(σ + β + 3)/(σ − β − 1); Lyapunov exponents sum to −(σ + 1 + β).
    """

    sigma: Float[Array, ""] = param(10.0)
    rho: Float[Array, ""] = param(28.0)
    beta: Float[Array, ""] = param(8.0 / 3.0)
    state_names: ClassVar[tuple[str, ...]] = ("x", "y", "z")

    def vector_field(self, t, y, args):
        x, yy, z = y
        return jnp.stack(
            [
                self.sigma * (yy - x),
                x * (self.rho - z) - yy,
                x * yy - self.beta * z,
            ]
        )

    def initial_state(self):
        return jnp.array([1.0, 1.0, 1.0])


class Rossler(AbstractModel):
    """Rössler (1976): x' = −y − z, y' = x + a y, z' = b + z(x − c)."""

    a: Float[Array, ""] = param(0.2)
    b: Float[Array, ""] = param(0.2)
    c: Float[Array, ""] = param(5.7)
    state_names: ClassVar[tuple[str, ...]] = ("x", "y", "z")

    def vector_field(self, t, y, args):
        x, yy, z = y
        return jnp.stack([-yy - z, x + self.a * yy, self.b + z * (x - self.c)])

    def initial_state(self):
        return jnp.array([1.0, 1.0, 0.0])


class Lorenz96(AbstractModel):
    """Lorenz (1996): x_i' = (x_{i+1} − x_{i−2}) x_{i−1} − x_i + F on a ring of n
    sites."""

    forcing: Float[Array, ""] = param(8.0)
    n: int = eqx.field(default=40, static=True)

    def __check_init__(self):
        if self.n < 4:
            raise ValueError(f"Lorenz96 needs n >= 4 sites, got n={self.n}")

    @property
    def state_names(self) -> tuple[str, ...]:
        return tuple(f"x{i}" for i in range(self.n))

    def vector_field(self, t, y, args):
        return (jnp.roll(y, -1) - jnp.roll(y, 2)) * jnp.roll(y, 1) - y + self.forcing

    def initial_state(self):
        # The fixed point x = F perturbed at one site, the usual start.
        return jnp.full((self.n,), self.forcing).at[0].add(0.01)


class VanDerPol(AbstractModel):
    """Van der Pol oscillator: x' = y, y' = μ(1 − x²) y − x.

    A degenerate Hopf point at μ = 0 (the linearisation is a centre and the first
    Lyapunov coefficient vanishes).
    """

    mu: Float[Array, ""] = param(1.0)
    state_names: ClassVar[tuple[str, ...]] = ("x", "y")

    def vector_field(self, t, y, args):
        x, v = y
        return jnp.stack([v, self.mu * (1.0 - x**2) * v - x])

    def initial_state(self):
        return jnp.array([2.0, 0.0])


class Brusselator(AbstractModel):
    """Brusselator: x' = a − (b + 1)x + x²y, y' = bx − x²y.

    Equilibrium (a, b/a); supercritical Hopf at b = 1 + a² with frequency ω = a.
    """

    a: Float[Array, ""] = param(1.0)
    b: Float[Array, ""] = param(3.0)
    state_names: ClassVar[tuple[str, ...]] = ("x", "y")

    def vector_field(self, t, y, args):
        x, yy = y
        return jnp.stack(
            [self.a - (self.b + 1.0) * x + x**2 * yy, self.b * x - x**2 * yy]
        )

    def initial_state(self):
        return jnp.stack([self.a + 0.1, self.b / self.a])


class Henon(AbstractMap):
    """Hénon map: x' = 1 − a x² + y, y' = b x. Its Jacobian determinant is −b, so the
    Lyapunov exponents sum to ln b."""

    a: Float[Array, ""] = param(1.4)
    b: Float[Array, ""] = param(0.3)
    state_names: ClassVar[tuple[str, ...]] = ("x", "y")

    def step(self, n, y, args):
        x, yy = y
        return jnp.stack([1.0 - self.a * x**2 + yy, self.b * x])

    def initial_state(self):
        return jnp.array([0.1, 0.1])
