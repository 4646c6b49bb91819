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
import numpy as np
from jax.flatten_util import ravel_pytree

from dynsim.models import AbstractMap, AbstractModel, AbstractSystem

from ._observables import AbstractRunningObservable, StateSelector, _optional_float


def tangent_start(state) -> jax.Array:
    """The augmented start (y, v, ℓ = 0) of a run from `state` (flat)."""
    y, _ = ravel_pytree(state)
    v = jnp.arange(1, y.size + 1, dtype=y.dtype)
    return jnp.concatenate([y, v / jnp.linalg.norm(v), jnp.zeros(1, y.dtype)])


def _flat(base: AbstractSystem, fn, t, s, args):
    """The model's own flat state y, the tangent v and log growth ℓ of the
    augmented `s`, and `fn(t, ·, args)` (the vector field or the step) as a
    function of the flat state."""
    n = (s.size - 1) // 2
    _, unravel = ravel_pytree(base.initial_state())
    flat_fn = lambda u: ravel_pytree(fn(t, unravel(u), args))[0]  # noqa: E731
    return s[:n], s[n : 2 * n], s[2 * n], flat_fn


def _names(base: AbstractSystem) -> tuple[str, ...]:
    """The augmented state's names: the model's flat components, then its tangent's
    and the log growth."""
    size = ravel_pytree(base.initial_state())[0].size
    own = tuple(base.state_names)
    if len(own) != size:  # a pytree state: name its flat components by index
        own = tuple(f"y_{k}" for k in range(size))
    return own + tuple(f"tangent_{k}" for k in range(size)) + ("log_growth",)


class TangentFlow(AbstractModel):
    """`base` (an ODE) with its tangent vector and log growth (module docstring);
    its state is the flat (y, v, ℓ)."""

    base: AbstractModel

    @property
    def state_names(self) -> tuple[str, ...]:
        return _names(self.base)

    def vector_field(self, t, s, args):
        y, v, _, field = _flat(self.base, self.base.vector_field, t, s, args)
        f, jv = jax.jvp(field, (y,), (v,))
        rate = jnp.dot(v, jv) / jnp.dot(v, v)
        return jnp.concatenate([f, jv - rate * v, rate[None]])

    def initial_state(self):
        return tangent_start(self.base.initial_state())

    def check_solver(self, solver):
        self.base.check_solver(solver)


class TangentMap(AbstractMap):
    """`base` (a map) with its tangent vector and log growth (module docstring). A
    tangent mapped to zero (a superstable point: J v = 0) keeps its direction and
    adds log of the smallest normal number, so the run stays finite and its
    exponent very negative."""

    base: AbstractMap

    @property
    def state_names(self) -> tuple[str, ...]:
        return _names(self.base)

    def step(self, k, s, args):
        y, v, ell, step = _flat(self.base, self.base.step, k, s, args)
        y1, jv = jax.jvp(step, (y,), (v,))
        growth = jnp.linalg.norm(jv)
        tiny = jnp.finfo(growth.dtype).tiny
        v1 = jnp.where(growth > tiny, jv / jnp.maximum(growth, tiny), v)
        return jnp.concatenate(
            [y1, v1, (ell + jnp.log(jnp.maximum(growth, tiny)))[None]]
        )

    def initial_state(self):
        return tangent_start(self.base.initial_state())

    def check_solver(self, solver):
        self.base.check_solver(solver)


def with_tangent(model: AbstractSystem) -> AbstractSystem:
    """`model` carried with its tangent dynamics (module docstring).

    **Raises:** `ValueError` for a stochastic model (its tangent dynamics would need
    the noise's derivative) or an IMEX split (whose stiff part has no tangent form
    here).
    """
    if isinstance(model, AbstractMap):
        return TangentMap(model)
    problem = model.problem()
    name = type(model).__name__
    if problem.stochastic:
        raise ValueError(
            f"the Lyapunov exponent observable needs deterministic dynamics; "
            f"{name} is stochastic"
        )
    if problem.kind != "ode":
        raise ValueError(
            f"the Lyapunov exponent observable needs an ODE or a map; {name} is "
            f"a {problem.kind!r} problem (its stiff split has no tangent form here)"
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
    the gap to the second exponent). For maps the window starts at the first
    iterate at or after `t_from`.

    The runs' other observables see the model's own state only; the tangent is
    part of the solve's error control (`rtol`, `atol` apply to it too), so their
    steps, and their values within the tolerance, differ from a scan without it.
    Needs deterministic dynamics: an ODE or a map (not an SDE or an IMEX split).
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
        dtype = carry["last"].dtype
        opens = jnp.isnan(carry["t_first"]) & (segment.t1 >= self.start)
        # Maps: the first iterate in the window (no interpolation between them).
        start = np.ceil(self.start) if segment.discrete else self.start
        t = jnp.maximum(segment.t0, start)
        ell = select(segment.evaluate(t))[0].astype(dtype)
        return dict(
            first=jnp.where(opens, ell, carry["first"]),
            t_first=jnp.where(opens, t.astype(dtype), carry["t_first"]),
            last=select(segment.y1)[0].astype(dtype),
            t_last=segment.t1.astype(dtype),
        )

    def finish(self, carry):
        span = carry["t_last"] - carry["t_first"]
        growth = carry["last"] - carry["first"]
        return growth / jnp.where(span > 0, span, jnp.nan)
