"""Lyapunov exponents of flows and maps: the Benettin QR method on the tangent
dynamics (JAX JVPs, no hand-written Jacobians) and the two-trajectory method.

Conventions: exponents per unit time (per iterate for maps), natural logarithm,
sorted in decreasing order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from dynsim import solvers
from dynsim.models import AbstractMap, AbstractModel, replace_parameters
from dynsim.solvers import Status

from .._checks import check_model, options_for
from .._custom_types import Flow, State, System
from .._protocol import AbstractResult, checked, freeze_fields
from .._provenance import run_info
from .._results import RunInfo

UNITS = "per unit time (per iterate for maps), natural logarithm"


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class LyapunovSpectrum(AbstractResult):
    """Lyapunov exponents, possibly over a grid of parameter values.

    - `exponents` (*grid, n_exponents): the first exponents, decreasing, in `units`.
    - `stderr` (*grid, n_exponents): standard error over `blocks` consecutive
      blocks of the run (a convergence diagnostic: the block means' spread / √blocks).
    - `running` (*grid, n_renorm, n_exponents): the running estimate after each
      re-orthonormalisation; `times` (n_renorm,): the time (or iterate) it covers.
    - `params`: the parameter values of each grid point, name -> (*grid) (empty for
      one model); `method`:
      "qr" (Benettin), "two-trajectory" or "rosenstein" (from a series: then
      `running` is the mean log divergence over `times`, fitted on `fit_range`).
    """

    exponents: np.ndarray
    stderr: np.ndarray
    running: np.ndarray
    times: np.ndarray
    params: Mapping[str, np.ndarray]
    method: str
    info: RunInfo
    units: str = UNITS
    fit_range: tuple[float, float] | None = None
    status: np.ndarray | None = None

    kind: ClassVar[str] = "lyapunov"

    def field_dims(self, name: str) -> tuple[str, ...]:
        grid = ("point",) * (np.ndim(self.exponents) - 1)
        return {
            "exponents": (*grid, "exponent"),
            "stderr": (*grid, "exponent"),
            "running": (*grid, "time", "exponent"),
            "times": ("time",),
            "params": grid,
            "status": grid,
        }.get(name, ())

    def __post_init__(self):
        if self.status is None:
            # Per point: a run that diverged (or whose solve failed) has no
            # exponents: NaN, status NONFINITE.
            finite = np.all(np.isfinite(np.asarray(self.exponents)), axis=-1)
            code = np.where(finite, int(Status.SUCCESS), int(Status.NONFINITE))
            object.__setattr__(self, "status", np.asarray(code, np.int32))
        freeze_fields(self)

    @property
    def message(self) -> str:
        return self.status_message

    def figures(self, **options):
        from ..plot import lyapunov

        return [("lyapunov", lyapunov(self))]

    @property
    def kaplan_yorke(self) -> np.ndarray:
        """The Kaplan–Yorke dimension j + (λ₁ + … + λⱼ)/|λⱼ₊₁| (j: the largest index
        with a non-negative partial sum; the full count k if they never turn
        negative, 0 if λ₁ < 0)."""
        return np.apply_along_axis(kaplan_yorke, -1, self.exponents)

    def __repr__(self) -> str:
        if self.exponents.ndim == 1:
            vals = ", ".join(f"{v:.4f}" for v in self.exponents)
            return f"LyapunovSpectrum([{vals}] {self.units}, method={self.method})"
        return (
            f"LyapunovSpectrum({self.exponents.shape[:-1]} grid over "
            f"{', '.join(self.params)}, n_exponents={self.exponents.shape[-1]})"
        )


def kaplan_yorke(exponents: Sequence[float]) -> float:
    """The Kaplan–Yorke (Lyapunov) dimension of a decreasing spectrum."""
    lam = np.sort(np.asarray(exponents, float))[::-1]
    sums = np.cumsum(lam)
    if lam[0] < 0:
        return 0.0
    j = int(np.max(np.flatnonzero(sums >= 0)))  # 0-based index of the last ≥ 0
    if j + 1 == lam.size:
        return float(lam.size)
    return float(j + 1 + sums[j] / abs(lam[j + 1]))


class _Tangent(AbstractModel):
    """A flow with its tangent dynamics: d/dt (y, Q) = (f(y), J(y) Q), J Q by one
    JVP per column of Q — a model like any other, solved through its problem."""

    base: AbstractModel

    @property
    def state_names(self) -> tuple[str, ...]:
        return self.base.state_names

    def vector_field(self, t, state, args):
        y, q = state
        return jax.vmap(
            lambda v: jax.jvp(lambda u: self.base.vector_field(t, u, args), (y,), (v,)),
            in_axes=1,
            out_axes=(None, 1),
        )(q)

    def initial_state(self):
        return self.base.initial_state()


class _Pair(AbstractModel):
    """Two copies of a flow side by side (the two-trajectory method)."""

    base: AbstractModel

    @property
    def state_names(self) -> tuple[str, ...]:
        return self.base.state_names

    def vector_field(self, t, yz, args):
        return jax.vmap(lambda u: self.base.vector_field(t, u, args))(yz)

    def initial_state(self):
        return jnp.stack([self.base.initial_state()] * 2)


def _spectrum_one(model, y0, k, n_transient, n_renorm, dt, opts, args):
    """(running log-sums (n_renorm, k)) for one model."""
    n = y0.size
    q0 = jnp.eye(n, k)
    is_map = isinstance(model, AbstractMap)

    def advance(y, q, t):
        if is_map:

            def body(carry, i):
                y, q = carry
                y1, jq = jax.vmap(
                    lambda v: jax.jvp(lambda u: model.step(i, u, args), (y,), (v,)),
                    in_axes=1,
                    out_axes=(None, 1),
                )(q)
                return (y1, jq), None

            (y, q), _ = jax.lax.scan(body, (y, q), t + jnp.arange(int(dt)))
            return y, q
        problem = _Tangent(model).problem()
        sol = solvers.integrate(problem, (y, q), t, t + dt, args, options=opts)
        y1, q1 = jax.tree.map(lambda a: a[-1], sol.ys)
        bad = sol.status != 0
        return jnp.where(bad, jnp.nan, y1), jnp.where(bad, jnp.nan, q1)

    def step(carry, i):
        y, q = carry
        y, q = advance(y, q, i * dt)
        qq, r = jnp.linalg.qr(q)
        d = jnp.diagonal(r)
        # Keep Q's orientation continuous (R's diagonal positive).
        qq = qq * jnp.sign(d)[None, :]
        return (y, qq), jnp.log(jnp.abs(d))

    (y, q), _ = jax.lax.scan(step, (y0, q0), jnp.arange(n_transient))
    _, logs = jax.lax.scan(step, (y, q), n_transient + jnp.arange(n_renorm))
    return logs


def lyapunov_spectrum(
    model: System,
    *,
    n_exponents: int | None = None,
    t_transient: float = 100.0,
    t_total: float = 1000.0,
    dt_renorm: float = 1.0,
    y0: State | None = None,
    params: Mapping[str, Sequence[float]] | None = None,
    grid: bool = True,
    blocks: int = 10,
    solver: str = "tsit5",
    rtol: float = 1e-8,
    atol: float = 1e-10,
    max_steps: int = 100_000,
    args: Any = None,
    throw: bool = False,
) -> LyapunovSpectrum:
    """The first `n_exponents` (default all) Lyapunov exponents of `model` by the
    Benettin QR method: the state and as many tangent vectors (advanced by JAX JVPs
    of the vector field, or of the map's step) are integrated together and
    re-orthonormalised (QR) every `dt_renorm`; the exponents are the time averages
    of log |Rᵢᵢ| over `t_total` after a `t_transient`.

    **Arguments:** `params`: parameter name -> 1-D array of values, as in
    `dynsim.scan`: the spectrum at every point of their grid (`grid=False`: the
    arrays zipped point by point), vectorised with `vmap` in one compilation;
    results then lead with the grid's shape; `blocks`: for the standard error;
    `solver`, `rtol`, `atol`, `max_steps`: the integration of
    each renormalisation interval (flows). For maps, times are iterates and
    `dt_renorm` is a whole number of iterates.

    `throw=True` raises `RuntimeError` (with the `message`) instead of returning a
    result that is not `ok`.

    **Returns:** a `LyapunovSpectrum` (per unit time / iterate, natural log).

    **Raises:** `ValueError` for non-positive times, `n_exponents` out of range, or
    a `t_total` shorter than `blocks` renormalisations.
    """
    check_model(model)
    y0 = jnp.asarray(model.initial_state() if y0 is None else y0, float)
    n = y0.size
    k = n if n_exponents is None else int(n_exponents)
    if not 1 <= k <= n:
        raise ValueError(
            f"n_exponents must be between 1 and the state size {n}, got {k}"
        )
    if not (dt_renorm > 0 and t_total > 0 and t_transient >= 0):
        raise ValueError("dt_renorm and t_total must be > 0 and t_transient >= 0")
    is_map = isinstance(model, AbstractMap)
    if is_map and dt_renorm != int(dt_renorm):
        raise ValueError("for a map, dt_renorm is a whole number of iterates")
    n_renorm = int(round(t_total / dt_renorm))
    n_transient = int(round(t_transient / dt_renorm))
    if n_renorm < blocks:
        raise ValueError(
            f"t_total / dt_renorm = {n_renorm} renormalisations, fewer than "
            f"blocks = {blocks}"
        )
    opts = None
    if not is_map:
        opts = options_for(
            _Tangent(model), solver=solver, rtol=rtol, atol=atol, max_steps=max_steps
        )
    params, shape = _parameter_points(model, params, grid)
    logs = _run(model, y0, k, n_transient, n_renorm, dt_renorm, opts, args, params)
    logs = np.asarray(logs)  # (points, n_renorm, k) or (n_renorm, k)
    if params:
        logs = logs.reshape(shape + logs.shape[1:])
        params = {name: v.reshape(shape) for name, v in params.items()}
    times = dt_renorm * np.arange(1, n_renorm + 1)
    running = np.cumsum(logs, axis=-2) / times[:, None]
    exponents = running[..., -1, :]
    usable = (n_renorm // blocks) * blocks
    per_block = logs[..., :usable, :].reshape(
        logs.shape[:-2] + (blocks, usable // blocks, k)
    )
    block_means = per_block.sum(-2) / (dt_renorm * (usable // blocks))
    stderr = block_means.std(-2, ddof=1) / np.sqrt(blocks)
    info = run_info(
        model,
        tuple(model.state_names),
        solver=solver if not is_map else "iterate",
        rtol=rtol,
        atol=atol,
        dt_renorm=dt_renorm,
        t_transient=t_transient,
        t_total=t_total,
    )
    return checked(
        LyapunovSpectrum(exponents, stderr, running, times, params, "qr", info),
        throw,
    )


def _parameter_points(model, params, grid: bool):
    """The parameter values of every point (flat arrays) and the points' shape: the
    grid of the axes (default) or the axes zipped (`grid=False`)."""
    from dynsim.models import check_parameter_names

    from .._scan_plan import point_axes

    if not params:
        return {}, ()
    check_parameter_names(model, params)
    axes, shape = point_axes(params, grid)
    if grid:
        mesh = np.meshgrid(*axes.values(), indexing="ij")
        return {k: m.ravel() for k, m in zip(axes, mesh, strict=True)}, shape
    return axes, shape


def _run(model, y0, k, n_transient, n_renorm, dt, opts, args, params):
    if not params:
        return _jit_one(model, y0, k, n_transient, n_renorm, dt, opts, args)
    values = {name: jnp.asarray(v) for name, v in params.items()}
    return _jit_many(model, y0, k, n_transient, n_renorm, dt, opts, args, values)


@eqx.filter_jit
def _jit_one(model, y0, k, n_transient, n_renorm, dt, opts, args):
    return _spectrum_one(model, y0, k, n_transient, n_renorm, dt, opts, args)


@eqx.filter_jit
def _jit_many(model, y0, k, n_transient, n_renorm, dt, opts, args, values):
    # Module-level, so that repeated calls with new values reuse the compilation.
    def one(v):
        at = replace_parameters(model, v)
        return _spectrum_one(at, y0, k, n_transient, n_renorm, dt, opts, args)

    return jax.vmap(one)(values)


def max_lyapunov(
    model: Flow,
    *,
    d0: float = 1e-8,
    t_transient: float = 100.0,
    t_total: float = 1000.0,
    dt_renorm: float = 1.0,
    y0: State | None = None,
    blocks: int = 10,
    solver: str = "tsit5",
    rtol: float = 1e-10,
    atol: float = 1e-12,
    max_steps: int = 100_000,
    args: Any = None,
    throw: bool = False,
) -> LyapunovSpectrum:
    """The largest Lyapunov exponent by the two-trajectory method (Benettin et al.
    1976): a companion trajectory at distance `d0` is followed for `dt_renorm`,
    the log of its distance growth recorded, and it is pulled back to `d0` along
    the separation. Needs no derivatives of the model, but tolerances well below
    `d0` (defaults: `d0` = 1e-8, `rtol` = 1e-10). Same result type, one exponent."""
    if isinstance(model, AbstractMap):
        raise ValueError("max_lyapunov is for flows; use lyapunov_spectrum for maps")
    if not (dt_renorm > 0 and t_total > 0 and t_transient >= 0 and d0 > 0):
        raise ValueError("d0, dt_renorm and t_total must be > 0, t_transient >= 0")
    y0 = jnp.asarray(model.initial_state() if y0 is None else y0, float)
    n_renorm = int(round(t_total / dt_renorm))
    n_transient = int(round(t_transient / dt_renorm))
    if n_renorm < blocks:
        raise ValueError(f"{n_renorm} renormalisations, fewer than blocks = {blocks}")
    opts = options_for(
        _Pair(model), solver=solver, rtol=rtol, atol=atol, max_steps=max_steps
    )
    logs = np.asarray(
        _two_trajectory(model, y0, d0, n_transient, n_renorm, dt_renorm, opts, args)
    )[:, None]
    times = dt_renorm * np.arange(1, n_renorm + 1)
    running = np.cumsum(logs, axis=0) / times[:, None]
    usable = (n_renorm // blocks) * blocks
    block_means = logs[:usable].reshape(blocks, -1).sum(1) / (
        dt_renorm * (usable // blocks)
    )
    stderr = np.array([block_means.std(ddof=1) / np.sqrt(blocks)])
    info = run_info(
        model, tuple(model.state_names), solver=solver, rtol=rtol, atol=atol, d0=d0
    )
    return checked(
        LyapunovSpectrum(
            running[-1], stderr, running, times, {}, "two-trajectory", info
        ),
        throw,
    )


@eqx.filter_jit
def _two_trajectory(model, y0, d0, n_transient, n_renorm, dt, opts, args):
    problem = _Pair(model).problem()
    direction = jnp.ones_like(y0) / jnp.sqrt(y0.size)

    def step(carry, i):
        y, z = carry
        yz = jnp.stack([y, z])
        sol = solvers.integrate(problem, yz, i * dt, (i + 1) * dt, args, options=opts)
        y1, z1 = sol.ys[-1]
        sep = z1 - y1
        d = jnp.linalg.norm(sep)
        return (y1, y1 + d0 * sep / d), jnp.log(d / d0)

    start = (y0, y0 + d0 * direction)
    carry, _ = jax.lax.scan(step, start, jnp.arange(n_transient))
    _, logs = jax.lax.scan(step, carry, n_transient + jnp.arange(n_renorm))
    return logs
