"""`dynsim.simulate`: one trajectory of a model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import diffrax as dfx
import equinox as eqx
import jax.random as jr
import numpy as np
from jaxtyping import Array, ArrayLike, PyTree

from dynsim import solvers
from dynsim.models import AbstractSystem
from dynsim.solvers import SaveSpec

from ._checks import (
    SaveAtLike,
    check_finite_parameters,
    check_finite_state,
    check_model,
    check_t_span,
    check_y0,
    map_span,
    options_for,
    save_times,
)
from ._provenance import run_info
from ._results import Trajectory


def _solve(problem, y0, t0, t1, args, *, options, key):
    # Through the package namespace, so that the one solve path can be observed.
    return solvers.integrate(problem, y0, t0, t1, args, options=options, key=key)


_solve_jit = eqx.filter_jit(_solve)


def simulate(
    model: AbstractSystem,
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
    problem = model.problem()
    if problem.kind == "map":
        n0, n = map_span(t_span)
        options = options_for(
            model, saveat=SaveSpec(every=_map_every(saveat, n)), kind="map"
        )
        sol = _solve_jit(problem, y0, n0, n0 + n, args, options=options, key=None)
        info = run_info(model, model.state_names, solver="iterate", n_iterates=n)
        return Trajectory(sol.ts, sol.ys, sol.status, sol.stats, info)
    t0, t1 = check_t_span(t_span)
    options = options_for(
        model,
        solver=solver,
        rtol=rtol,
        atol=atol,
        dt0=dt0,
        adaptive=adaptive,
        max_steps=max_steps,
        adjoint=adjoint,
        saveat=SaveSpec(save_times(saveat, t0, t1), dense),
        event=event,
        throw=throw,
        kind=problem.kind,
    )
    if problem.stochastic and key is None:
        key = jr.key(0)
    sol = _solve_jit(problem, y0, t0, t1, args, options=options, key=key)
    info = run_info(
        model,
        model.state_names,
        key=key,
        solver=options.solver,
        rtol=rtol,
        atol=atol,
        dt0=dt0,
        adaptive=options.adaptive,
        max_steps=max_steps,
    )
    return Trajectory(sol.ts, sol.ys, sol.status, sol.stats, info, sol.interpolation)


def _map_every(saveat: SaveAtLike, n: int) -> int:
    """The iterate stride of a map's `saveat` (0: the last iterate only)."""
    if saveat is None:
        return 0
    if isinstance(saveat, (int, np.integer)) and not isinstance(saveat, bool):
        if saveat < 1 or n % saveat:
            raise ValueError(
                f"for a map, saveat={saveat} must divide the number of iterates {n}"
            )
        return n // int(saveat)
    raise ValueError("for a map, saveat must be None or an int number of points")
