"""`dynsim.scan`: one solve per parameter point, vectorised with `jax.vmap`."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping
from typing import Any

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

from ._observables import AbstractObservable, Function
from ._provenance import run_info
from ._results import ScanResult
from ._simulate import (
    _map_step,
    check_model,
    check_y0,
    map_span,
    prepare_solve,
    save_times,
    solve_model,
)

# Memory budget for one chunk's saved samples (bytes); chunks bound device memory.
_CHUNK_BYTES = 1 << 28
_MAX_CHUNK = 1 << 16


def _point_grid(
    params: Mapping[str, ArrayLike], grid: bool
) -> tuple[dict[str, np.ndarray], tuple[int, ...]]:
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
        shape = tuple(v.size for v in axes.values())
        mesh = np.meshgrid(*axes.values(), indexing="ij")
        return {k: m.ravel() for k, m in zip(axes, mesh, strict=True)}, shape
    sizes = {k: v.size for k, v in axes.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(
            f"with grid=False all parameter arrays need the same length, got {sizes}"
        )
    return axes, (next(iter(sizes.values())),)


class _Bound(eqx.Module):
    """An observable with its state selection resolved to flat indices."""

    obs: AbstractObservable
    index: int | None = eqx.field(static=True)

    def __call__(self, ts, ys_flat):
        t_from = -jnp.inf if self.obs.t_from is None else self.obs.t_from
        ys = ys_flat if self.index is None else ys_flat[:, self.index]
        return self.obs.reduce(ts, ys, ts >= t_from)


def _bind(
    observables: Mapping[str, AbstractObservable | Callable] | None,
    state_names: tuple[str, ...],
) -> tuple[tuple[str, _Bound], ...]:
    if observables is None:
        return ()
    if not isinstance(observables, Mapping):
        raise TypeError("observables must be a dict: name -> observable")
    out = []
    for name, obs in observables.items():
        if not isinstance(obs, AbstractObservable):
            if not callable(obs):
                raise TypeError(f"observable {name!r} is not an observable or callable")
            obs = Function(obs)
        sel = obs.state
        if sel is None:
            index = None
        elif isinstance(sel, str):
            if sel not in state_names:
                raise ValueError(
                    f"observable {name!r}: no state {sel!r}; states are "
                    f"{', '.join(state_names)}"
                )
            index = state_names.index(sel)
        else:
            index = int(sel)
            if not -len(state_names) <= index < len(state_names):
                raise ValueError(
                    f"observable {name!r}: state index {index} out of range"
                )
        out.append((name, _Bound(obs, index)))
    return tuple(out)


def _flat_series(ys: PyTree[Array]) -> Array:
    return jax.vmap(lambda y: ravel_pytree(y)[0])(ys)


def _point(
    values: dict[str, Array],
    index: Array,
    model: Any,
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
    observables: tuple[tuple[str, _Bound], ...],
    options: dict[str, Any],
):
    """One parameter point: set the parameters, solve, reduce."""
    m = replace_parameters(model, values)
    if isinstance(m, AbstractMap):
        sol = iterate_map(_map_step, y0, **options, args=(m, args))
    else:
        point_key = None if key is None else jr.fold_in(key, index)
        sol = solve_model(
            m, y0, t0, t1, ts, rtol, atol, dt0, point_key, args, **options
        )
    ok = (sol.status == Status.SUCCESS) | (sol.status == Status.EVENT)
    if observables:
        flat = _flat_series(sol.ys)
        out = {}
        for name, obs in observables:
            value = obs(sol.ts, flat)
            # A failed solve has no meaningful reduction.
            out[name] = jnp.where(ok, value, jnp.nan)
        return out, None, sol.status, sol.stats
    return {}, sol.ys, sol.status, sol.stats


def _chunk(values, index, *rest, observables, options):
    return jax.vmap(
        lambda v, i: _point(v, i, *rest, observables=observables, options=options)
    )(values, index)


_chunk_jit = eqx.filter_jit(_chunk)


def _auto_chunk(n_points: int, n_times: int, state_size: int, n_devices: int) -> int:
    per_point = 8 * max(1, n_times) * max(1, state_size) * 4 + 1024
    size = max(1, min(n_points, _MAX_CHUNK, _CHUNK_BYTES // per_point))
    return n_devices * math.ceil(size / n_devices)


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
      `f(ts, ys) -> array`): reduced on the device from `samples` evenly spaced
      samples of the window; only the reductions are returned. None: return the
      saved states (`saveat` as in `simulate`; default the final state).
    - `samples`: samples per trajectory for the observables.
    - `y0`, `solver`, `rtol`, `atol`, `dt0`, `adaptive`, `max_steps`, `args`: as in
      `dynsim.simulate`.
    - `key`: PRNG key for SDEs; point i uses `jax.random.fold_in(key, i)`, so results
      do not depend on chunking.
    - `chunk_size`: points per compiled call (default: from a memory budget).
    - `progress`: show a progress bar (default: when there is more than one chunk
      and stderr is a terminal).
    - `config`: the config text, recorded as provenance (the CLI passes it).

    **Returns:** a `ScanResult`; `values` holds the observables (NaN where a point
    failed) and `status` a `dynsim.Status` code per point.

    **Raises:** `ValueError` naming an unknown parameter, a bad array or option.
    """
    check_model(model)
    check_parameter_names(model, params)
    flat_params, shape = _point_grid(params, grid)
    n_points = int(np.prod(shape))
    y0 = check_y0(model, y0)
    state_names = tuple(model.state_names)
    bound = _bind(observables, state_names)
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 2:
        raise ValueError(f"samples must be an int >= 2, got {samples!r}")

    is_map = isinstance(model, AbstractMap)
    dtype = jnp.result_type(float)
    if is_map:
        solve_args: tuple = (None,) * 6
        options, ts, n_times = _map_options(t_span, bound, samples, saveat)
        settings: dict[str, Any] = dict(solver="iterate")
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
        if bound:
            starts = [t0] + [
                float(o.obs.t_from) for _, o in bound if o.obs.t_from is not None
            ]
            lo = min(max(s, t0) for s in starts)
            if lo >= t1:
                raise ValueError(f"observable window starts after t1 = {t1}")
            ts = jnp.linspace(lo, setup.t1, samples)
        else:
            ts = save_times(saveat, setup.t0, setup.t1)
        n_times = 1 if ts is None else int(ts.shape[0])
        options = setup.options
        solve_args = (setup.t0, setup.t1, ts, setup.rtol, setup.atol, setup.dt0)
        key = setup.key
        settings = dict(**options, rtol=rtol, atol=atol, dt0=dt0)

    n_devices = jax.local_device_count()
    if chunk_size is None:
        state_size = ravel_pytree(y0)[0].size
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
        progress = n_chunks > 1 and sys.stderr.isatty()

    sharding = None
    if n_devices > 1:
        mesh = jax.sharding.Mesh(np.asarray(jax.local_devices()), ("points",))
        sharding = jax.sharding.NamedSharding(
            mesh, jax.sharding.PartitionSpec("points")
        )

    pieces = []
    with tqdm(
        total=n_points, disable=not progress, unit="pt", desc="scan", leave=False
    ) as bar:
        for c in range(n_chunks):
            lo = c * chunk_size
            idx = np.arange(lo, lo + chunk_size)
            idx = np.where(idx < n_points, idx, 0)  # pad with point 0: same shape
            values = {k: jnp.asarray(v[idx], dtype) for k, v in flat_params.items()}
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
                observables=bound,
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
        params=flat_params,
        axes=tuple(flat_params),
        shape=shape,
        grid=grid,
        status=status,
        stats=stats,
        values=obs_vals,
        ts=None if (bound or ts is None) else np.asarray(ts),
        ys=None if bound else ys,
        info=info,
    )


def _map_options(t_span, bound, samples, saveat):
    n0, n = map_span(t_span)
    if bound:
        every = max(1, n // samples)
        if n % every:
            raise ValueError(
                f"for a map, the number of iterates {n} must be a multiple of "
                f"{every} (= n // samples)"
            )
    elif saveat is None:
        every = 0
    else:
        if n % int(saveat):
            raise ValueError(f"saveat={saveat} must divide the number of iterates {n}")
        every = n // int(saveat)
    n_times = 1 if every == 0 else n // every
    return dict(n=n, n0=n0, save_every=every), None, n_times
