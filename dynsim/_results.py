"""Result types: immutable, printable, convertible to NumPy, saved by `dynsim.io`."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from typing import Any, ClassVar

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Int, PyTree, Real

from dynsim.solvers import Status

from ._protocol import AbstractResult, Gridded, freeze_fields


@dataclasses.dataclass(frozen=True)
class RunInfo:
    """Provenance of a result: what was solved, how, and from which seed.

    - `model`: the model's import path (e.g. `"dynsim.models.Lorenz"`).
    - `model_params`: JSON text of `dynsim.models.describe(model)`.
    - `state_names`: labels of the flattened state.
    - `solver`: JSON text of the solver settings (name, rtol, atol, dt0, ...).
    - `seed`: the PRNG seed (or key data) for stochastic runs, else None.
    - `config`: the TOML text when run from a config file, else None.
    """

    model: str
    model_params: str
    state_names: tuple[str, ...]
    solver: str
    seed: int | tuple[int, ...] | None = None
    config: str | None = None

    @property
    def params(self) -> dict[str, Any]:
        """The model description as a dict."""
        return json.loads(self.model_params)

    @property
    def solver_settings(self) -> dict[str, Any]:
        """The solver settings as a dict."""
        return json.loads(self.solver)


def _short_model(info: RunInfo) -> str:
    return info.model.rsplit(".", 1)[-1]


def _status_summary(status: np.ndarray) -> str:
    codes, counts = np.unique(status, return_counts=True)
    return ", ".join(
        f"{Status(int(c)).name.lower()}={n}" for c, n in zip(codes, counts, strict=True)
    )


def _as_jax(tree: Any) -> Any:
    return jax.tree_util.tree_map(jnp.asarray, tree)


class Trajectory(eqx.Module, AbstractResult):
    """One solution of `dynsim.simulate`.

    - `ts`: save times `(times,)`; for maps, iterate indices.
    - `ys`: states at `ts`, `(times, *state_shape)` (a PyTree for PyTree states).
    - `status`: a `dynsim.Status` code (0 = success); see `.ok` and `.message`.
    - `stats`: step counts (`num_steps`, `num_accepted_steps`, `num_rejected_steps`).
    - `interpolation`: dense output when `simulate(..., dense=True)`; see `evaluate`.
    - `info`: a `RunInfo` with the provenance.
    """

    ts: Real[Array, " times"] = eqx.field(converter=jnp.asarray)
    ys: PyTree[Array] = eqx.field(converter=_as_jax)
    status: Int[Array, ""] = eqx.field(converter=jnp.asarray)
    stats: dict[str, Array] = eqx.field(converter=_as_jax)
    info: RunInfo = eqx.field(static=True)
    interpolation: dfx.DenseInterpolation | None = None

    kind: ClassVar[str] = "trajectory"
    dims: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "ts": ("time",),
        "ys": ("time", "state"),
    }
    transient: ClassVar[tuple[str, ...]] = ("interpolation",)

    @property
    def ok(self) -> bool:
        """Whether the solve succeeded (reached t1, or stopped at an event)."""
        return Status(int(self.status)).ok

    def stored_fields(self) -> dict[str, Any]:
        # PyTree states are stored flattened, one column per entry of state_names.
        fields = AbstractResult.stored_fields(self)
        fields["ys"] = _flat_states(self.ys, 1)
        return fields

    def figures(self, **options: Any) -> list[tuple[str, Any]]:
        """A time series and (two or more states) a phase portrait."""
        from .plot import phase_portrait, time_series

        figs = [("timeseries", time_series(self))]
        if len(self.state_names) >= 2:
            figs.append(("phase", phase_portrait(self)))
        return figs

    @property
    def message(self) -> str:
        """What the status means, in words."""
        return Status(int(self.status)).message

    @property
    def state_names(self) -> tuple[str, ...]:
        return self.info.state_names

    def __getitem__(self, name: str) -> Array:
        """The time series of one state component, by name (e.g. `traj["x"]`)."""
        names = self.info.state_names
        if name not in names:
            raise KeyError(f"no state {name!r}; states are {', '.join(names)}")
        flat = jnp.reshape(self.ys, (jnp.shape(self.ts)[0], -1))
        return flat[:, names.index(name)]

    def evaluate(self, t: ArrayLike) -> PyTree[Array]:
        """The dense solution at time(s) t (needs `simulate(..., dense=True)`)."""
        if self.interpolation is None:
            raise ValueError("no dense output: call simulate(..., dense=True)")
        return jax.vmap(self.interpolation.evaluate)(jnp.atleast_1d(t))

    def to_numpy(self) -> dict[str, Any]:
        """ts, ys, status and stats as NumPy arrays."""
        return {
            "ts": np.asarray(self.ts),
            "ys": jax.tree_util.tree_map(np.asarray, self.ys),
            "status": np.asarray(self.status),
            "stats": {k: np.asarray(v) for k, v in self.stats.items()},
        }

    def __repr__(self) -> str:
        if isinstance(self.ts, jax.core.Tracer):
            return f"Trajectory({_short_model(self.info)}, traced)"
        ts = np.asarray(self.ts)
        span = f"t=[{ts[0]:g}, {ts[-1]:g}]" if ts.size else "t=[]"
        steps = int(np.asarray(self.stats["num_steps"]))
        return (
            f"Trajectory({_short_model(self.info)}, {span}, {ts.size} saved, "
            f"{steps} steps, status={Status(int(self.status)).name.lower()})"
        )


def _flat_states(ys: Any, lead: int) -> np.ndarray:
    """States as a NumPy array, PyTree states flattened (one column per name)."""
    if isinstance(ys, (np.ndarray, jax.Array)):
        return np.asarray(ys)
    from jax.flatten_util import ravel_pytree

    flat = ravel_pytree
    for _ in range(lead):
        flat = jax.vmap(flat)
    return np.asarray(flat(ys)[0])


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class ScanResult(AbstractResult):
    """Per-point results of `dynsim.scan`, on the host as read-only NumPy arrays.

    - `params`: parameter name -> values `(points,)` (every point listed; for a grid,
      `axes` gives the grid's parameter order and `shape` its shape).
    - `axes`, `shape`, `grid`: the layout of the points; `reshape(a)` puts a per-point
      array on the grid.
    - `status`: a `dynsim.Status` code per point (0 = success).
    - `stats`: step counts per point.
    - `values`: observable name -> reduced values `(points, ...)`.
    - `ts`, `ys`: saved times and states `(points, times, *state)` when no observables
      were asked for; else None.
    - `info`: a `RunInfo` with the provenance of the base model and solver.
    - `realisations`: keyed runs per point; with more than one, every per-point
      array has a `(points, realisations, ...)` leading shape.
    """

    params: Mapping[str, np.ndarray]
    axes: tuple[str, ...]
    shape: tuple[int, ...]
    grid: bool
    status: np.ndarray
    stats: Mapping[str, np.ndarray]
    values: Mapping[str, np.ndarray]
    ts: np.ndarray | None
    ys: np.ndarray | None
    info: RunInfo
    realisations: int = 1

    kind: ClassVar[str] = "scan"
    stored_names: ClassVar[Mapping[str, str]] = {"values": "observables"}

    def field_dims(self, name: str) -> tuple[str, ...]:
        run = ("point", "realisation") if self.realisations > 1 else ("point",)
        return {
            "params": ("point",),
            "status": run,
            "stats": run,
            "values": (*run, "state"),
            "ts": ("time",),
            "ys": (*run, "time", "state"),
        }.get(name, ())

    def figures(self, **options: Any) -> list[tuple[str, Any]]:
        """Per observable a heat map, orbit diagram or line (see
        `dynsim.plot.scan_figures`, which takes the `options`)."""
        from .plot import scan_figures

        keep = {k: options[k] for k in ("curves_for", "threshold") if k in options}
        return scan_figures(self, **keep)

    def gridded(self) -> Gridded | None:
        """A grid scan with observables on its grid: one coordinate per axis, and
        each observable, the status and the step counts with one dimension per
        axis (then `realisation`, then the observable's own dimensions)."""
        if not (self.grid and self.axes and self.values):
            return None
        coords = {k: self.axis_values(k) for k in self.axes}
        lead = tuple(self.axes)
        shape = self.shape
        if self.realisations > 1:
            lead, shape = (*lead, "realisation"), (*shape, self.realisations)
            coords["realisation"] = np.arange(self.realisations)

        def on_grid(name: str, a: np.ndarray) -> tuple[tuple[str, ...], np.ndarray]:
            a = np.asarray(a)
            extra = a.shape[len(lead) - len(self.axes) + 1 :]
            own = tuple(f"{name}_dim{i}" for i in range(len(extra)))
            return (*lead, *own), a.reshape(shape + extra)

        variables = {"status": on_grid("status", self.status)}
        variables |= {k: on_grid(k, v) for k, v in self.stats.items()}
        variables |= {k: on_grid(k, v) for k, v in self.values.items()}
        return Gridded(coords, variables)

    def stored_fields(self) -> dict[str, Any]:
        fields = AbstractResult.stored_fields(self)
        if self.ys is not None:
            fields["ys"] = _flat_states(self.ys, 2 if self.realisations == 1 else 3)
        return fields

    def __post_init__(self):
        freeze_fields(self)
        n = math.prod(self.shape)
        for k, v in self.params.items():
            if v.shape != (n,):
                raise ValueError(f"param {k!r} has shape {v.shape}, expected ({n},)")

    @property
    def n_points(self) -> int:
        return int(self.status.shape[0])

    @property
    def n_failed(self) -> int:
        return int(np.sum(~self.ok_mask))

    @property
    def message(self) -> str:
        return self.status_message

    def reshape(self, a: ArrayLike) -> np.ndarray:
        """A per-point array `(points, ...)` laid out on the scan grid
        `(*shape, ...)`."""
        a = np.asarray(a)
        return a.reshape(self.shape + a.shape[1:])

    def axis_values(self, name: str) -> np.ndarray:
        """The values of a grid axis (the distinct values of that parameter)."""
        if name not in self.axes:
            raise KeyError(f"no scan axis {name!r}; axes are {', '.join(self.axes)}")
        if not self.grid:
            return self.params[name]
        i = self.axes.index(name)
        index = [0] * len(self.shape)
        index[i] = slice(None)
        return self.reshape(self.params[name])[tuple(index)]

    def to_numpy(self) -> dict[str, Any]:
        return {
            "params": dict(self.params),
            "status": self.status,
            "stats": dict(self.stats),
            "values": dict(self.values),
            "ts": self.ts,
            "ys": self.ys,
        }

    def __repr__(self) -> str:
        layout = "x".join(str(s) for s in self.shape) or "1"
        what = ", ".join(self.values) if self.values else "trajectories"
        reps = f" x {self.realisations} realisations" if self.realisations > 1 else ""
        return (
            f"ScanResult({_short_model(self.info)} over "
            f"{', '.join(self.axes) or 'no parameter'} "
            f"[{layout}{' grid' if self.grid else ''}{reps}], {what}; "
            f"{_status_summary(self.status)})"
        )
