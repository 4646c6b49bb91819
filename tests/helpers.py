"""Small models with closed-form solutions, written as a user would write them."""

from typing import ClassVar

import jax.numpy as jnp
from jaxtyping import Array, Float

import dynsim as ds
from dynsim.models import param


class ExpSin(ds.AbstractModel):
    """y' = k cos(t) y, so y(t) = y0 exp(k sin t)."""

    k: Float[Array, ""] = param(1.0)
    state_names: ClassVar[tuple[str, ...]] = ("y",)

    def vector_field(self, t, y, args):
        return self.k * jnp.cos(t) * y

    def initial_state(self):
        return jnp.array([1.0])

    def exact(self, t):
        return jnp.exp(self.k * jnp.sin(t))


class BlowUp(ds.AbstractModel):
    """x' = a x² from x(0) = 1: x(t) = 1/(1 − a t), infinite at t = 1/a."""

    a: Float[Array, ""] = param(1.0)
    state_names: ClassVar[tuple[str, ...]] = ("x",)

    def vector_field(self, t, y, args):
        return self.a * y**2

    def initial_state(self):
        return jnp.array([1.0])


class Decay(ds.AbstractModel):
    """y' = −k y: y(t) = y0 e^{−k t}."""

    k: Float[Array, ""] = param(1.0)
    state_names: ClassVar[tuple[str, ...]] = ("y",)

    def vector_field(self, t, y, args):
        return -self.k * y

    def initial_state(self):
        return jnp.array([1.0])
