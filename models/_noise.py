"""Turning any deterministic model into an SDE."""

from __future__ import annotations

import jax.numpy as jnp
import lineax as lx
from jaxtyping import Array, Float

from ._base import AbstractModel, AbstractSDEModel, param


class AdditiveNoise(AbstractSDEModel):
    """dy = f(t, y) dt + σ dW with f from `base` and independent noise on every state.

    `sigma` is a scalar or one value per state; its parameters are scanned as
    `"sigma"` and the base model's as `"base.<name>"`.
    """

    base: AbstractModel
    sigma: Float[Array, "*state"] = param(0.1)

    def __check_init__(self):
        shape = jnp.shape(self.base.initial_state())
        if jnp.ndim(self.sigma) > 0 and jnp.shape(self.sigma) != shape:
            raise ValueError(
                f"AdditiveNoise: sigma has shape {jnp.shape(self.sigma)}, "
                f"expected a scalar or the state shape {shape}"
            )

    @property
    def state_names(self) -> tuple[str, ...]:
        return self.base.state_names

    @property
    def noise_shape(self) -> tuple[int, ...]:
        return tuple(jnp.shape(self.base.initial_state()))

    def vector_field(self, t, y, args):
        return self.base.vector_field(t, y, args)

    def diffusion(self, t, y, args):
        return lx.DiagonalLinearOperator(jnp.broadcast_to(self.sigma, jnp.shape(y)))

    def initial_state(self):
        return self.base.initial_state()
