"""Basin fractions along a branch: local continuation meets global stability.

A branch of equilibria (`continuation`) or of cycles (`cycle_continuation`) says
where an attractor exists and is stable, not how much of the state space reaches it.
`branch_basins` picks points inside each stable piece of the branch and, at each
one's parameter value, runs the same starts (one scan: `basins`' runs, with the
parameter as a scan parameter): a run reaches the branch's attractor when it has
converged (as in `basins`) and its features, the extremes of every component over
the last quarter of the run, are those of the branch point (the equilibrium itself;
a cycle's minima and maxima over the orbit) within `tol` times the size of the
region the runs end in. The share of such runs is the basin fraction of that point
(random starts: its basin stability, Menck et al., Nature Physics 9 (2013) 89).
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
from ._basins import _checked_names, equal_starts, run_starts
from ._branch import Branch, CycleBranch


@dataclasses.dataclass(frozen=True, eq=False)
class BranchBasins(AbstractResult):
    """The basin fraction of a branch's attractor at points of its stable pieces.

    - `branch`: the `Branch` or `CycleBranch`; `index` (points,): the branch points
      used, `values` (points,): their parameter values, `piece` (points,): which
      stable piece (1, 2, … along the branch) each lies on.
    - `fractions`, `stderr` (points,): the share of the starts that reach the
      branch's attractor there, and its standard error √(f(1 − f)/N);
      `unconverged`, `failed` (points,): the shares not converged and failed.
    - `starts`: state name -> values (one per start, the same at every point);
      `status` (points, start): the runs'; `message`, `info`.
    """

    branch: Branch | CycleBranch
    index: np.ndarray
    values: np.ndarray
    piece: np.ndarray
    fractions: np.ndarray
    stderr: np.ndarray
    unconverged: np.ndarray
    failed: np.ndarray
    starts: Mapping[str, np.ndarray]
    status: np.ndarray
    message: str
    info: RunInfo

    kind: ClassVar[str] = "branch_basins"
    dims: ClassVar = {
        "index": ("point",),
        "values": ("point",),
        "piece": ("point",),
        "fractions": ("point",),
        "stderr": ("point",),
        "unconverged": ("point",),
        "failed": ("point",),
        "starts": ("start",),
        "status": ("point", "start"),
    }

    def __post_init__(self):
        freeze_fields(self)

    def figures(self, **options):
        from ..plot import branch_basins

        return [("branch_basins", branch_basins(self, **options))]

    def __repr__(self) -> str:
        return f"BranchBasins({self.branch.param}: {self.message!r})"


def branch_basins(
    branch: Branch | CycleBranch,
    starts: Mapping[str, ArrayLike],
    t_span: tuple[float, float],
    *,
    points: int = 5,
    model: FlowOrMap | None = None,
    tol: float = 1e-2,
    solver: str | None = None,
    rtol: float = 1e-6,
    atol: float = 1e-9,
    max_steps: int = 100_000,
    chunk_size: int | None = None,
    progress: bool | None = None,
    throw: bool = False,
) -> BranchBasins:
    """The basin fraction of `branch`'s attractor at `points` points inside each
    of its stable pieces (evenly spread by index, away from the piece's ends where
    convergence slows down), from `starts` (state name -> equal-length arrays, one
    start each, e.g. random; module docstring). `model`: the branch's model
    (default `branch.model`; needed for a branch loaded from a file). `tol` and the
    solve options are `basins`'.

    **Returns:** a `BranchBasins`; `throw=True` raises `RuntimeError` if a run
    failed.

    **Raises:** `TypeError` for anything but a `Branch` or `CycleBranch`;
    `ValueError` for a branch without stable points or without a model, a model
    without the branch's parameter, unknown state names, unequal starts,
    `points` < 1.
    """
    if not isinstance(branch, Branch | CycleBranch):
        raise TypeError(f"branch must be a Branch or CycleBranch, got {branch!r}")
    model = branch.model if model is None else model
    if model is None:
        raise ValueError("the branch carries no model (loaded from a file?): model=")
    if points < 1:
        raise ValueError(f"points must be >= 1, got {points}")
    check_parameter_names(model, {branch.param: 0.0})
    names = _checked_names(model, starts, tol)
    values_of, n = equal_starts(starts)
    index, piece = _pick(np.asarray(branch.stable, bool), points)
    if not index.size:
        raise ValueError(f"the branch has no stable points: {branch!r}")
    values = np.asarray(branch.p, float)[index]
    params = {f"base.{branch.param}": np.repeat(values, n)}
    params |= {f"start_{k}": np.tile(values_of[m], index.size)
               for k, m in enumerate(names)}  # fmt: skip
    runs = run_starts(
        model, params, names, t_span, grid=False, solver=solver, rtol=rtol,
        atol=atol, max_steps=max_steps, chunk_size=chunk_size, progress=progress,
    )  # fmt: skip
    scale = tol * runs.size()
    target = np.repeat(_features(branch, index), n, axis=0)
    converged = runs.ok & np.all(runs.moved <= scale, axis=(1, 2))
    reached = converged & np.all(np.abs(runs.features - target) <= 2 * scale,
                                 axis=(1, 2))  # fmt: skip
    shape = (index.size, n)
    fractions = reached.reshape(shape).mean(axis=1)
    unconverged = (runs.ok & ~converged).reshape(shape).mean(axis=1)
    failed = (~runs.ok).reshape(shape).mean(axis=1)
    pieces = int(piece.max())
    message = f"{index.size} points on {pieces} stable piece{'s' * (pieces > 1)}"
    if unconverged.any():
        message += f"; {unconverged.mean():.1%} of the runs not converged"
    if failed.any():
        message += f"; {failed.mean():.1%} of the runs failed"
    result = BranchBasins(
        branch=branch,
        index=index,
        values=values,
        piece=piece,
        fractions=fractions,
        stderr=np.sqrt(fractions * (1 - fractions) / n),
        unconverged=unconverged,
        failed=failed,
        starts={m: values_of[m] for m in names},
        status=runs.status.reshape(shape),
        message=message,
        info=runs.info,
    )
    return checked(result, throw)


def _pick(stable: np.ndarray, points: int) -> tuple[np.ndarray, np.ndarray]:
    """`points` branch indices inside each run of stable points (at the centres of
    equal parts of it, so never at its ends unless it is short), and the run's
    number (1, 2, …) of each."""
    index, piece = [], []
    edges = np.flatnonzero(np.diff(np.concatenate([[0], stable.astype(int), [0]])))
    for k, (a, b) in enumerate(zip(edges[::2], edges[1::2], strict=True)):
        at = a + (b - a) * (np.arange(points) + 0.5) / points
        chosen = np.unique(np.clip(np.floor(at).astype(int), a, b - 1))
        index.append(chosen)
        piece.append(np.full(chosen.size, k + 1))
    if not index:
        return np.zeros(0, int), np.zeros(0, int)
    return np.concatenate(index), np.concatenate(piece)


def _features(branch: Branch | CycleBranch, index: np.ndarray) -> np.ndarray:
    """The features (points, 2, state) a run on the branch's attractor has: the
    equilibrium twice, or the cycle's minima and maxima."""
    if isinstance(branch, CycleBranch):
        return np.stack([branch.y_min[index], branch.y_max[index]], axis=1)
    ys = np.asarray(branch.ys, float)[index]
    return np.stack([ys, ys], axis=1)
