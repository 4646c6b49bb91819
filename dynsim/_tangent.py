"""A system carried with one tangent vector, for the largest Lyapunov exponent of
every run of a scan (`dynsim.observables.LyapunovExponent`).

Flows: the state y is extended by a tangent vector v and the log of its growth ℓ,

    ẏ = f(y),   v̇ = J v − r v,   ℓ̇ = r,   r = vᵀ J v / vᵀ v,

with J = ∂f/∂y at y(t) (one JAX JVP per step, no hand-written Jacobian). The
projection −r v keeps |v| constant (d|v|²/dt = 2vᵀJv − 2r|v|² = 0), so v never
overflows and needs no renormalisation events, while ℓ(t) = log |w(t)|/|w(0)| for
the unnormalised tangent w (ẇ = J w) exactly: the continuous form of Benettin's
method for one vector. The largest exponent is λ₁ = (ℓ(t₁) − ℓ(t_from))/(t₁ − t_from)
once v has aligned with the most expanding direction (after the window's start).
The augmented system is an ODE like any other: adaptive steps control its error,
and it runs on the ensemble executor.

Maps: y' = F(y), v' = J v/|J v|, ℓ' = ℓ + log |J v|, per iterate.

The tangent vector starts in a fixed generic direction (components 1, 2, …, n,
normalised), never inside a coordinate subspace a symmetry might leave invariant.
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from dynsim.models import AbstractMap, AbstractModel, AbstractSystem

from ._observables import AbstractRunningObservable, StateSelector, _optional_float


def tangent_start(state) -> jax.Array:
    """The augmented start (y, v, ℓ = 0) of a run from `state` (flat)."""
    y, _ = ravel_pytree(state)
    v = jnp.arange(1, y.size + 1, dtype=y.dtype)
    return jnp.concatenate([y, v / jnp.linalg.norm(v), jnp.zeros(1, y.dtype)])


def _split(s, template):
    n = (s.size - 1) // 2
    _, unravel = ravel_pytree(template)
    return unravel(s[:n]), s[n : 2 * n], s[2 * n]


class TangentFlow(AbstractModel):
    """`base` (an ODE) with its tangent vector and log growth (module docstring);
    its state is the flat (y, v, ℓ)."""

    base: AbstractModel

    @property
    def state_names(self) -> tuple[str, ...]:
        names = tuple(self.base.state_names)
        return names + tuple(f"tangent_{n}" for n in names) + ("log_growth",)

    def vector_field(self, t, s, args):
        y, v, _ = _split(s, self.base.initial_state())
        _, unravel = ravel_pytree(y)
        field = lambda u: ravel_pytree(  # noqa: E731
            self.base.vector_field(t, unravel(u), args)
        )[0]
        f, jv = jax.jvp(field, (ravel_pytree(y)[0],), (v,))
        rate = jnp.dot(v, jv) / jnp.dot(v, v)
        return jnp.concatenate([f, jv - rate * v, rate[None]])

    def initial_state(self):
        return tangent_start(self.base.initial_state())


class TangentMap(AbstractMap):
    """`base` (a map) with its tangent vector and log growth (module docstring)."""

    base: AbstractMap

    @property
    def state_names(self) -> tuple[str, ...]:
        names = tuple(self.base.state_names)
        return names + tuple(f"tangent_{n}" for n in names) + ("log_growth",)

    def step(self, k, s, args):
        y, v, ell = _split(s, self.base.initial_state())
        flat, unravel = ravel_pytree(y)
        step = lambda u: ravel_pytree(self.base.step(k, unravel(u), args))[0]  # noqa: E731
        y1, jv = jax.jvp(step, (flat,), (v,))
        growth = jnp.linalg.norm(jv)
        return jnp.concatenate([y1, jv / growth, (ell + jnp.log(growth))[None]])

    def initial_state(self):
        return tangent_start(self.base.initial_state())


def with_tangent(model: AbstractSystem) -> AbstractSystem:
    """`model` carried with its tangent dynamics (module docstring).

    **Raises:** `ValueError` for a stochastic model (its tangent dynamics would need
    the noise's derivative).
    """
    if isinstance(model, AbstractMap):
        return TangentMap(model)
    if model.problem().stochastic:
        raise ValueError(
            f"the Lyapunov exponent observable needs deterministic dynamics; "
            f"{type(model).__name__} is stochastic"
        )
    return TangentFlow(model)


class LyapunovExponent(AbstractRunningObservable):
    """The largest Lyapunov exponent of each run, from its tangent dynamics carried
    alongside the run (module docstring), not from the trajectory: the growth rate
    (ℓ(t₁) − ℓ(t_from))/(t₁ − t_from) of a tangent vector over the window, per unit
    time (per iterate for maps), natural logarithm. Positive on a chaotic attractor,
    ≈ 0 on a cycle or torus (it converges as 1/(t₁ − t_from)), the leading
    eigenvalue's real part at a stable equilibrium. Start the window after the
    transient (and after the tangent vector has aligned: a few e-folding times of
    the gap to the second exponent). The runs' other observables are unaffected.

    Needs deterministic dynamics (an ODE, or an IMEX model integrated as one ODE by
    the scan's solver, or a map); its error is the solve's (`rtol`, `atol` apply to
    the tangent vector too).
    """

    state: StateSelector = eqx.field(default=None, static=True)
    t_from: float | None = eqx.field(
        default=None, static=True, converter=_optional_float
    )

    componentwise: ClassVar[bool] = False
    tangent: ClassVar[bool] = True

    def __check_init__(self):
        if self.state is not None:
            raise ValueError(
                "LyapunovExponent is of the whole state: it takes no state=..."
            )

    def init(self, t0, y0, discrete):
        # y0: the log growth at t0 (the component this observable is bound to).
        inside = t0 >= self.start
        nan = jnp.asarray(jnp.nan, y0.dtype)
        return dict(
            first=jnp.where(inside, y0[0], nan),
            t_first=jnp.where(inside, t0, nan).astype(y0.dtype),
            last=y0[0],
            t_last=jnp.asarray(t0, y0.dtype),
        )

    def update(self, carry, segment, samples, select):
        # The window opens in this step: the log growth there, from the interpolant.
        opens = jnp.isnan(carry["t_first"]) & (segment.t1 >= self.start)
        t = jnp.maximum(segment.t0, self.start).astype(carry["last"].dtype)
        first = jnp.where(opens, select(segment.evaluate(t))[0], carry["first"])
        return dict(
            first=first,
            t_first=jnp.where(opens, t, carry["t_first"]),
            last=select(segment.y1)[0],
            t_last=segment.t1.astype(carry["last"].dtype),
        )

    def finish(self, carry):
        span = carry["t_last"] - carry["t_first"]
        growth = carry["last"] - carry["first"]
        return growth / jnp.where(span > 0, span, jnp.nan)
