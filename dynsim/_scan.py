"""`dynsim.scan`: one solve per parameter point, vectorised with `jax.vmap`."""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
import numpy as np
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, ArrayLike, PyTree
from tqdm.auto import tqdm

from dynsim.models import AbstractMap, check_parameter_names, replace_parameters
from dynsim.solvers import Status, iterate_map

from ._observables import (
    AbstractObservable,
    BoundObservable,
    Function,
    Peaks,
    bind_observables,
)
from ._provenance import run_info
from ._results import ScanResult
from ._simulate import (
    _map_step,
    check_finite_parameters,
    check_finite_state,
    check_model,
    check_y0,
    map_span,
    map_span_times,
    prepare_solve,
    save_times,
    solve_model,
)

# Memory budget for one chunk's saved samples (bytes); chunks bound device memory.
_CHUNK_BYTES = 1 << 28
_MAX_CHUNK = 1 << 16
# Large scans run in about this many chunks (chunks of at least _MIN_AUTO_CHUNK).
_TARGET_CHUNKS = 20
_MIN_AUTO_CHUNK = 2048
# Up to this many points per chunk, the progress bar follows the solves' time.
_FEW_POINTS = 256
# From this many points a scan states its size before it starts.
_LARGE_SCAN = 1_000_000


class _Points(NamedTuple):
    """The scan's points without materialising them: a grid is the cartesian
    product of `axes` (C order), a zipped scan the axes side by side."""

    axes: dict[str, np.ndarray]
    shape: tuple[int, ...]
    grid: bool

    @property
    def n(self) -> int:
        return math.prod(self.shape)

    def values(self, index: np.ndarray) -> dict[str, np.ndarray]:
        """Every parameter's value at the flat point indices `index`."""
        if not self.grid:
            return {k: v[index] for k, v in self.axes.items()}
        sub = np.unravel_index(index, self.shape)
        return {k: v[i] for (k, v), i in zip(self.axes.items(), sub, strict=True)}


def _point_grid(params: Mapping[str, ArrayLike], grid: bool) -> _Points:
    axes = {}
    for name, values in params.items():
        v = np.asarray(values, dtype=float)
        if v.ndim == 0:
            v = v[None]
        if v.ndim != 1 or v.size == 0:
            raise ValueError(
                f"scan values of {name!r} must be a non-empty 1-D array, got shape "
                f"{v.shape}"
            )
        if not np.all(np.isfinite(v)):
            raise ValueError(f"scan values of {name!r} must be finite")
        axes[name] = v
    if not axes:
        raise ValueError("scan needs at least one parameter in `params`")
    if grid:
        return _Points(axes, tuple(v.size for v in axes.values()), True)
    sizes = {k: v.size for k, v in axes.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(
            f"with grid=False all parameter arrays need the same length, got {sizes}"
        )
    return _Points(axes, (next(iter(sizes.values())),), False)


def _flat_series(ys: PyTree[Array]) -> Array:
    return jax.vmap(lambda y: ravel_pytree(y)[0])(ys)


def _point(
    values: dict[str, Array],
    index: Array,
    model: Any,
    y0: PyTree[Array] | None,
    t0: Array,
    t1: Array,
    ts: Array | None,
    rtol: Array,
    atol: Array,
    dt0: Array | None,
    key: Array | None,
    args: Any,
    *,
    running: tuple[tuple[str, BoundObservable], ...],
    sampled: tuple[tuple[str, tuple[Function, int | None]], ...],
    options: dict[str, Any],
):
    """One parameter point: set the parameters, solve, reduce."""
    m = replace_parameters(model, values)
    # Without a y0 every point starts from its own model's default initial state.
    start = m.initial_state() if y0 is None else y0
    reductions = tuple(obs for _, obs in running)
    if isinstance(m, AbstractMap):
        sol = iterate_map(
            _map_step, start, **options, args=(m, args), reductions=reductions
        )
    else:
        point_key = None if key is None else jr.fold_in(key, index)
        sol = solve_model(
            m,
            start,
            t0,
            t1,
            ts,
            rtol,
            atol,
            dt0,
            point_key,
            args,
            **options,
            reductions=reductions,
        )
    ok = (sol.status == Status.SUCCESS) | (sol.status == Status.EVENT)
    # A failed solve has no meaningful values: NaN, never finite-looking numbers.
    nan = lambda a: jnp.where(ok, a, jnp.nan)  # noqa: E731
    if not (running or sampled):
        # Saved states a failed solve never reached are NaN (diffrax leaves the last
        # state it reached in the end-point slot); those it did reach are real.
        reached = jnp.isfinite(sol.ts) & (ok | (ts is not None))
        return (
            {},
            jtu.tree_map(lambda a: _where_times(reached, a), sol.ys),
            sol.status,
            sol.stats,
        )
    out = {name: nan(v) for (name, _), v in zip(running, sol.reductions, strict=True)}
    if sampled:
        flat = _flat_series(sol.ys)
        for name, (fn, idx) in sampled:
            out[name] = nan(fn.fn(sol.ts, flat if idx is None else flat[:, idx]))
    return out, None, sol.status, sol.stats


def _where_times(reached: Array, ys: Array) -> Array:
    shape = reached.shape + (1,) * (ys.ndim - 1)
    return jnp.where(reached.reshape(shape), ys, jnp.nan)


def _chunk(values, index, *rest, running, sampled, options):
    return jax.vmap(
        lambda v, i: _point(
            v, i, *rest, running=running, sampled=sampled, options=options
        )
    )(values, index)


_chunk_jit = eqx.filter_jit(_chunk)


def _auto_chunk(n_points: int, n_times: int, state_size: int, n_devices: int) -> int:
    per_point = 8 * max(1, n_times) * max(1, state_size) * 4 + 1024
    size = max(1, min(n_points, _MAX_CHUNK, _CHUNK_BYTES // per_point))
    # Enough chunks on large scans for a progress bar that moves (and a short tail
    # of lanes waiting for the slowest point of a chunk).
    size = min(size, max(_MIN_AUTO_CHUNK, math.ceil(n_points / _TARGET_CHUNKS)))
    return n_devices * math.ceil(size / n_devices)


def _result_bytes(n_points: int, n_params: int, n_values: int, n_saved: int) -> int:
    """Bytes of a scan's result on the host: parameters, values, status, stats."""
    return n_points * 8 * (n_params + n_values + n_saved + 4)


def _available_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def check_scan_size(n_points: int, n_params: int, n_values: int, n_saved: int) -> int:
    """The memory a scan's result needs on the host, checked against this machine.

    **Returns:** the estimate in bytes. **Raises:** `MemoryError` with the numbers
    when the result cannot fit in memory.
    """
    need = _result_bytes(n_points, n_params, n_values, n_saved)
    have = _available_memory()
    if have is not None and need > 0.8 * have:
        raise MemoryError(
            f"a scan of {n_points:,} points needs about {_gib(need)} for its results "
            f"in memory, more than this machine can hold ({_gib(have)}); scan fewer "
            "points, fewer observables or fewer saved times"
        )
    return need


def scan(
    model: Any,
    params: Mapping[str, ArrayLike],
    t_span: tuple[ArrayLike, ArrayLike] = (0.0, 100.0),
    *,
    grid: bool = True,
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
) -> ScanResult:
    """Solve `model` at every point of a parameter scan.

    One solve is written once and batched with `jax.vmap` (and sharded across local
    devices); every point has its own adaptive step size and its own status, and a
    failing point never aborts the scan. Points run in chunks of `chunk_size`, padded
    to one shape so that the compiled kernel is reused: new parameter *values* never
    recompile.

    **Arguments:**

    - `model`: the base model (any `dynsim` model, maps included).
    - `params`: parameter name (dotted for nested models, e.g. `"base.rho"`) ->
      1-D array of values.
    - `t_span`: `(t0, t1)` (for maps `(0, n)`).
    - `grid`: True: the cartesian product of the arrays (in the order given);
      False: the arrays zipped point by point (all of one length).
    - `observables`: name -> `dynsim.observables` object (or a function
      `f(ts, ys) -> array`), computed on the device during each solve: only the
      reductions are returned. The running observables (all but `Function`) are
      updated on every accepted step from the solver's dense output, so extrema,
      peaks, periods and crossings are exact to the solver's accuracy. None: return
      the saved states (`saveat` as in `simulate`; default the final state).
    - `samples`: the number of evenly spaced samples that `Function` observables
      (functions of a sampled trajectory) see; the other observables do not use it.
    - `y0`: the initial state of every point; default: each point's own
      `model.initial_state()` (evaluated with the point's parameters, so a model
      whose default start depends on its parameters starts where `simulate` would).
    - `solver`, `rtol`, `atol`, `dt0`, `adaptive`, `max_steps`, `args`: as in
      `dynsim.simulate`.
    - `key`: PRNG key for SDEs; point i uses `jax.random.fold_in(key, i)`, so results
      do not depend on chunking.
    - `chunk_size`: points per compiled call (default: from a memory budget, and
      small enough that a large scan runs in several chunks).
    - `progress`: show a progress bar (tqdm; in a notebook, its widget): over the
      points, or, for chunks of a few points, over the solves' time span.
      Default on; False silences it.
    - `config`: the config text, recorded as provenance (the CLI passes it).

    **Returns:** a `ScanResult`; `values` holds the observables (NaN where a point
    failed), `ys` the saved states (NaN at the times a failed point never
    reached) and `status` a
    `dynsim.Status` code per point.

    **Raises:** `ValueError` naming an unknown parameter, a bad array or option (an
    observable window that starts after t1, observables on a reversed `t_span`),
    `MemoryError` for a scan whose result cannot fit in memory.
    """
    check_model(model)
    check_parameter_names(model, params)
    check_finite_parameters(model)
    points = _point_grid(params, grid)
    n_points = points.n
    if y0 is not None:
        y0 = check_y0(model, y0)
        check_finite_state(y0, "y0")
    template = model.initial_state() if y0 is None else y0
    state_names = tuple(model.state_names)
    bound = bind_observables(observables, state_names)
    running = tuple((n, o) for n, o in bound if isinstance(o, BoundObservable))
    sampled = tuple((n, o) for n, o in bound if not isinstance(o, BoundObservable))
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 2:
        raise ValueError(f"samples must be an int >= 2, got {samples!r}")

    is_map = isinstance(model, AbstractMap)
    dtype = jnp.result_type(float)
    if is_map:
        solve_args: tuple = (None,) * 6
        options, n_times = _map_options(t_span, bound, sampled, samples, saveat)
        settings: dict[str, Any] = dict(solver="iterate")
        t0, t1 = (float(v) for v in map_span_times(t_span))
        _check_windows(bound, t0, t1)
    else:
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
        t0, t1 = float(setup.t0), float(setup.t1)
        if bound and t1 < t0:
            raise ValueError(
                f"observables need a forward t_span (t0 < t1), got {t_span!r}: their "
                "windows [t_from, t1] are defined forwards in time"
            )
        _check_windows(bound, t0, t1)
        if sampled:
            starts = [t0] + [
                float(f.t_from) for _, (f, _) in sampled if f.t_from is not None
            ]
            lo = min(max(s, t0) for s in starts)
            ts = jnp.linspace(lo, setup.t1, samples)
        elif bound:
            ts = None  # running observables need no saved states
        else:
            ts = save_times(saveat, setup.t0, setup.t1)
        n_times = 1 if ts is None else int(ts.shape[0])
        options = setup.options
        solve_args = (setup.t0, setup.t1, ts, setup.rtol, setup.atol, setup.dt0)
        key = setup.key
        settings = dict(**options, rtol=rtol, atol=atol, dt0=dt0)

    state_size = ravel_pytree(template)[0].size
    n_values = sum(_value_size(o, state_size) for _, o in bound)
    saved = 0 if bound else n_times * state_size
    need = check_scan_size(n_points, len(points.axes), n_values, saved)

    n_devices = jax.local_device_count()
    if chunk_size is None:
        chunk_size = _auto_chunk(n_points, n_times, state_size, n_devices)
    elif (
        isinstance(chunk_size, bool)
        or not isinstance(chunk_size, int)
        or chunk_size < 1
    ):
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    chunk_size = min(chunk_size, n_devices * math.ceil(n_points / n_devices))
    chunk_size = n_devices * math.ceil(chunk_size / n_devices)
    n_chunks = math.ceil(n_points / chunk_size)
    if progress is None:
        progress = True
    # The bar counts points, except for narrow chunks (a ramp's realisations, a grid
    # of PDE solves: few, long solves), where it follows the solves' time: their
    # per-step cost dwarfs the meter's, which a wide chunk of quick solves would
    # notice. Tied to the chunk size, so it never costs a compilation of its own.
    in_solve = bool(progress) and chunk_size <= _FEW_POINTS and not is_map
    if in_solve:
        options = dict(options, progress=True)
    if progress and n_points >= _LARGE_SCAN:
        tqdm.write(
            f"scan: {n_points:,} points in {n_chunks:,} chunks of {chunk_size:,}; "
            f"results about {_gib(need)} in memory",
            file=sys.stderr,
        )

    sharding = None
    if n_devices > 1:
        mesh = jax.sharding.Mesh(np.asarray(jax.local_devices()), ("points",))
        sharding = jax.sharding.NamedSharding(
            mesh, jax.sharding.PartitionSpec("points")
        )

    pieces = []
    with tqdm(
        total=n_points,
        disable=not progress or in_solve,
        unit="pt",
        desc="scan",
        leave=False,
    ) as bar:
        for c in range(n_chunks):
            lo = c * chunk_size
            idx = np.arange(lo, lo + chunk_size)
            idx = np.where(idx < n_points, idx, 0)  # pad with point 0: same shape
            values = {k: jnp.asarray(v, dtype) for k, v in points.values(idx).items()}
            index = jnp.asarray(idx)
            if sharding is not None:
                values, index = jax.device_put((values, index), sharding)
            out = _chunk_jit(
                values,
                index,
                model,
                y0,
                *solve_args,
                key,
                args,
                running=running,
                sampled=sampled,
                options=options,
            )
            n_real = min(chunk_size, n_points - lo)
            pieces.append(jtu.tree_map(lambda a, k=n_real: np.asarray(a)[:k], out))
            bar.update(n_real)

    def cat(*xs):
        return np.concatenate(xs, axis=0)

    obs_vals, ys, status, stats = jtu.tree_map(cat, *pieces)
    info = run_info(model, state_names, key=key, config=config, **settings)
    return ScanResult(
        params=points.values(np.arange(n_points)),
        axes=tuple(points.axes),
        shape=points.shape,
        grid=grid,
        status=status,
        stats=stats,
        values=obs_vals,
        ts=None if (bound or ts is None) else np.asarray(ts),
        ys=None if bound else ys,
        info=info,
    )


def _value_size(obs: Any, state_size: int) -> int:
    """Numbers per point an observable returns (for the memory estimate)."""
    if isinstance(obs, tuple):  # a function of samples: assume one per state
        return state_size
    o = obs.obs
    if not o.componentwise:
        return getattr(o, "max_peaks", 1) if isinstance(o, Peaks) else 1
    return state_size if obs.index is None else 1


def _check_windows(bound, t0: float, t1: float) -> None:
    for name, obs in bound:
        o = obs[0] if isinstance(obs, tuple) else obs.obs
        if o.t_from is not None and float(o.t_from) >= t1:
            raise ValueError(
                f"observable {name!r}: its window starts at t_from = {o.t_from:g}, "
                f"at or after the end of the solve t1 = {t1:g}; choose t_from in "
                f"[{t0:g}, {t1:g})"
            )


def _map_options(t_span, bound, sampled, samples, saveat):
    n0, n = map_span(t_span)
    if sampled:
        every = max(1, n // samples)
        if n % every:
            raise ValueError(
                f"for a map, the number of iterates {n} must be a multiple of "
                f"{every} (= n // samples)"
            )
    elif bound:
        every = 0  # running observables see every iterate; save the last only
    elif saveat is None:
        every = 0
    else:
        if n % int(saveat):
            raise ValueError(f"saveat={saveat} must divide the number of iterates {n}")
        every = n // int(saveat)
    n_times = 1 if every == 0 else n // every
    return dict(n=n, n0=n0, save_every=every), n_times
