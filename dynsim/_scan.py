"""`dynsim.scan`: one solve per parameter point (and realisation), vectorised with
`jax.vmap`; `dynsim.plan_scan`: the same scan as a plan whose chunks can be run one
by one."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import diffrax as dfx
import jax
from jaxtyping import Array, ArrayLike, PyTree
from tqdm.auto import tqdm

from dynsim import solvers
from dynsim.models import AbstractSystem

from ._checks import (
    check_scan_size,
    gib,
)
from ._executor import chunks
from ._observables import AbstractObservable
from ._provenance import run_info
from ._results import RunInfo, ScanResult
from ._scan_fixed import FIXED, fixed_plan
from ._scan_plan import (
    ScanPlan,
    auto_chunk,
    ensemble_lanes,
    point_axes,
)

# Up to this many runs per chunk, the progress bar follows the solves' time.
_FEW_RUNS = 256
# From this many runs a scan states its size before it starts.
_LARGE_SCAN = 1_000_000
# The most values derived from a fixed part of a plan kept with it (`_info`).
_DERIVED = 64


def plan_scan(
    model: AbstractSystem,
    params: Mapping[str, ArrayLike],
    t_span: tuple[ArrayLike, ArrayLike] = (0.0, 100.0),
    *,
    grid: bool = True,
    realisations: int = 1,
    observables: Mapping[str, AbstractObservable | Callable] | None = None,
    samples: int = 1000,
    y0: PyTree[ArrayLike] | None = None,
    saveat: int | ArrayLike | None = None,
    solver: str | dfx.AbstractSolver | None = None,
    rtol: ArrayLike = 1e-6,
    atol: ArrayLike = 1e-9,
    dt0: ArrayLike | None = None,
    adaptive: bool | None = None,
    key: Array | None = None,
    max_steps: int = 100_000,
    chunk_size: int | None = None,
    progress: bool = False,
    args: Any = None,
    config: str | None = None,
    executor: str = "auto",
    precision: str = "double",
) -> ScanPlan:
    """Check a scan and fix its plan; arguments as `scan`. `ScanPlan.chunk_inputs`
    and `ScanPlan.run_chunk` then run its chunks one by one (their outputs left on
    the devices), and `ScanPlan.assemble` makes the result.

    **Raises:** as `scan`.
    """
    axes, shape = point_axes(params, grid)
    if isinstance(realisations, bool) or not isinstance(realisations, int):
        raise ValueError(f"realisations must be a positive int, got {realisations!r}")
    if realisations < 1:
        raise ValueError(f"realisations must be >= 1, got {realisations}")
    if not axes and realisations == 1:
        raise ValueError(
            "scan needs at least one parameter in `params` (or realisations)"
        )
    arguments = dict(
        model=model, param_names=tuple(params), t_span=t_span,
        observables=observables, samples=samples, y0=y0, saveat=saveat,
        solver=solver, rtol=rtol, atol=atol, dt0=dt0, adaptive=adaptive, key=key,
        max_steps=max_steps, args=args, executor=executor, precision=precision,
    )  # fmt: skip
    # What else the plan depends on: the observables' order (a dict's flattening
    # sorts its keys), the default float (float64 where JAX's x64 is on) and the
    # default PRNG.
    context = (
        tuple(observables) if isinstance(observables, Mapping) else None,
        bool(jax.config.jax_enable_x64),
        str(jax.config.jax_default_prng_impl),
    )
    fixed = FIXED.get((arguments, context), lambda a: fixed_plan(**a[0]))
    n_runs = math.prod(shape) * realisations
    check_scan_size(n_runs, len(axes), fixed.n_values, fixed.n_saved)
    kind, options, reason = fixed.kind, fixed.options, fixed.reason
    use_ensemble = reason is None
    chosen = (
        "vmap" if not use_ensemble else executor if executor == "pallas" else "ensemble"
    )
    n_devices = jax.local_device_count()
    if chunk_size is None:
        chunk_size = auto_chunk(
            n_runs, fixed.n_times, fixed.solved_size, n_devices, ensemble=use_ensemble
        )
    elif (
        isinstance(chunk_size, bool)
        or not isinstance(chunk_size, int)
        or chunk_size < 1
    ):
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    chunk_size = min(chunk_size, n_devices * -(-n_runs // n_devices))
    chunk_size = n_devices * -(-chunk_size // n_devices)
    if progress and kind != "map" and chunk_size <= _FEW_RUNS and not use_ensemble:
        # Narrow chunks (a ramp's realisations, a grid of PDE solves: few, long
        # solves) show the solves' time; their per-step cost dwarfs the meter's.
        # Tied to the chunk size, so it never costs a compilation of its own.
        options = _with_progress(fixed)
    info = _info(fixed, options, config, precision, chosen, reason, chunk_size)
    return ScanPlan(
        model=fixed.model,
        axes=axes,
        shape=shape,
        grid=grid,
        realisations=realisations,
        y0=fixed.y0,
        t0=fixed.t0,
        t1=fixed.t1,
        args=fixed.args,
        key=fixed.key,
        options=options,
        names=fixed.names,
        sampled=fixed.sampled,
        chunk_size=chunk_size,
        info=info,
        executor=chosen,
        ensemble_lanes=(
            ensemble_lanes(chunk_size, n_devices, fixed.dtype) if use_ensemble else 0
        ),
        dtype=fixed.dtype,
        tangent=fixed.tangent,
        check=fixed.check if realisations == 1 else None,
    )


def _info(fixed, options, config, precision, chosen, reason, chunk_size) -> RunInfo:
    """The provenance of a plan (`run_info`), made once per fixed part and the rest
    of its settings (`fixed.derived`): describing the model costs as much as
    planning the rest of a small scan."""
    settings: dict[str, Any] = {}
    if fixed.kind != "map":
        settings["executor"] = chosen
        if chosen == "ensemble":
            settings["lanes"] = ensemble_lanes(
                chunk_size, jax.local_device_count(), fixed.dtype
            )
        elif chosen == "pallas":
            settings["block"] = solvers.BLOCK
        else:
            settings["executor_reason"] = reason
    key = ("info", config, *settings.items())
    info = fixed.derived.get(key)
    if info is None:
        recorded = dict(fixed.settings)
        if fixed.kind != "map":
            recorded.update(
                solver=options.solver, adaptive=options.adaptive, precision=precision
            )
        recorded.update(settings)
        info = run_info(
            fixed.model, fixed.state_names, key=fixed.key, config=config, **recorded
        )
        if len(fixed.derived) >= _DERIVED:
            fixed.derived.clear()
        fixed.derived[key] = info
    return info


def _with_progress(fixed) -> solvers.SolveOptions:
    """`fixed.options` with the solves' progress bar, made once per fixed part (a
    plan's program parts are kept by the options' identity, `_scan_kernel`)."""
    options = fixed.derived.get("progress")
    if options is None:
        options = fixed.derived["progress"] = dataclasses.replace(
            fixed.options, progress=True
        )
    return options


def scan(
    model: AbstractSystem,
    params: Mapping[str, ArrayLike],
    t_span: tuple[ArrayLike, ArrayLike] = (0.0, 100.0),
    *,
    grid: bool = True,
    realisations: int = 1,
    observables: Mapping[str, AbstractObservable | Callable] | None = None,
    samples: int = 1000,
    y0: PyTree[ArrayLike] | None = None,
    saveat: int | ArrayLike | None = None,
    solver: str | dfx.AbstractSolver | None = None,
    rtol: ArrayLike = 1e-6,
    atol: ArrayLike = 1e-9,
    dt0: ArrayLike | None = None,
    adaptive: bool | None = None,
    key: Array | None = None,
    max_steps: int = 100_000,
    chunk_size: int | None = None,
    progress: bool | None = None,
    args: Any = None,
    config: str | None = None,
    store: str | os.PathLike | None = None,
    name: str = "scan",
    overwrite: bool = False,
    client: Any = None,
    executor: str = "auto",
    precision: str = "double",
) -> ScanResult:
    """Solve `model` at every point of a parameter scan.

    One solve is written once and batched over the runs — by the ensemble executor
    (lanes that each take the next pending run when theirs ends) or with `jax.vmap`
    (see `executor`), across local devices; every run has its own adaptive step size
    and its own status, and a failing run never aborts the scan. Runs go in chunks
    of `chunk_size`, padded to one shape so that the compiled kernel is reused: new
    parameter *values* never recompile, and a scan called again with equal
    arguments but for the parameter values reuses its checked plan (the model, the
    start and the solver options are checked once).

    **Arguments:**

    - `model`: the base model (any `dynsim` model, maps included).
    - `params`: parameter name (dotted for nested models, e.g. `"base.rho"`) ->
      1-D array of values (may be empty when `realisations` > 1).
    - `t_span`: `(t0, t1)` (for maps `(0, n)`).
    - `grid`: True: the cartesian product of the arrays (in the order given);
      False: the arrays zipped point by point (all of one length).
    - `realisations`: keyed runs per point (an ensemble axis, for SDEs): results
      then have a `(points, realisations)` leading shape.
    - `observables`: name -> `dynsim.observables` object (or a function
      `f(ts, ys) -> array`), computed on the device during each solve: only the
      reductions are returned. The running observables (all but `Function`) are
      updated on every accepted step from the solver's dense output, so extrema,
      peaks, periods and crossings are exact to the solver's accuracy. None: return
      the saved states (`saveat` as in `simulate`; default the final state).
    - `samples`: the number of evenly spaced samples that `Function` observables
      (functions of a sampled trajectory) see; the other observables do not use it.
    - `y0`: the initial state of every run; default: each point's own
      `model.initial_state()` (evaluated with the point's parameters, so a model
      whose default start depends on its parameters starts where `simulate` would).
    - `solver`, `rtol`, `atol`, `dt0`, `adaptive`, `max_steps`, `args`: as in
      `dynsim.simulate`.
    - `key`: PRNG key for SDEs; point p uses `jax.random.fold_in(key, p)` (and
      realisation r `fold_in` of that with r), so results do not depend on chunking.
    - `chunk_size`: runs per compiled call (default: from a memory budget, and
      small enough that a large scan runs in several chunks).
    - `progress`: show a progress bar (tqdm; in a notebook, its widget): over the
      runs, or, for chunks of a few runs on the generic path (SDE realisations,
      PDE grids, stiff solvers: few, long solves), over the solves' time span.
      Default on; False silences it.
    - `config`: the config text, recorded as provenance (the CLI passes it).
    - `store`, `name`, `overwrite`: stream the scan into run `name` of the HDF5
      file `store`: every finished chunk is kept on disk as it completes, a killed
      scan called again resumes where it stopped (and gives the same result), a
      call whose scan differs from the one recorded is refused naming the
      difference, and a finished run is replaced only with `overwrite=True`
      (layout and guarantees: `docs/hdf5.md`).
    - `client`: a `dask.distributed.Client`: the chunks run as tasks on its
      cluster (the plan sent to each worker once, each chunk a task, collected
      here as they finish; a chunk that fails repeatedly becomes failed runs).
      None: in this process.

    - `executor`: how the runs of a chunk are solved. `"ensemble"`: the ensemble
      executor (`dynsim.solvers.integrate_ensemble`): one loop over steps whose
      lanes each take the next pending run when their solve ends, so no lane idles
      while the slowest run of the chunk finishes (forward-only ODEs of small
      states with explicit Runge–Kutta solvers); `"vmap"`: the generic path, a
      vectorised solve per run; `"auto"` (default): the ensemble executor where it
      applies, else the generic path, with the reason in
      `result.info.solver_settings["executor_reason"]`; `"pallas"`: the executor's
      programs as one fused kernel (`dynsim.solvers.integrate_blocks`: blocks of
      `solvers.BLOCK` runs in lockstep, a GPU design; interpreted on a CPU, so only
      when asked). All give the same steps and results (to round-off).
    - `precision`: `"double"` (default) or `"single"`: the solves in float32 (the
      model's parameters, the state, times and tolerances), for speed where the
      tolerances allow it (rtol ≳ 1e-5); results are float32. A single-precision
      scan (of one realisation per point, without a `key`) reports the error it
      achieves, `result.info.solver_settings["achieved_error"]`: each chunk solves
      8 of its runs again in float64 at a thousandth of the tolerances, alongside
      its own solve (details: `docs/solvers.md`).

    **Returns:** a `ScanResult`; `values` holds the observables (NaN where a run
    failed), `ys` the saved states (NaN at the times a failed run never reached) and
    `status` a `dynsim.Status` code per run.

    **Raises:** `ValueError` naming an unknown parameter, a bad array or option (an
    observable window that starts after t1, observables on a reversed `t_span`),
    `MemoryError` for a scan whose result cannot fit in memory; with a `store`,
    `ValueError` for a finished run or a differing recorded scan (see above).
    """
    progress = True if progress is None else bool(progress)
    plan = plan_scan(
        model,
        params,
        t_span,
        grid=grid,
        realisations=realisations,
        observables=observables,
        samples=samples,
        y0=y0,
        saveat=saveat,
        solver=solver,
        rtol=rtol,
        atol=atol,
        dt0=dt0,
        adaptive=adaptive,
        key=key,
        max_steps=max_steps,
        chunk_size=chunk_size,
        progress=progress,
        args=args,
        config=config,
        executor=executor,
        precision=precision,
    )
    return run_scan(
        plan,
        progress=progress,
        store=store,
        name=name,
        overwrite=overwrite,
        client=client,
    )


def run_scan(
    plan: ScanPlan,
    *,
    progress: bool = True,
    store: str | os.PathLike | None = None,
    name: str = "scan",
    overwrite: bool = False,
    client: Any = None,
    load: bool = True,
) -> ScanResult | None:
    """Run a planned scan (arguments as `scan`); with a `store` and `load=False`
    nothing is read back (memory bounded by a chunk) and None is returned."""
    in_solve = plan.options.progress
    if store is not None:
        from ._store import run_stored

        show = progress and not in_solve
        return run_stored(plan, Path(store), name, overwrite, show, client, load)
    if progress and plan.n_runs >= _LARGE_SCAN:
        need = check_scan_size(plan.n_runs, len(plan.axes), 0, 0)
        tqdm.write(
            f"scan: {plan.n_runs:,} points in {plan.n_chunks:,} chunks of "
            f"{plan.chunk_size:,}; results about {gib(need)} in memory",
            file=sys.stderr,
        )
    pieces: list[Any] = [None] * plan.n_chunks
    show = progress and not in_solve
    bar = tqdm(total=plan.n_runs, unit="pt", desc="scan", leave=False) if show else None
    with bar if bar is not None else contextlib.nullcontext():
        for c, out in chunks(plan, range(plan.n_chunks), client):
            pieces[c] = out
            if bar is not None:
                bar.update(min(plan.chunk_size, plan.n_runs - c * plan.chunk_size))
    return plan.assemble(pieces)
