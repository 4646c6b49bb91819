"""Linear test systems with closed-form solutions."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import lineax as lx
from jaxtyping import Array, Float

from ._base import AbstractModel, AbstractSDEModel, param


class LinearSystem(AbstractModel):
    """y' = A y, solved by y(t) = expm(A t) y₀; its Lyapunov exponents are the real
    parts of the eigenvalues of A."""

    A: Float[Array, "n n"] = param()

    def __check_init__(self):
        if self.A.ndim != 2 or self.A.shape[0] != self.A.shape[1]:
            raise ValueError(
                f"LinearSystem needs a square matrix A, got shape {self.A.shape}"
            )

    @property
    def state_names(self) -> tuple[str, ...]:
        return tuple(f"y{i}" for i in range(self.A.shape[0]))

    def vector_field(self, t, y, args):
        return self.A @ y

    def initial_state(self):
        return jnp.ones(self.A.shape[0])


class OrnsteinUhlenbeck(AbstractSDEModel):
    """dX = θ (m − X) dt + σ dW, independently in each of n components.

    From X(0) = x₀: E X(t) = m + (x₀ − m) e^{−θt}, Var X(t) = σ²/(2θ) (1 − e^{−2θt}).
    """

    theta: Float[Array, ""] = param(1.0)
    mean: Float[Array, ""] = param(0.0)
    sigma: Float[Array, ""] = param(1.0)
    n: int = eqx.field(default=1, static=True)

    @property
    def state_names(self) -> tuple[str, ...]:
        return tuple(f"x{i}" for i in range(self.n))

    @property
    def noise_shape(self) -> tuple[int, ...]:
        return (self.n,)

    def vector_field(self, t, y, args):
        return self.theta * (self.mean - y)

    def diffusion(self, t, y, args):
        return lx.DiagonalLinearOperator(jnp.broadcast_to(self.sigma, y.shape))

    def initial_state(self):
        return jnp.ones(self.n)
