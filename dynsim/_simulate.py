"""`dynsim.simulate`: one trajectory of a model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
import numpy as np
from jaxtyping import Array, ArrayLike, PyTree

from dynsim.models import (
    AbstractIMEXModel,
    AbstractLangevinModel,
    AbstractMap,
    AbstractModel,
    AbstractSDEModel,
    AbstractSemilinearModel,
    parameters,
)
from dynsim.solvers import (
    LangevinSpec,
    SaveSpec,
    check_options,
    get_solver,
    integrate,
    iterate_map,
)

from ._provenance import run_info
from ._results import Trajectory

SaveAtLike = int | ArrayLike | None


# The model travels as `args`, so new parameter values are new data, not new code.
def _drift(t, y, args):
    model, user_args = args
    return model.vector_field(t, y, user_args)


def _nonstiff(t, y, args):
    model, user_args = args
    return model.nonstiff_part(t, y, user_args)


def _stiff(t, y, args):
    model, user_args = args
    return model.stiff_part(t, y, user_args)


def _linear(t, y, args):
    model, _ = args
    return model.linear_part(y)


def _factor(c, args):
    model, _ = args
    return model.factor_shifted(c)


def _linear_solve(factor, rhs, args):
    model, _ = args
    return model.solve_shifted(factor, rhs)


def _diffusion(t, y, args):
    model, user_args = args
    return model.diffusion(t, y, user_args)


def _map_step(n, y, args):
    model, user_args = args
    return model.step(n, y, user_args)


class _UserEvent(eqx.Module):
    """Adapts a user's condition `c(t, y, args)` to diffrax's event signature."""

    fn: Callable[[Any, Any, Any], Any]

    def __call__(self, t, y, args, **kwargs):
        return self.fn(t, y, args[1])


def problem_kind(model: AbstractModel) -> str:
    """ "langevin", "sde", "imex" or "ode"."""
    if isinstance(model, AbstractLangevinModel):
        return "langevin"
    if isinstance(model, AbstractSDEModel):
        return "sde"
    return "imex" if isinstance(model, AbstractIMEXModel) else "ode"


def default_solver(model: AbstractModel) -> str:
    """Tsit5 for ODEs; Euler–Maruyama (fixed step) for SDEs."""
    return "euler" if isinstance(model, AbstractSDEModel) else "tsit5"


def check_model(model: Any) -> None:
    if not isinstance(model, (AbstractModel, AbstractMap)):
        raise TypeError(
            "expected a dynsim model (a subclass of dynsim.AbstractModel or "
            f"dynsim.AbstractMap), got {type(model).__name__}"
        )


def _concrete(x: Any) -> np.ndarray | None:
    try:
        return np.asarray(x)
    except (
        TypeError,
        jax.errors.ConcretizationTypeError,
        jax.errors.TracerArrayConversionError,
    ):
        return None  # traced: checked by nobody but the solve itself


def check_finite_parameters(model: Any) -> None:
    """Refuse a model with a NaN or infinite parameter before any solve.

    **Raises:** `ValueError` naming the parameter.
    """
    for name, value in parameters(model).items():
        v = _concrete(value)
        if v is not None and v.dtype.kind in "fc" and not np.all(np.isfinite(v)):
            raise ValueError(
                f"{type(model).__name__} parameter {name!r} is not finite "
                f"({v.tolist() if v.size <= 8 else 'some of its entries'}); "
                "parameters must be finite numbers"
            )


def check_finite_state(y0: PyTree[Array], what: str = "y0") -> None:
    """Refuse a NaN or infinite initial state. **Raises:** `ValueError`."""
    for leaf in jtu.tree_leaves(y0):
        v = _concrete(leaf)
        if v is not None and not np.all(np.isfinite(v)):
            bad = np.flatnonzero(~np.isfinite(v.ravel()))
            raise ValueError(
                f"{what} is not finite (entries {bad[:8].tolist()} are NaN or inf); "
                "a solve needs a finite initial state"
            )


def check_t_span(t_span: Any) -> tuple[Array, Array]:
    """(t0, t1) as float arrays; raises `ValueError` for anything else."""
    try:
        t0, t1 = t_span
    except (TypeError, ValueError):
        raise ValueError(f"t_span must be a pair (t0, t1), got {t_span!r}") from None
    t0 = jnp.asarray(t0, dtype=jnp.result_type(float))
    t1 = jnp.asarray(t1, dtype=jnp.result_type(float))
    if t0.ndim or t1.ndim:
        raise ValueError(f"t_span must hold two scalars, got {t_span!r}")
    if not isinstance(t0, jax.core.Tracer) and not isinstance(t1, jax.core.Tracer):
        if not (np.isfinite(float(t0)) and np.isfinite(float(t1))):
            raise ValueError(f"t_span must be finite, got {t_span!r}")
        if float(t1) == float(t0):
            raise ValueError(f"t_span is empty: t0 = t1 = {float(t0)}")
    return t0, t1


def check_y0(model: Any, y0: PyTree[ArrayLike] | None) -> PyTree[Array]:
    """The initial state: the model's default, or `y0` checked against its shape."""
    expected = model.initial_state()
    if y0 is None:
        return expected
    if jtu.treedef_is_leaf(jtu.tree_structure(expected)):
        y0 = jnp.asarray(y0)  # a list or tuple of numbers is one array
    y0 = jtu.tree_map(lambda a: jnp.asarray(a, dtype=jnp.result_type(float)), y0)
    e_shapes = jtu.tree_map(jnp.shape, expected)
    g_shapes = jtu.tree_map(jnp.shape, y0)
    if jtu.tree_structure(expected) != jtu.tree_structure(y0) or e_shapes != g_shapes:
        names = ", ".join(model.state_names)
        raise ValueError(
            f"y0 has shape {g_shapes}, but {type(model).__name__}'s state has shape "
            f"{e_shapes} ({names})"
        )
    return y0


def save_times(saveat: SaveAtLike, t0: Array, t1: Array) -> Array | None:
    """`saveat` -> an array of save times, or None for the end point only."""
    if saveat is None:
        return None
    if isinstance(saveat, (int, np.integer)) and not isinstance(saveat, bool):
        if saveat < 1:
            raise ValueError(f"saveat must be >= 1 points, got {saveat}")
        return jnp.linspace(t0, t1, int(saveat))
    ts = jnp.asarray(saveat, dtype=jnp.result_type(float))
    if ts.ndim != 1 or ts.shape[0] == 0:
        raise ValueError("saveat must be an int (number of points) or a 1-D array")
    if not isinstance(ts, jax.core.Tracer) and not isinstance(t0, jax.core.Tracer):
        lo, hi = sorted((float(t0), float(t1)))
        tsn = np.asarray(ts)
        if tsn.min() < lo or tsn.max() > hi:
            raise ValueError(f"saveat times must lie within t_span [{lo}, {hi}]")
        direction = np.sign(float(t1) - float(t0))
        if np.any(np.diff(tsn) * direction < 0):
            raise ValueError("saveat times must be ordered from t0 to t1")
    return ts


class SolveSetup(NamedTuple):
    """Validated inputs of a model solve, as arrays where values may change."""

    t0: Array
    t1: Array
    rtol: Array
    atol: Array
    dt0: Array | None
    key: Array | None
    options: dict[str, Any]  # solver, adaptive, max_steps: static


def prepare_solve(
    model: AbstractModel,
    t_span: Any,
    *,
    solver: str | dfx.AbstractSolver | None,
    rtol: ArrayLike,
    atol: ArrayLike,
    dt0: ArrayLike | None,
    adaptive: bool | None,
    max_steps: int,
    key: Array | None,
) -> SolveSetup:
    """Check the options of a solve (before tracing) and fill in the defaults.

    **Raises:** `ValueError` naming the invalid option.
    """
    t0, t1 = check_t_span(t_span)
    kind = problem_kind(model)
    solver = default_solver(model) if solver is None else solver
    stochastic = kind in ("sde", "langevin")
    adaptive = (not stochastic) if adaptive is None else bool(adaptive)
    check_options(
        solver,
        kind,
        rtol=rtol,
        atol=atol,
        dt0=dt0,
        adaptive=adaptive,
        max_steps=max_steps,
    )
    if kind == "langevin" and isinstance(solver, str):
        _check_langevin_solve(model, solver)
    if stochastic and key is None:
        key = jr.key(0)
    dtype = jnp.result_type(float)
    return SolveSetup(
        t0,
        t1,
        jnp.asarray(rtol, dtype),
        jnp.asarray(atol, dtype),
        None if dt0 is None else jnp.asarray(dt0, dtype),
        key,
        dict(solver=solver, adaptive=adaptive, max_steps=max_steps),
    )


def _check_langevin_solve(model: AbstractLangevinModel, solver: str) -> None:
    if "langevin" not in get_solver(solver).kinds:
        return
    if model.drive(jnp.zeros(()), None) is not None:
        raise ValueError(
            f"solver {solver!r} integrates autonomous Langevin dynamics; a model with "
            "an input drive f(t) needs a general SDE solver (e.g. 'sra', 'euler')"
        )
    temperature = model.temperature
    if not isinstance(temperature, jax.core.Tracer) and float(temperature) <= 0:
        raise ValueError(
            f"solver {solver!r} needs a temperature > 0 (got {float(temperature)}); "
            "at T = 0 the dynamics are deterministic: use an ODE or SDE solver"
        )


def _langevin_grad(z, args):
    # diffrax's drift is −u ∇f(x); with u = T, ∇f = ∇Φ / T.
    model, user_args = args
    return jax.grad(model.potential)(z, user_args) / model.temperature


def map_span_times(t_span: Any) -> tuple[int, int]:
    """(n0, n1): the first and last iterate index of a map's `t_span`."""
    n0, n = map_span(t_span)
    return n0, n0 + n


def map_span(t_span: Any) -> tuple[int, int]:
    """(n0, n): the first index and the number of iterates of a map's `t_span`."""
    try:
        n0, n1 = (int(v) for v in t_span)
    except (TypeError, ValueError):
        raise ValueError(
            f"t_span of a map must be a pair of ints (0, n), got {t_span!r}"
        ) from None
    if n1 <= n0:
        raise ValueError(f"t_span of a map must have n1 > n0, got {t_span!r}")
    return n0, n1 - n0


def solve_model(
    model: AbstractModel,
    y0: PyTree[Array],
    t0: Array,
    t1: Array,
    ts: Array | None,
    rtol: Array,
    atol: Array,
    dt0: Array | None,
    key: Array | None,
    args: Any,
    *,
    solver: str | dfx.AbstractSolver,
    adaptive: bool,
    max_steps: int,
    dense: bool = False,
    event: Callable[..., Any] | None = None,
    adjoint: Any = None,
    throw: bool = False,
    reductions: tuple = (),
    progress: bool = False,
):
    """Solve one model (pure; traced under `jit` / `vmap` by `simulate` and `scan`)."""
    kind = problem_kind(model)
    sde = kind in ("sde", "langevin")
    semilinear = isinstance(model, AbstractSemilinearModel)
    return integrate(
        _nonstiff if kind == "imex" else _drift,
        y0,
        t0,
        t1,
        (model, args),
        solver=solver,
        rtol=rtol,
        atol=atol,
        dt0=dt0,
        adaptive=adaptive,
        saveat=SaveSpec(ts, dense),
        max_steps=max_steps,
        stiff_field=(_linear if semilinear else _stiff) if kind == "imex" else None,
        linear_solve=(_factor, _linear_solve) if semilinear else None,
        diffusion=_diffusion if sde else None,
        noise_shape=tuple(model.noise_shape) if sde else None,
        key=key,
        event=None if event is None else _UserEvent(event),
        adjoint=adjoint,
        throw=throw,
        langevin=(
            LangevinSpec(model.gamma, model.temperature, _langevin_grad)
            if kind == "langevin"
            else None
        ),
        reductions=reductions,
        progress=progress,
    )


_solve_jit = eqx.filter_jit(solve_model)


@eqx.filter_jit
def _iterate_jit(model, y0, args, *, n, n0, save_every):
    return iterate_map(_map_step, y0, n, (model, args), save_every=save_every, n0=n0)


def simulate(
    model: AbstractModel | AbstractMap,
    t_span: tuple[ArrayLike, ArrayLike] = (0.0, 100.0),
    *,
    y0: PyTree[ArrayLike] | None = None,
    saveat: SaveAtLike = None,
    solver: str | dfx.AbstractSolver | None = None,
    rtol: ArrayLike = 1e-6,
    atol: ArrayLike = 1e-9,
    dt0: ArrayLike | None = None,
    adaptive: bool | None = None,
    key: Array | None = None,
    max_steps: int = 100_000,
    throw: bool = True,
    event: Callable[[Any, Any, Any], Any] | None = None,
    adjoint: Any = None,
    dense: bool = False,
    args: Any = None,
) -> Trajectory:
    """Simulate one trajectory of `model` over `t_span`.

    **Arguments:**

    - `model`: a `dynsim.AbstractModel` (ODE, IMEX or SDE) or `dynsim.AbstractMap`.
    - `t_span`: `(t0, t1)`; for maps `(0, n)` means n iterates.
    - `y0`: the initial state (default `model.initial_state()`), checked for shape.
    - `saveat`: None (the end point only), an int n (n evenly spaced points including
      both ends; for maps, every (n_iterates / n)-th iterate) or an array of times.
    - `solver`: a name from `dynsim.solvers.SOLVERS` or a diffrax solver. Default
      `"tsit5"` for ODEs and `"euler"` (Euler–Maruyama) for SDEs.
    - `rtol`, `atol`: tolerances of the adaptive (PID) step-size controller.
    - `dt0`: initial step (adaptive) or the fixed step (`adaptive=False`, SDEs).
    - `adaptive`: adaptive step control; default True for ODEs, False for SDEs.
    - `key`: PRNG key of an SDE's Brownian path (default `jax.random.key(0)`); the
      same key gives the same path.
    - `max_steps`: the step budget.
    - `throw`: raise on a failed solve (default); `False` returns the status instead.
    - `event`: `c(t, y, args)`: stop where this real function changes sign (located by
      Newton's method on the dense output) or where it is `True`.
    - `adjoint`: None (forward-mode differentiable, fastest), or `"recursive"` /
      `"backsolve"` / `"direct"` / a diffrax adjoint to differentiate in reverse mode.
    - `dense`: keep the dense interpolant (`Trajectory.evaluate`).
    - `args`: passed through to the model's `vector_field(t, y, args)`.

    **Returns:** a `Trajectory` (`ts`, `ys`, `status`, `stats`, `info`).

    **Raises:** `ValueError` / `TypeError` for invalid input, with the reason; a
    runtime error for a failed solve when `throw=True`.
    """
    check_model(model)
    check_finite_parameters(model)
    y0 = check_y0(model, y0)
    check_finite_state(y0)
    if isinstance(model, AbstractMap):
        return _simulate_map(model, t_span, y0, saveat, args)
    setup = prepare_solve(
        model,
        t_span,
        solver=solver,
        rtol=rtol,
        atol=atol,
        dt0=dt0,
        adaptive=adaptive,
        max_steps=max_steps,
        key=key,
    )
    ts = save_times(saveat, setup.t0, setup.t1)
    sol = _solve_jit(
        model,
        y0,
        setup.t0,
        setup.t1,
        ts,
        setup.rtol,
        setup.atol,
        setup.dt0,
        setup.key,
        args,
        **setup.options,
        dense=dense,
        event=event,
        adjoint=adjoint,
        throw=throw,
    )
    info = run_info(
        model,
        model.state_names,
        key=setup.key,
        rtol=rtol,
        atol=atol,
        dt0=dt0,
        **setup.options,
    )
    return Trajectory(sol.ts, sol.ys, sol.status, sol.stats, info, sol.interpolation)


def _simulate_map(model, t_span, y0, saveat, args) -> Trajectory:
    n0, n = map_span(t_span)
    if saveat is None:
        save_every = 0
    elif isinstance(saveat, (int, np.integer)) and not isinstance(saveat, bool):
        if saveat < 1 or n % saveat:
            raise ValueError(
                f"for a map, saveat={saveat} must divide the number of iterates {n}"
            )
        save_every = n // int(saveat)
    else:
        raise ValueError("for a map, saveat must be None or an int number of points")
    sol = _iterate_jit(model, y0, args, n=n, n0=n0, save_every=save_every)
    info = run_info(model, model.state_names, solver="iterate", n_iterates=n)
    return Trajectory(sol.ts, sol.ys, sol.status, sol.stats, info)
