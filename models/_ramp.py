"""A parameter that drifts in time: the setting of early-warning experiments."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._base import AbstractModel, check_parameter_names, param, replace_parameters


class Ramp(AbstractModel):
    """`base` with its parameter `name` moved linearly from `start` (at t ≤ t0) to
    `stop` (at t ≥ t1): f(t, y) = f_base(t, y; p(t)). Wrap it in `AdditiveNoise` for
    a noisy ramp through a bifurcation. Its own parameters scan as usual; the
    base's as `"base.<name>"`."""

    base: AbstractModel
    name: str = eqx.field(static=True)
    start: Float[Array, ""] = param(0.0)
    stop: Float[Array, ""] = param(1.0)
    t0: Float[Array, ""] = param(0.0)
    t1: Float[Array, ""] = param(1.0)

    def __check_init__(self):
        check_parameter_names(self.base, {self.name: 0.0})

    @property
    def state_names(self) -> tuple[str, ...]:
        return self.base.state_names

    def value(self, t) -> Array:
        """p(t)."""
        frac = jnp.clip((t - self.t0) / (self.t1 - self.t0), 0.0, 1.0)
        return self.start + (self.stop - self.start) * frac

    def vector_field(self, t, y, args):
        at = replace_parameters(self.base, {self.name: self.value(t)})
        return at.vector_field(t, y, args)

    def initial_state(self):
        return self.base.initial_state()
