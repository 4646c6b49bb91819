"""Attractors and their basins, from many starts at once.

Every start is a run of one `dynsim.scan` (the starts are parameters of a wrapper
model whose initial state they set), so it is chunked, batched on the ensemble
executor and shown with a progress bar like any scan, and keeps a few numbers per
start whatever the run's length.

**Convergence** (fixed memory, batched): a run has reached its attractor when the
extremes of every component over the last quarter of the run equal (within `tol`)
those over the last half: while a transient lasts the earlier window's extremes are
wider. Equilibria, cycles and tori pass exactly; a chaotic set passes once both
windows have filled it (lengthen `t_span` if its starts come back "not converged").
The extremes over the last quarter are the run's **features**: a run's attractor is
told by them (equilibria and cycles by their positions and extents, chaotic sets by
their bounding boxes; mirror images differ).

**Labels.** Features within `tol` (relative to the size of the region all runs end
in) are one attractor; the attractors are numbered 1, 2, … in the order of the first
start that reaches each. 0: not converged; −1: the run failed (e.g. escaped to
infinity). The grouping is done over all starts at the end, so attractors found in
different chunks are merged. Basin fractions come with their binomial standard errors
√(f(1 − f)/N) (random starts: the basin-stability estimate of Menck et al., Nature
Physics 9 (2013) 89).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from dynsim.models import AbstractMap, AbstractModel, param

from .._checks import map_span_times
from .._custom_types import FlowOrMap
from .._observables import FinalState, Max, Min
from .._protocol import AbstractResult, checked, freeze_fields
from .._provenance import run_info
from .._results import RunInfo


def _started_state(model) -> Array:
    """`model.base`'s initial state with the components `model.index` replaced by
    its parameters start_0, start_1, …"""
    y = jnp.ravel(jnp.asarray(model.base.initial_state(), float))
    count = len(model.index)
    values = jnp.stack([getattr(model, f"start_{k}") for k in range(count)])
    return y.at[jnp.asarray(model.index)].set(values.astype(y.dtype))


class _Started(AbstractModel):
    """A flow `base` started from its initial state with the components `index`
    replaced by the parameters start_0, start_1, … (fields added per count,
    `_started_class`)."""

    base: AbstractModel
    index: tuple[int, ...] = eqx.field(static=True)

    @property
    def state_names(self) -> tuple[str, ...]:
        return self.base.state_names

    def vector_field(self, t, y, args):
        return self.base.vector_field(t, y, args)

    def initial_state(self):
        return _started_state(self)


class _StartedMap(AbstractMap):
    """A map `base` started as `_Started` starts a flow."""

    base: AbstractMap
    index: tuple[int, ...] = eqx.field(static=True)

    @property
    def state_names(self) -> tuple[str, ...]:
        return self.base.state_names

    def step(self, n, y, args):
        return self.base.step(n, y, args)

    def initial_state(self):
        return _started_state(self)


@functools.cache
def _started_class(count: int, discrete: bool = False) -> type:
    fields = {f"start_{k}": param(0.0) for k in range(count)}
    annotations = {f"start_{k}": Float[Array, ""] for k in range(count)}
    base = _StartedMap if discrete else _Started
    name = f"{base.__name__[1:]}{count}"
    return type(name, (base,), {"__annotations__": annotations, **fields})


@dataclasses.dataclass(frozen=True, eq=False)
class Basins(AbstractResult):
    """Which attractor each start reaches.

    - `starts`: state name -> the values of that component (the grid's axes for a
      grid of starts, else one value per start); `axes`, `shape`, `grid`: their
      layout, as for `ScanResult`.
    - `labels`: per start (on the grid's shape): 1, 2, … the attractor, 0 not
      converged, −1 the run failed.
    - `attractors` (attractors, state): a point of each (the end of the first run
      that reached it); `features` (attractors, 2, state): the minima and maxima of
      each component over the last quarter of that run.
    - `fractions`, `stderr`: label -> the fraction of the starts and its standard
      error √(f(1 − f)/N).
    - `status`: the runs' (per start; `ok`: every run succeeded, some may still be
      unconverged, label 0); `message`, `info`.
    """

    starts: Mapping[str, np.ndarray]
    axes: tuple[str, ...]
    shape: tuple[int, ...]
    grid: bool
    labels: np.ndarray
    attractors: np.ndarray
    features: np.ndarray
    fractions: Mapping[str, float]
    stderr: Mapping[str, float]
    status: np.ndarray
    message: str
    info: RunInfo

    kind: ClassVar[str] = "basins"
    dims: ClassVar = {
        "attractors": ("attractor", "state"),
        "features": ("attractor", "extreme", "state"),
    }

    def field_dims(self, name: str) -> tuple[str, ...]:
        if name in ("labels", "status"):
            return self.axes if self.grid else ("start",)
        if name == "starts":
            return ("start",)
        return tuple(self.dims.get(name, ()))

    def __post_init__(self):
        object.__setattr__(self, "axes", tuple(self.axes))
        object.__setattr__(self, "shape", tuple(self.shape))
        freeze_fields(self)

    def fraction(self, label: int) -> float:
        """The fraction of starts with `label` (0 where none)."""
        return float(self.fractions.get(str(label), 0.0))

    def figures(self, **options):
        from ..plot import basins

        return [("basins", basins(self, **options))]

    def __repr__(self) -> str:
        starts, found = self.labels.size, len(self.attractors)
        return f"Basins({starts} starts, {found} attractors, {self.message!r})"


def basins(
    model: FlowOrMap,
    starts: Mapping[str, ArrayLike],
    t_span: tuple[float, float],
    *,
    grid: bool = True,
    tol: float = 1e-2,
    solver: str | None = None,
    rtol: float = 1e-6,
    atol: float = 1e-9,
    max_steps: int = 100_000,
    chunk_size: int | None = None,
    progress: bool | None = None,
    throw: bool = False,
) -> Basins:
    """The attractor each start of `model` reaches over `t_span` (module docstring).

    **Arguments:** `starts`: state name -> values of that component; the other
    components start from `model.initial_state()`. `grid=True`: every combination
    (e.g. a 2-D grid of (x, v)); `grid=False`: equal-length arrays, one start each
    (random starts: a basin-stability estimate). `tol`: features closer than `tol`
    times the size of the region the runs end in are one attractor, and a run whose
    extremes changed by more over its second half is not converged. The solve
    options are `dynsim.scan`'s.

    **Returns:** a `Basins`; `throw=True` raises `RuntimeError` if a run failed.

    **Raises:** `ValueError` for unknown state names, empty or unequal starts, or a
    non-positive `tol`.
    """
    names = _checked_names(model, starts, tol)
    if grid:
        values = {n: np.atleast_1d(np.asarray(v, float)) for n, v in starts.items()}
    else:
        values, _ = equal_starts(starts)
    runs = run_starts(
        model,
        {f"start_{k}": values[n] for k, n in enumerate(names)},
        names,
        t_span,
        grid=grid,
        solver=solver,
        rtol=rtol,
        atol=atol,
        max_steps=max_steps,
        chunk_size=chunk_size,
        progress=progress,
    )
    scale = tol * runs.size()
    labels, first = classify(runs, np.ones(runs.ok.size, bool), scale)
    fractions, stderr = shares(labels)
    shape = runs.shape if grid else (labels.size,)
    result = Basins(
        starts={n: values[n] for n in names},
        axes=names if grid else (),
        shape=shape,
        grid=grid,
        labels=labels.reshape(shape),
        attractors=runs.end[first].reshape(len(first), -1),
        features=runs.features[first].reshape((len(first),) + runs.features.shape[1:]),
        fractions=fractions,
        stderr=stderr,
        status=runs.status.reshape(shape),
        message=summary(labels, len(first)),
        info=runs.info,
    )
    return checked(result, throw)


def equal_starts(starts: Mapping[str, ArrayLike]) -> tuple[dict[str, np.ndarray], int]:
    """Starts given one value per start: name -> 1-D array, and their count.

    **Raises:** `ValueError` for unequal lengths.
    """
    values = {n: np.atleast_1d(np.asarray(v, float)) for n, v in starts.items()}
    sizes = {n: v.size for n, v in values.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"the starts need equal lengths (one value per start), "
                         f"got {sizes}")  # fmt: skip
    return values, next(iter(sizes.values()))


def _checked_names(model, starts, tol, what="starts") -> tuple[str, ...]:
    names = tuple(starts)
    unknown = [n for n in names if n not in model.state_names]
    if not names or unknown:
        raise ValueError(
            f"{what} must name state components of {type(model).__name__} "
            f"({', '.join(model.state_names)}); got {list(names)}"
        )
    if not tol > 0:
        raise ValueError(f"tol must be > 0, got {tol}")
    return names


@dataclasses.dataclass(frozen=True)
class Runs:
    """What the runs of `run_starts` keep: per run the `features` (runs, 2, state:
    minima and maxima over the last quarter), `moved` (how far they are from those
    over the last half), the `end` state, whether it `ok` (solved, finite), its
    `status`; the scan's `shape`, and the model's `info`."""

    features: np.ndarray
    moved: np.ndarray
    end: np.ndarray
    ok: np.ndarray
    status: np.ndarray
    shape: tuple[int, ...]
    info: RunInfo

    def size(self) -> float:
        """The size of the region the runs end in (the scale of `tol`)."""
        seen = self.features[self.ok]
        return max(np.ptp(seen), np.abs(seen).max(), 1e-12) if seen.size else 1.0


def run_starts(model, params, names, t_span, *, grid, **options) -> Runs:
    """One scan of `model` from the starts in `params` (start_0, start_1, … for the
    components `names`; other entries: parameters of the model, as "base.<name>"),
    keeping the extremes over the last half and quarter and the end state."""
    from .._scan import scan

    discrete = isinstance(model, AbstractMap)
    t0, t1 = map(float, map_span_times(t_span) if discrete else t_span)
    index = tuple(model.state_names.index(n) for n in names)
    started = _started_class(len(names), discrete)(model, index)
    half, quarter = t0 + 0.5 * (t1 - t0), t0 + 0.75 * (t1 - t0)
    observables = {
        "hi_half": Max(t_from=half),
        "lo_half": Min(t_from=half),
        "hi": Max(t_from=quarter),
        "lo": Min(t_from=quarter),
        "end": FinalState(),
    }
    span = (int(t0), int(t1)) if discrete else (t0, t1)
    res = scan(started, params, span, grid=grid, observables=observables,
               **options)  # fmt: skip
    v = {k: np.asarray(a, float) for k, a in res.values.items()}
    features = np.stack([v["lo"], v["hi"]], axis=1)
    return Runs(
        features=features,
        moved=np.abs(np.stack([v["lo_half"], v["hi_half"]], axis=1) - features),
        end=v["end"],
        ok=res.ok_mask & np.all(np.isfinite(features), axis=(1, 2)),
        status=np.asarray(res.status),
        shape=tuple(res.shape),
        # The model's own provenance (not the wrapper's), the scan's solver.
        info=dataclasses.replace(
            run_info(model, model.state_names), solver=res.info.solver
        ),
    )


def classify(runs: Runs, select: np.ndarray, scale: float):
    """Labels of the runs `select` (1, 2, … the attractor, 0 not converged: its
    extremes moved by more than `scale`; −1 failed) and each attractor's first
    run (indices into all runs)."""
    converged = runs.ok & select & np.all(runs.moved <= scale, axis=(1, 2))
    labels, first = _group(runs.features, converged, scale)
    return np.where(runs.ok, labels, -1)[select], first


def shares(labels: np.ndarray) -> tuple[dict[str, float], dict[str, float]]:
    """label -> fraction of the starts, and its standard error √(f(1 − f)/N)."""
    count = labels.size
    kinds, counts = np.unique(labels, return_counts=True)
    fractions = {
        str(int(k)): float(c / count) for k, c in zip(kinds, counts, strict=True)
    }
    stderr = {k: float(np.sqrt(f * (1 - f) / count)) for k, f in fractions.items()}
    return fractions, stderr


def summary(labels: np.ndarray, found: int) -> str:
    failed, unconverged = int(np.sum(labels == -1)), int(np.sum(labels == 0))
    parts = [f"{found} attractors"]
    if unconverged:
        parts.append(f"{unconverged} starts not converged (lengthen t_span)")
    if failed:
        parts.append(f"{failed} runs failed")
    return "; ".join(parts)


def _group(features: np.ndarray, use: np.ndarray, scale: np.ndarray):
    """Labels 1, 2, … of the runs `use` by their features (within `scale` of an
    attractor's first run: one attractor), 0 elsewhere; and the index of each
    attractor's first run. Runs are first binned by their features rounded to
    `scale`, so the grouping costs the number of distinct bins, not of runs."""
    labels = np.zeros(features.shape[0], int)
    idx = np.flatnonzero(use)
    if not idx.size:
        return labels, []
    cells = np.round(features[idx] / scale).reshape(idx.size, -1)
    _, first_in_cell, inverse = np.unique(
        cells, axis=0, return_index=True, return_inverse=True
    )
    inverse = inverse.reshape(-1)
    # Cells in the order their first run comes.
    order = np.argsort(first_in_cell)
    reps: list[np.ndarray] = []
    firsts: list[int] = []
    cell_label = np.zeros(first_in_cell.size, int)
    for c in order:
        run = idx[first_in_cell[c]]
        f = features[run]
        for a, rep in enumerate(reps):
            if np.all(np.abs(f - rep) <= 2 * scale):
                cell_label[c] = a + 1
                break
        else:
            reps.append(f)
            firsts.append(int(run))
            cell_label[c] = len(reps)
    labels[idx] = cell_label[inverse]
    return labels, firsts
