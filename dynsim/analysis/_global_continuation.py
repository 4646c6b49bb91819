"""Global continuation: the attractors of a model and their basin fractions as a
parameter varies, matched from one value to the next.

Every (value, start) pair is one run of a single scan (`basins`' runs, with the
parameter as a scan parameter of the wrapped model), so the whole continuation is
batched. At each value the runs are grouped into attractors as in `basins` (one
tolerance for all values: `tol` times the size of the region every run ends in);
each attractor is then matched to the nearest attractor of the previous value (by
the distance between their features, the extremes of every component), if it is
within `match` times that size and not taken by a nearer one; otherwise it is a new
attractor. An attractor that disappears keeps its identity: one that reappears
later is matched against the last value where it was seen.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import ClassVar

import numpy as np
from jaxtyping import ArrayLike

from dynsim.models import check_parameter_names

from .._custom_types import FlowOrMap
from .._protocol import AbstractResult, checked, freeze_fields
from .._results import RunInfo
from ._basins import _checked_names, classify, equal_starts, run_starts


@dataclasses.dataclass(frozen=True, eq=False)
class GlobalContinuation(AbstractResult):
    """Attractors and their basin fractions along a parameter.

    - `param`, `values` (values,): the parameter and its values.
    - `fractions`, `stderr` (values, attractors): each attractor's share of the
      starts at each value (0 where it does not exist) and its standard error;
      `unconverged`, `failed` (values,): the shares labelled 0 and −1.
    - `attractors` (values, attractors, state): a point of each where it exists
      (NaN elsewhere); `features` (values, attractors, 2, state): its extremes.
    - `starts`: state name -> values (one per start, the same at every value).
    - `status`: per (value, start), the runs'; `message`, `info`.
    """

    param: str
    values: np.ndarray
    fractions: np.ndarray
    stderr: np.ndarray
    unconverged: np.ndarray
    failed: np.ndarray
    attractors: np.ndarray
    features: np.ndarray
    starts: Mapping[str, np.ndarray]
    status: np.ndarray
    message: str
    info: RunInfo

    kind: ClassVar[str] = "global_continuation"
    dims: ClassVar = {
        "values": ("value",),
        "fractions": ("value", "attractor"),
        "stderr": ("value", "attractor"),
        "unconverged": ("value",),
        "failed": ("value",),
        "attractors": ("value", "attractor", "state"),
        "features": ("value", "attractor", "extreme", "state"),
        "starts": ("start",),
        "status": ("value", "start"),
    }

    def __post_init__(self):
        freeze_fields(self)

    def figures(self, **options):
        from ..plot import basin_fractions

        return [("fractions", basin_fractions(self, **options))]

    def __repr__(self) -> str:
        return (
            f"GlobalContinuation({self.param}: {self.values.size} values, "
            f"{self.fractions.shape[1]} attractors, {self.message!r})"
        )


def global_continuation(
    model: FlowOrMap,
    param: str,
    values: ArrayLike,
    starts: Mapping[str, ArrayLike],
    t_span: tuple[float, float],
    *,
    tol: float = 1e-2,
    match: float = 0.2,
    solver: str | None = None,
    rtol: float = 1e-6,
    atol: float = 1e-9,
    max_steps: int = 100_000,
    chunk_size: int | None = None,
    progress: bool | None = None,
    throw: bool = False,
) -> GlobalContinuation:
    """The attractors of `model` and their basin fractions at each of `values` of
    `param`, from the same `starts` (state name -> equal-length arrays, one start
    each, e.g. random) at every value (module docstring). `tol`, the solve options:
    as `basins`; `match`: the largest distance between the features of one
    attractor at consecutive values, in units of the size of the region the runs
    end in.

    **Returns:** a `GlobalContinuation`; `throw=True` raises `RuntimeError` if a
    run failed.

    **Raises:** `ValueError` for an unknown parameter or state, unequal starts.
    """
    names = _checked_names(model, starts, tol)
    check_parameter_names(model, {param: 0.0})
    grid = np.atleast_1d(np.asarray(values, float))
    points, n = equal_starts(starts)
    scan_params = {f"base.{param}": np.repeat(grid, n)}
    scan_params |= {f"start_{k}": np.tile(points[m], grid.size)
                    for k, m in enumerate(names)}  # fmt: skip
    runs = run_starts(
        model, scan_params, names, t_span, grid=False, solver=solver, rtol=rtol,
        atol=atol, max_steps=max_steps, chunk_size=chunk_size, progress=progress,
    )  # fmt: skip
    size = runs.size()
    scale, reach = tol * size, match * size
    tracks: list[np.ndarray] = []  # the last features of each global attractor
    rows = []
    for i in range(grid.size):
        select = np.zeros(runs.ok.size, bool)
        select[i * n : (i + 1) * n] = True
        labels, first = classify(runs, select, scale)
        ids = _match([runs.features[j] for j in first], tracks, reach)
        rows.append((labels, first, ids))
    width = len(tracks)
    state = runs.end.shape[1]
    fractions = np.zeros((grid.size, width))
    attractors = np.full((grid.size, width, state), np.nan)
    features = np.full((grid.size, width, 2, state), np.nan)
    unconverged, failed = np.zeros(grid.size), np.zeros(grid.size)
    for i, (labels, first, ids) in enumerate(rows):
        for local, (j, g) in enumerate(zip(first, ids, strict=True)):
            fractions[i, g] = np.mean(labels == local + 1)
            attractors[i, g] = runs.end[j]
            features[i, g] = runs.features[j]
        unconverged[i], failed[i] = np.mean(labels == 0), np.mean(labels == -1)
    bad = int(np.sum(failed > 0) + np.sum(unconverged > 0))
    message = f"{width} attractors over {grid.size} values" + (
        f"; {bad} values with unconverged or failed runs" if bad else ""
    )
    result = GlobalContinuation(
        param=param,
        values=grid,
        fractions=fractions,
        stderr=np.sqrt(fractions * (1 - fractions) / n),
        unconverged=unconverged,
        failed=failed,
        attractors=attractors,
        features=features,
        starts=points,
        status=runs.status.reshape(grid.size, n),
        message=message,
        info=runs.info,
    )
    return checked(result, throw)


def _match(found: list[np.ndarray], tracks: list[np.ndarray], reach: float):
    """Global ids of the attractors `found` at one value: the nearest of `tracks`
    (last features of the known attractors) within `reach`, nearest pairs first,
    each taken once; new ids (appended to `tracks`) for the rest. Updates
    `tracks` with the new features."""
    pairs = sorted(
        (float(np.max(np.abs(f - t))), a, g)
        for a, f in enumerate(found)
        for g, t in enumerate(tracks)
    )
    ids: list[int | None] = [None] * len(found)
    taken: set[int] = set()
    for distance, a, g in pairs:
        if distance <= reach and ids[a] is None and g not in taken:
            ids[a] = g
            taken.add(g)
    for a, f in enumerate(found):
        if ids[a] is None:
            tracks.append(f)
            ids[a] = len(tracks) - 1
        else:
            tracks[ids[a]] = f
    return ids
