"""Underdamped Langevin dynamics: latent oscillators (Song et al., "Langevin Flows for
Modeling Neural Latent Dynamics", 2025; docs/models.md §2)."""

import abc
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
from equinox import AbstractVar
from jaxtyping import Array, Float

from dynsim.solvers import LangevinSpec, Problem, get_solver

from ._base import AbstractSDEModel, param


class AbstractLangevinModel(AbstractSDEModel):
    """Underdamped Langevin dynamics of positions z and velocities v (mass 1):

        dz = v dt,  dv = (−∇Φ(z) − γ v + f(t)) dt + √(2γT) dW,

    whose stationary law (without drive) is ∝ exp(−(½|v|² + Φ(z)) / T). The state is
    one flat array [z, v].

    Required: `potential(z, args)` (Φ), `gamma` (γ: a scalar or one value per
    position), `temperature` (T), `n_positions`. Optional: `drive(t, args)` (f).
    The dynamics then run with any SDE solver, and with diffrax's underdamped
    Langevin splittings (`"align"`, `"should"`, `"quicsort"`, which need T > 0 and no
    drive).
    """

    gamma: AbstractVar[Array]
    temperature: AbstractVar[Array]

    @property
    @abc.abstractmethod
    def n_positions(self) -> int:
        """The number of positions (the state has twice as many entries)."""

    @abc.abstractmethod
    def potential(self, z: Array, args: Any) -> Array:
        """Φ(z), a scalar."""

    def drive(self, t: Any, args: Any) -> Array | None:
        """The input drive f(t) on the velocities, or None (the default)."""
        del t, args
        return None

    @property
    def noise_shape(self) -> tuple[int, ...]:
        return (2 * self.n_positions,)

    def split(self, y) -> tuple[Array, Array]:
        """(z, v) of a state (or of many: (..., 2n))."""
        n = self.n_positions
        y = jnp.asarray(y)
        return y[..., :n], y[..., n:]

    def energy(self, y, args: Any = None) -> Array:
        """H = ½|v|² + Φ(z), conserved when γ = 0 and there is no drive."""
        z, v = self.split(y)
        return 0.5 * jnp.sum(v**2, axis=-1) + jnp.vectorize(
            lambda zz: self.potential(zz, args), signature="(n)->()"
        )(z)

    def vector_field(self, t, y, args):
        z, v = self.split(y)
        dv = -jax.grad(self.potential)(z, args) - self.gamma * v
        f = self.drive(t, args)
        if f is not None:
            dv = dv + f
        return jnp.concatenate([v, dv])

    def diffusion(self, t, y, args):
        n = self.n_positions
        scale = jnp.sqrt(2.0 * self.gamma * self.temperature)
        return lx.DiagonalLinearOperator(
            jnp.concatenate([jnp.zeros(n), jnp.broadcast_to(scale, (n,))])
        )

    def problem(self) -> Problem:
        # diffrax's Langevin drift is −u ∇f(x): with u = T, ∇f = ∇Φ / T.
        return Problem(
            "langevin",
            self.vector_field,
            diffusion=self.diffusion,
            noise_shape=tuple(self.noise_shape),
            langevin=LangevinSpec(self.gamma, self.temperature, self._grad_f),
        )

    def _grad_f(self, z, args):
        return jax.grad(self.potential)(z, args) / self.temperature

    def check_solver(self, solver: Any) -> None:
        """The Langevin splittings integrate autonomous dynamics at T > 0."""
        if not isinstance(solver, str) or "langevin" not in get_solver(solver).kinds:
            return
        if self.drive(jnp.zeros(()), None) is not None:
            raise ValueError(
                f"solver {solver!r} integrates autonomous Langevin dynamics; a model "
                "with an input drive f(t) needs a general SDE solver (e.g. 'sra', "
                "'euler')"
            )
        temperature = self.temperature
        if not isinstance(temperature, jax.core.Tracer) and float(temperature) <= 0:
            raise ValueError(
                f"solver {solver!r} needs a temperature > 0 (got "
                f"{float(temperature)}); at T = 0 the dynamics are deterministic: "
                "use an ODE or SDE solver"
            )


_TOPOLOGIES = ("chain", "ring")


class LangevinOscillators(AbstractLangevinModel):
    """Locally coupled (an)harmonic oscillators under underdamped Langevin dynamics:

        Φ(z) = ½ Σᵢ ωᵢ² zᵢ² + ¼ λ Σᵢ zᵢ⁴ + ½ k Σ_⟨ij⟩ (zᵢ − zⱼ)²,

    neighbours ⟨ij⟩ on a chain (free ends) or a ring, i.e. Φ = ½ zᵀSz + ¼ λ Σ zᵢ⁴ with
    S = diag(ω²) + k L (L the graph Laplacian). Linear case (λ = 0): the normal-mode
    frequencies are the square roots of the eigenvalues of S — for uniform ω,
    ω² + 4k sin²(jπ/2n) on the chain and ω² + 4k sin²(jπ/n) on the ring, j = 0…n−1 —
    and the stationary covariances are Cov z = T S⁻¹, Cov v = T I.

    `drive`: optional f(t) -> (n,) added to the accelerations (a function or an
    equinox module; its arrays are not scanned parameters).
    """

    omega: Float[Array, "*n"] = param(1.0)
    coupling: Float[Array, ""] = param(0.5)
    quartic: Float[Array, ""] = param(0.0)
    gamma: Float[Array, "*n"] = param(0.1)
    temperature: Float[Array, ""] = param(1.0)
    n: int = eqx.field(static=True, default=8)
    topology: str = eqx.field(static=True, default="chain")
    input_drive: Callable[[Any], Array] | None = None

    def __check_init__(self):
        if self.n < 1:
            raise ValueError(
                f"n must be a positive number of oscillators, got {self.n}"
            )
        if self.topology not in _TOPOLOGIES:
            raise ValueError(
                f"unknown topology {self.topology!r}; "
                f"use one of {', '.join(_TOPOLOGIES)}"
            )
        for name in ("omega", "gamma"):
            shape = jnp.shape(getattr(self, name))
            if shape not in ((), (self.n,)):
                raise ValueError(
                    f"{name} must be a scalar or one value per oscillator ({self.n},), "
                    f"got shape {shape}"
                )
        for name in ("gamma", "temperature"):
            value = getattr(self, name)
            if not isinstance(value, jax.core.Tracer) and np.any(np.asarray(value) < 0):
                raise ValueError(f"{name} must be >= 0, got {np.asarray(value)}")

    @property
    def n_positions(self) -> int:
        return self.n

    @property
    def state_names(self) -> tuple[str, ...]:
        return tuple(f"z{i}" for i in range(self.n)) + tuple(
            f"v{i}" for i in range(self.n)
        )

    def laplacian(self) -> Array:
        """The graph Laplacian L of the chain or ring (n × n)."""
        n = self.n
        adj = np.zeros((n, n))
        idx = np.arange(n - 1)
        adj[idx, idx + 1] = adj[idx + 1, idx] = 1.0
        if self.topology == "ring" and n > 2:
            adj[0, n - 1] = adj[n - 1, 0] = 1.0
        return jnp.asarray(np.diag(adj.sum(1)) - adj)

    def stiffness(self) -> Array:
        """S = diag(ω²) + k L, the Hessian of Φ at z = 0."""
        return jnp.diag(jnp.broadcast_to(self.omega**2, (self.n,))) + (
            self.coupling * self.laplacian()
        )

    def potential(self, z, args):
        omega2 = jnp.broadcast_to(self.omega**2, z.shape)
        if self.topology == "ring" and self.n > 2:
            diff = z - jnp.roll(z, -1)
        else:
            diff = z[1:] - z[:-1]
        return (
            0.5 * jnp.sum(omega2 * z**2)
            + 0.25 * self.quartic * jnp.sum(z**4)
            + 0.5 * self.coupling * jnp.sum(diff**2)
        )

    def drive(self, t, args):
        return None if self.input_drive is None else self.input_drive(t)

    def initial_state(self):
        # The first oscillator displaced by 1, everything else at rest.
        return jnp.zeros(2 * self.n).at[0].set(1.0)
