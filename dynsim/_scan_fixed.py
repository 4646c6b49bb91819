"""The part of a scan's plan that its arguments fix but for the parameter values
and the number of runs: the model, start, observables and solver options checked,
the options built, and whether the ensemble executor can run the scan (`fixed_plan`).
`plan_scan` keeps it for the next scan of equal arguments (`FIXED`, `_memo.py`)."""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, PyTree

from dynsim import solvers
from dynsim.models import AbstractSystem, check_parameter_names
from dynsim.solvers import SaveSpec

from ._binding import BoundObservable, bind_observables, carries_tangent
from ._checks import (
    check_finite_parameters,
    check_finite_state,
    check_model,
    check_t_span,
    check_y0,
    map_span,
    options_for,
    save_times,
)
from ._memo import ArgumentCache
from ._precision import CHECK_TOLERANCE, to_single
from ._results import RunInfo
from ._scan_plan import value_size
from ._tangent import with_tangent


class Fixed(NamedTuple):
    """What a scan's plan takes from its arguments but the parameter values and the
    number of runs (`fixed_plan`); `FIXED` keeps it for the next scan of equal
    arguments."""

    model: AbstractSystem
    y0: PyTree[Array] | None
    t0: Any
    t1: Any
    args: Any
    key: Array | None
    options: solvers.SolveOptions
    state_names: tuple[str, ...]
    kind: str
    names: tuple[str, ...]
    sampled: tuple
    tangent: bool
    dtype: np.dtype
    solved_size: int
    n_times: int
    n_values: int  # numbers per run the observables return
    n_saved: int  # numbers per run of saved states
    reason: str | None  # why the ensemble executor cannot run the scan
    # A single-precision scan's check: (model, y0, t0, t1, args, options) of its
    # float64 solves; None for other scans (and stochastic ones: keyed per point).
    check: tuple | None
    settings: dict[str, Any]  # the solver settings recorded so far
    # Values made from it once: provenance records by the plan's other settings
    # and the options with a progress bar (`_scan._info`, `_scan._with_progress`).
    derived: dict[Any, RunInfo | solvers.SolveOptions]


FIXED: ArgumentCache[Fixed] = ArgumentCache(32)


def fixed_plan(
    model, param_names, t_span, observables, samples, y0, saveat, solver, rtol, atol,
    dt0, adaptive, key, max_steps, args, executor, precision,
) -> Fixed:  # fmt: skip
    """The part of `plan_scan` that does not depend on the parameter values."""
    check_model(model)
    check_parameter_names(model, param_names)
    check_finite_parameters(model)
    if y0 is not None:
        y0 = check_y0(model, y0)
        check_finite_state(y0, "y0")
    template = model.initial_state() if y0 is None else y0
    state_names = tuple(model.state_names)
    state_size = ravel_pytree(template)[0].size
    bound = bind_observables(observables, state_names, state_size)
    tangent = carries_tangent(bound)
    # What is solved: the model, or the model with its tangent dynamics.
    solved = with_tangent(model) if tangent else model
    solved_size = 2 * state_size + 1 if tangent else state_size
    running = tuple((n, o) for n, o in bound if isinstance(o, BoundObservable))
    sampled = tuple((n, o) for n, o in bound if not isinstance(o, BoundObservable))
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 2:
        raise ValueError(f"samples must be an int >= 2, got {samples!r}")
    reductions = tuple(o for _, o in running)
    problem = solved.problem()
    kind = problem.kind
    if kind == "map":
        n0, n = map_span(t_span)
        t0, t1 = n0, n0 + n
        _check_windows(bound, float(t0), float(t1))
        every = _map_every(n, bound, sampled, samples, saveat)
        save = SaveSpec(reductions=reductions, every=every)
        n_times = 1 if every == 0 else n // every
        settings: dict[str, Any] = dict(solver="iterate")
    else:
        t0, t1 = check_t_span(t_span)
        if bound and float(t1) < float(t0):
            raise ValueError(
                f"observables need a forward t_span (t0 < t1), got {t_span!r}: their "
                "windows [t_from, t1] are defined forwards in time"
            )
        _check_windows(bound, float(t0), float(t1))
        if sampled:
            starts = [float(t0)] + [
                float(f.t_from) for _, (f, _) in sampled if f.t_from is not None
            ]
            ts = jnp.linspace(min(max(s, float(t0)) for s in starts), t1, samples)
        elif bound:
            ts = None  # running observables need no saved states
        else:
            ts = save_times(saveat, t0, t1)
        save = SaveSpec(ts, reductions=reductions)
        n_times = 1 if ts is None else int(ts.shape[0])
        settings = dict(rtol=rtol, atol=atol, dt0=dt0, max_steps=max_steps)
    options = options_for(
        solved,
        solver=solver,
        rtol=rtol,
        atol=atol,
        dt0=dt0,
        adaptive=adaptive,
        max_steps=max_steps,
        saveat=save,
        kind=kind,
    )
    if problem.stochastic and key is None:
        key = jax.random.key(0)
    n_values = sum(value_size(o, state_size) for _, o in bound)
    if executor not in ("auto", "ensemble", "pallas", "vmap"):
        raise ValueError(
            f"executor must be 'auto', 'ensemble', 'pallas' or 'vmap', got {executor!r}"
        )
    if precision not in ("double", "single"):
        raise ValueError(f"precision must be 'double' or 'single', got {precision!r}")
    dtype = np.dtype(np.float32 if precision == "single" else jnp.result_type(float))
    check = None
    if precision == "single" and key is None:
        # The float64 solves of each chunk's check (`_precision.with_achieved_error`):
        # the model, start, times and arguments as given.
        check = (model, y0, t0, t1, args, _check_options(options, kind))
    if precision == "single":
        model, y0, args, options = to_single((model, y0, args, options))
        if kind != "map":
            t0, t1 = np.float32(t0), np.float32(t1)
    reason = "chosen by the caller" if executor == "vmap" else None
    if reason is None:
        reason = solvers.ensemble_support(problem, options, solved_size)
    if executor in ("ensemble", "pallas") and reason is not None:
        raise ValueError(f"the ensemble executor cannot run this scan: {reason}")
    return Fixed(
        model=model,
        y0=y0,
        t0=t0,
        t1=t1,
        args=args,
        key=key,
        options=options,
        state_names=state_names,
        kind=kind,
        names=tuple(n for n, _ in running),
        sampled=sampled,
        tangent=tangent,
        dtype=dtype,
        solved_size=solved_size,
        n_times=n_times,
        n_values=n_values,
        n_saved=0 if bound else n_times * state_size,
        reason=reason,
        check=check,
        settings=settings,
        derived={},
    )


def _check_windows(bound, t0: float, t1: float) -> None:
    for name, obs in bound:
        o = obs[0] if isinstance(obs, tuple) else obs.obs
        if o.t_from is not None and float(o.t_from) >= t1:
            raise ValueError(
                f"observable {name!r}: its window starts at t_from = {o.t_from:g}, "
                f"at or after the end of the solve t1 = {t1:g}; choose t_from in "
                f"[{t0:g}, {t1:g})"
            )


def _map_every(n: int, bound, sampled, samples: int, saveat) -> int:
    if sampled:
        every = max(1, n // samples)
        if n % every:
            raise ValueError(
                f"for a map, the number of iterates {n} must be a multiple of "
                f"{every} (= n // samples)"
            )
        return every
    if bound or saveat is None:
        return 0  # running observables see every iterate; save the last only
    if n % int(saveat):
        raise ValueError(f"saveat={saveat} must divide the number of iterates {n}")
    return n // int(saveat)


def _check_options(options: solvers.SolveOptions, kind: str) -> solvers.SolveOptions:
    """The options of a single-precision scan's float64 check: for adaptive steps,
    tolerances `CHECK_TOLERANCE` times the scan's, and where the scan's solver is an
    explicit Runge–Kutta method, Dopri8, whose eighth order needs a quarter of the
    steps at these tolerances (E1's Lorenz runs at 1e-9: at most 41 steps against
    172 for Tsit5), and the check a third less time; fixed steps: the scan's own
    (the check then measures the round-off of float32)."""
    if not options.adaptive:
        return options
    solver, _ = solvers.resolve_solver(options.solver, kind, True)
    explicit = kind == "ode" and solvers.explicit_runge_kutta(solver)
    return dataclasses.replace(
        options,
        solver="dopri8" if explicit else options.solver,
        rtol=options.rtol * CHECK_TOLERANCE,
        atol=options.atol * CHECK_TOLERANCE,
    )
