"""Neural differential equations on equinox networks (Chen et al. 2018; Kidger, "On
Neural Differential Equations", 2021; docs/models.md §3).

The networks' weights are trainable arrays (train them with `dynsim.fit`), not
scanned parameters.
"""

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import lineax as lx
from jaxtyping import Array, PRNGKeyArray

from ._base import AbstractModel, AbstractPredictor, AbstractSDEModel, rollout


def _mlp(dim_in, dim_out, width, depth, key, final=jnp.tanh) -> eqx.nn.MLP:
    return eqx.nn.MLP(
        dim_in,
        dim_out,
        width,
        depth,
        activation=jax.nn.softplus,
        final_activation=final,
        key=key,
    )


def _names(prefix: str, dim: int) -> tuple[str, ...]:
    return tuple(f"{prefix}{i}" for i in range(dim))


class NeuralODE(AbstractModel):
    """dy/dt = s · tanh(MLP(y)) (softplus hidden layers), or dy/dt = `field(y)` for
    any equinox module / function given as `field` (e.g. `eqx.nn.Linear` for a
    linear field, whose solution is expm(A t) y₀).
    """

    field: Callable[[Array], Array]
    scale: Array
    dim: int = eqx.field(static=True)

    def __init__(
        self,
        dim: int,
        *,
        width: int = 64,
        depth: int = 2,
        scale: float = 1.0,
        field: Callable[[Array], Array] | None = None,
        key: PRNGKeyArray | None = None,
    ):
        if dim < 1:
            raise ValueError(f"dim must be a positive int, got {dim}")
        if field is None:
            if key is None:
                raise ValueError("NeuralODE needs a key to initialise its MLP")
            field = _mlp(dim, dim, width, depth, key)
        self.dim = dim
        self.field = field
        self.scale = jnp.asarray(scale, dtype=jnp.result_type(float))

    @property
    def state_names(self) -> tuple[str, ...]:
        return _names("y", self.dim)

    def vector_field(self, t, y, args):
        return self.scale * self.field(y)

    def initial_state(self):
        return jnp.zeros(self.dim)


class NeuralSDE(AbstractSDEModel):
    """dy = s_f · tanh(MLP_f(y)) dt + s_g · sigmoid(MLP_g(y)) ⊙ dW (diagonal noise,
    one Brownian motion per state). Its path is fixed by the key given to
    `dynsim.simulate`: the same key, the same path."""

    drift: eqx.nn.MLP
    noise: eqx.nn.MLP
    drift_scale: Array
    noise_scale: Array
    dim: int = eqx.field(static=True)

    def __init__(
        self,
        dim: int,
        *,
        width: int = 64,
        depth: int = 2,
        drift_scale: float = 1.0,
        noise_scale: float = 0.1,
        key: PRNGKeyArray,
    ):
        if dim < 1:
            raise ValueError(f"dim must be a positive int, got {dim}")
        kf, kg = jr.split(key)
        self.dim = dim
        self.drift = _mlp(dim, dim, width, depth, kf)
        self.noise = _mlp(dim, dim, width, depth, kg, final=jax.nn.sigmoid)
        dtype = jnp.result_type(float)
        self.drift_scale = jnp.asarray(drift_scale, dtype)
        self.noise_scale = jnp.asarray(noise_scale, dtype)

    @property
    def state_names(self) -> tuple[str, ...]:
        return _names("y", self.dim)

    @property
    def noise_shape(self) -> tuple[int, ...]:
        return (self.dim,)

    def vector_field(self, t, y, args):
        return self.drift_scale * self.drift(y)

    def diffusion(self, t, y, args):
        return lx.DiagonalLinearOperator(self.noise_scale * self.noise(y))

    def initial_state(self):
        return jnp.zeros(self.dim)


class LatentODE(AbstractPredictor):
    """Encoder → neural ODE in a latent space → decoder (Rubanova, Chen & Duvenaud
    2019, without the variational part): a GRU reads the context observations
    backwards in time into the latent initial state z₀; `dz/dt = NeuralODE(z)`;
    a linear readout maps z(t) to the observations.

    `predict(ts, context)` rolls out the observations at `ts` (from ts[0]) given
    context observations at the first `len(context)` of those times; `dynsim.fit`
    trains it on `(ts, context, targets)`.
    """

    encoder: eqx.nn.GRUCell
    to_latent: eqx.nn.Linear
    ode: NeuralODE
    decoder: eqx.nn.Linear

    def __init__(
        self,
        data_dim: int,
        latent_dim: int,
        *,
        hidden: int = 32,
        width: int = 64,
        depth: int = 2,
        key: PRNGKeyArray,
    ):
        k1, k2, k3, k4 = jr.split(key, 4)
        self.encoder = eqx.nn.GRUCell(data_dim + 1, hidden, key=k1)
        self.to_latent = eqx.nn.Linear(hidden, latent_dim, key=k2)
        self.ode = NeuralODE(latent_dim, width=width, depth=depth, key=k3)
        self.decoder = eqx.nn.Linear(latent_dim, data_dim, key=k4)

    def encode(self, ts: Array, context: Array) -> Array:
        """z₀ from the context observations (times ts[:len(context)])."""
        n = context.shape[0]
        inputs = jnp.concatenate([context, (ts[:n] - ts[0])[:, None]], axis=1)

        def step(h, x):
            return self.encoder(x, h), None

        h, _ = jax.lax.scan(step, jnp.zeros(self.encoder.hidden_size), inputs[::-1])
        return self.to_latent(h)

    def predict(self, ts: Array, context: Array, **solve: Any) -> Array:
        """The decoded trajectory at `ts`; `solve`: options of `dynsim.fit`'s solves
        (solver, rtol, atol, adjoint, max_steps)."""
        zs = rollout(self.ode, self.encode(ts, context), ts, **solve)
        return jax.vmap(self.decoder)(zs)
