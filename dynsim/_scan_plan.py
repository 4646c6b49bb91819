"""The parts of a scan: a frozen plan (axes, chunking, bound observables, options),
its chunks' inputs and call (one jitted call, the unit that runs on other devices
and workers; the program itself in `_scan_kernel.py`) and an assembler of the
chunks into a `ScanResult`.

A scan is a list of *runs*: every parameter point (of a grid of axes, or of axes
zipped point by point) times `realisations` keyed repetitions. Run g is point
g // R, realisation g % R; the points of a chunk are generated from the axes when the
chunk is prepared, never all at once.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jax.dtypes import canonicalize_dtype
from jaxtyping import Array, ArrayLike, PyTree

from dynsim.models import AbstractSystem
from dynsim.solvers import SolveOptions

from ._observables import Function
from ._packing import Layout, unpack
from ._placement import device_order, kept_on_runs, on_runs
from ._precision import CHECK_RUNS, check_positions, with_achieved_error
from ._results import RunInfo, ScanResult
from ._scan_kernel import call_chunk

# Memory budget for one chunk's saved samples (bytes); chunks bound device memory.
_CHUNK_BYTES = 1 << 28
_MAX_CHUNK = 1 << 16
# Large scans run in about this many chunks (chunks of at least _MIN_AUTO_CHUNK).
_TARGET_CHUNKS = 20
_MIN_AUTO_CHUNK = 2048
_MIN_ENSEMBLE_CHUNK = 16384
# The narrowest compiled kernel (see `ScanPlan.lanes`).
_MIN_LANES = 2
# The ensemble executor on a CPU: about this many runs per lane (the tail where the
# last lanes finish is then short), and per device at least _MIN_DEVICE_BYTES of
# lanes per number of a run (128 float32 or 64 float64 lanes: the loop's fixed cost
# per step is shared by fewer below; XLA's CPU runtime runs a loop body whose
# buffers are all this small in order on the device's thread, a wider one as a graph
# on its thread pool, whose handoffs cost more than the wider lanes gain below a few
# thousand runs) and at most _MAX_DEVICE_LANES (wider stops paying).
_RUNS_PER_LANE = 8
_MIN_DEVICE_BYTES = 512
_MAX_DEVICE_LANES = 2048


def point_axes(
    params: Mapping[str, ArrayLike], grid: bool
) -> tuple[dict[str, np.ndarray], tuple[int, ...]]:
    """The checked axes of a scan and the shape of its points.

    **Raises:** `ValueError` for a non-1-D, empty or non-finite axis, or zipped axes
    of different lengths.
    """
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
    if grid or not axes:
        return axes, tuple(v.size for v in axes.values())
    sizes = {k: v.size for k, v in axes.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(
            f"with grid=False all parameter arrays need the same length, got {sizes}"
        )
    return axes, (next(iter(sizes.values())),)


@dataclasses.dataclass(frozen=True, eq=False)
class ScanPlan:
    """Everything a scan's chunks need, fixed before the first one runs.

    - `model`: the base model; `axes`, `shape`, `grid`: the points (see
      `point_values`); `realisations`: keyed runs per point.
    - `y0`: the start of every run (None: each point's own `initial_state()`).
    - `t0`, `t1`, `args`, `key`: the solves' span, arguments and base PRNG key (run
      g of point p, realisation r uses `fold_in(key, p)`, then `fold_in(·, r)` when
      there are several realisations: results never depend on chunking).
    - `options`: the `SolveOptions` of every solve (running observables in
      `options.saveat.reductions`); `names`: their names; `sampled`: functions of
      sampled trajectories `(name, (Function, index))`.
    - `chunk_size`: runs per compiled call (a multiple of the device count).
    - `info`: the provenance recorded with the result.
    - `executor`: `"ensemble"` (the ensemble executor, `solvers.integrate_ensemble`:
      `ensemble_lanes` lanes refilled from the chunk's runs) or `"vmap"` (the
      generic path, `vmap(integrate)`; `info.solver_settings["executor_reason"]`
      says why the executor declined).
    - `dtype`: the floating-point type of the solves (float32 for
      `precision="single"`).
    - `tangent`: the runs carry their tangent dynamics after the model's state
      (`dynsim._tangent`: an observable needs them).
    - `check`: a single-precision scan's check, `(model, y0, t0, t1, args,
      options)` of float64 solves (the tolerances tighter): each chunk solves
      `CHECK_RUNS` of its runs again with them, alongside its own solve, and
      reports how far its values are from theirs (`_precision`); None: no check.
    """

    model: AbstractSystem
    axes: dict[str, np.ndarray]
    shape: tuple[int, ...]
    grid: bool
    realisations: int
    y0: PyTree[Array] | None
    t0: Any
    t1: Any
    args: Any
    key: Array | None
    options: SolveOptions
    names: tuple[str, ...]
    sampled: tuple[tuple[str, tuple[Function, int | None]], ...]
    chunk_size: int
    info: RunInfo
    executor: str
    ensemble_lanes: int
    dtype: np.dtype
    tangent: bool = False
    check: tuple | None = None

    @property
    def n_points(self) -> int:
        return math.prod(self.shape)

    @property
    def n_runs(self) -> int:
        return self.n_points * self.realisations

    @property
    def n_chunks(self) -> int:
        return math.ceil(self.n_runs / self.chunk_size)

    @property
    def observed(self) -> bool:
        """Whether the runs return observables (else their saved states)."""
        return bool(self.names or self.sampled)

    def point_values(self, points: np.ndarray) -> dict[str, np.ndarray]:
        """Every parameter's value at the flat point indices `points`."""
        if not self.axes:
            return {}
        if not self.grid or len(self.axes) == 1:  # (points index the axes)
            return {k: v[points] for k, v in self.axes.items()}
        sub = np.unravel_index(points, self.shape)
        return {k: v[i] for (k, v), i in zip(self.axes.items(), sub, strict=True)}

    @property
    def check_runs(self) -> int:
        """Runs of each chunk that its check solves again: `CHECK_RUNS`, a
        multiple of the local devices (each checks its share)."""
        n = jax.local_device_count()
        return n * -(-CHECK_RUNS // n)

    @property
    def lanes(self) -> int:
        """The width of the compiled kernel: `chunk_size`, but at least
        `_MIN_LANES` per local device (XLA compiles a width-1 vmap into other code,
        whose results differ in the last bits: with two lanes or more a run's
        numbers do not depend on the chunk size), and a multiple of the number of
        local devices (a plan may run where there are more devices than where it
        was made: a Dask worker)."""
        n = jax.local_device_count()
        return n * -(-max(self.chunk_size, _MIN_LANES * n) // n)

    def chunk_inputs(
        self, c: int
    ) -> tuple[dict[str, Array], Array | None, Array | None, Array | None]:
        """The inputs of chunk `c`: parameter values, point and realisation
        indices (for the runs' keys; None for the ensemble executor, whose ODEs
        take none), split over the local devices along the runs
        (`_placement.kept_on_runs`: the same points again are not copied again),
        padded to `lanes` runs with the chunk's first run (one shape, one
        compilation), and with a `check`, the positions of the runs it solves again
        (`_precision.check_positions`, on the devices; else None); for the
        ensemble executor on several devices, in the order the devices take them
        (`run_chunk`'s outputs come in the same order, `to_host` puts them in the
        runs' order). A checked chunk's values are float64 (its program casts them
        for its own solve)."""
        start = c * self.chunk_size
        n_real = min(self.chunk_size, self.n_runs - start)
        check_runs = 0 if self.check is None else self.check_runs
        runs, at = _chunk_runs(
            self.lanes, n_real, self._interleaved(), check_runs,
            tuple(jax.local_devices()),
        )  # fmt: skip
        if self.realisations == 1:
            points, real = runs + start, np.zeros_like(runs)
        else:
            points, real = np.divmod(runs + start, self.realisations)
        dtype = self.dtype if self.check is None else canonicalize_dtype(float)
        values = {k: np.asarray(v, dtype) for k, v in self.point_values(points).items()}
        if self.executor in ("ensemble", "pallas"):
            keys = (None, None)
        else:
            index = jnp.asarray(0).dtype  # (int32 unless x64 is on, as jnp.asarray)
            keys = (points.astype(index), real.astype(index))
        return (*kept_on_runs((values, *keys)), at)

    def run_chunk(
        self,
        inputs: tuple[dict[str, Any], Any, Any, Array | None],
        diagnostics: bool = False,
        packed: bool = False,
    ) -> Any:
        """Run one chunk (one jitted call) from its `inputs` (`chunk_inputs`:
        arrays split over the local devices along the runs as
        `_placement.runs_sharding` says, or host arrays); the outputs stay on the
        device: (observables, saved states, status, step counts, check), their runs
        in the order of `inputs` (`chunk_inputs`; the check: None, or `(error,
        compared)` per device, see `_precision`). With `diagnostics` (the ensemble
        executor only): `(outputs, iterations)`, the executor's loop iterations on
        each device. `packed`: the outputs as one array of bytes and its layout, for
        `to_host` (`_packing`)."""
        if diagnostics and self.executor != "ensemble":  # (not "pallas")
            raise ValueError("diagnostics are the ensemble executor's")
        return call_chunk(*self._program_parts(diagnostics), *inputs, packed=packed)

    def _program_parts(self, diagnostics: bool = False) -> tuple[tuple, tuple]:
        """The fixed parts and settings of this plan's chunk program
        (`_scan_kernel.call_chunk`)."""
        # (Realisations are keys to the generic path: the executor solves ODEs.)
        several = self.realisations > 1 and self.executor == "vmap"
        fixed = (
            self.model, self.y0, self.t0, self.t1, self.args, self.key,
            self.options, self.sampled, self.check,
        )  # fmt: skip
        settings = (
            self.executor, self.names, self.dtype, self.tangent,
            self.ensemble_lanes, several, diagnostics,
        )  # fmt: skip
        return fixed, settings

    def to_host(self, c: int, out: tuple[Array, Layout]) -> Any:
        """Chunk `c`'s packed outputs (`run_chunk(..., packed=True)`) as NumPy
        arrays, (observables, saved states, status, step counts, check), the runs
        in their order, padding removed (the check's one number per device)."""
        n_real = min(self.chunk_size, self.n_runs - c * self.chunk_size)
        runs, check = unpack(*out, n_real, self._interleaved() > 1)
        return (*runs, check)

    def _interleaved(self) -> int:
        """Over how many devices a chunk's runs are interleaved (`device_order`):
        the ensemble executor's on several local devices, else 1 (in order)."""
        n = jax.local_device_count()
        return n if self.executor in ("ensemble", "pallas") else 1

    def assemble(self, pieces: list[Any]) -> ScanResult:
        """The `ScanResult` of the chunks' host outputs, in run order."""

        def cat(*xs):
            a = np.concatenate(xs, axis=0)
            if self.realisations > 1:
                a = a.reshape((self.n_points, self.realisations) + a.shape[1:])
            return _read_only(a)

        values, ys, status, stats = jtu.tree_map(cat, *(p[:4] for p in pieces))
        info = self.info
        if self.check is not None:
            info = with_achieved_error(info, [p[4] for p in pieces])
        ts = self.options.saveat.ts
        params = self.point_values(np.arange(self.n_points))
        return ScanResult(
            params={k: _read_only(v) for k, v in params.items()},
            axes=tuple(self.axes),
            shape=self.shape,
            grid=self.grid,
            status=status,
            stats=stats,
            values=values,
            ts=None if (self.observed or ts is None) else np.asarray(ts),
            ys=None if self.observed else ys,
            info=info,
            realisations=self.realisations,
        )


def _read_only(a: np.ndarray) -> np.ndarray:
    """`a` (a new array, which nothing else holds) read-only: the result keeps it
    as it is instead of copying it (`_protocol.frozen`)."""
    a.flags.writeable = False
    return a


@functools.lru_cache(maxsize=64)
def _chunk_runs(
    lanes: int, n_real: int, n: int, check_runs: int, devices: tuple
) -> tuple[np.ndarray, Array | None]:
    """A chunk's runs (of `n_real`, padded to `lanes` with its first), counted
    from its first, in the order the `devices` take them (interleaved over `n`
    of them: device d solves runs d, d + n, d + 2n, ..., the `_scan_kernel`
    program; else each a block of the runs in order); and where `check_runs` > 0,
    the positions of the runs a check solves again (`check_positions`, split over
    the devices as the runs). Kept: every chunk of a scan but its last has the
    same (the positions' copy to the devices alone costs ≈ 0.1 ms, a twentieth of
    a small scan's call)."""
    runs = np.arange(lanes)
    runs = np.where(runs < n_real, runs, 0)
    if n > 1:
        runs = runs[device_order(lanes, n)]
    runs.flags.writeable = False
    if not check_runs:
        return runs, None
    # Each device's share of the chunk's runs (not its padding).
    block = lanes // len(devices)
    shares = [
        -(-(n_real - d) // n) if n > 1 else n_real - d * block
        for d in range(len(devices))
    ]
    shares = [min(block, max(0, k)) for k in shares]
    return runs, on_runs(check_positions(shares, check_runs // len(devices)))


def ensemble_lanes(chunk_size: int, n_devices: int, dtype: np.dtype) -> int:
    """Lanes of the ensemble executor for chunks of `chunk_size` runs over
    `n_devices` devices (each device its share of both) solved in `dtype`. On a CPU
    a device's lanes are an eighth of its runs (each lane solves about eight runs,
    so the tail where the last lanes finish is short), but at least 512 bytes' worth
    (128 float32 or 64 float64 lanes; or all its runs) and at most 2048; a GPU keeps
    a quarter of the chunk in flight."""
    per_device = max(1, chunk_size // n_devices)
    if jax.default_backend() == "cpu":
        lanes = max(
            min(per_device, _MIN_DEVICE_BYTES // np.dtype(dtype).itemsize),
            min(_MAX_DEVICE_LANES, per_device // _RUNS_PER_LANE),
        )
    else:
        lanes = per_device // 4
    return n_devices * max(_MIN_LANES, lanes)


def auto_chunk(
    n_runs: int,
    n_times: int,
    state_size: int,
    n_devices: int,
    *,
    ensemble: bool = False,
) -> int:
    """Runs per chunk: within a memory budget for the saved states, at most
    `_MAX_CHUNK`, and small enough that a large scan runs in about
    `_TARGET_CHUNKS` chunks (a progress bar that moves, a short tail of lanes
    waiting for a chunk's slowest run). The ensemble executor, whose lanes refill,
    takes chunks of at least `_MIN_ENSEMBLE_CHUNK` (see `ensemble_lanes`)."""
    per_run = 8 * max(1, n_times) * max(1, state_size) * 4 + 1024
    size = max(1, min(n_runs, _MAX_CHUNK, _CHUNK_BYTES // per_run))
    least = _MIN_ENSEMBLE_CHUNK if ensemble else _MIN_AUTO_CHUNK
    size = min(size, max(least, math.ceil(n_runs / _TARGET_CHUNKS)))
    return n_devices * math.ceil(size / n_devices)


def value_size(obs: Any, state_size: int) -> int:
    """Numbers per run an observable returns (for the memory estimate)."""
    if isinstance(obs, tuple):  # a function of samples: assume one per state
        return state_size
    return obs.obs.numbers(state_size if obs.index is None else 1, state_size)
