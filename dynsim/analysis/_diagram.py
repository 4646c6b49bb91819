"""Automatic bifurcation diagrams: every branch reachable from the equilibria at the
start of a parameter span, each traced once.

`bifurcation_diagram` finds the equilibria at the span's start (Newton from many
seeds; duplicates merged), follows each across the span, and then, level by level
up to `depth`: switches onto the other branch at every branch point (both
directions), follows the cycles born at every Hopf point, and switches onto the
doubled cycles at every period doubling. A branch that retraces one already
followed (its points within `LOOP_TOLERANCE` of another branch's polyline) is
dropped, so symmetric or reconnecting branches are not traced twice. With a `store`
every branch is written to the HDF5 file as it finishes, under a name that says how
it was reached, and a diagram run again with the same arguments loads the finished
branches instead of recomputing them.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np

from dynsim.models import check_parameter_names, replace_parameters

from .._custom_types import Span, System
from ._branch import Bifurcation, Branch, CycleBranch
from ._continuation import continuation, switch_branch
from ._cycles import cycle_continuation
from ._linalg import distinct_equilibria

#: A branch within this distance (relative to the diagram's scale) of a followed
#: one, at every one of its sampled points, retraces it.
LOOP_TOLERANCE = 1e-3
#: Branch points where the diagram switches branches.
_SWITCHES = ("pitchfork", "transcritical", "branch_point")


@dataclasses.dataclass(frozen=True)
class Diagram:
    """A bifurcation diagram in one parameter.

    - `param`: the parameter's name; `branches`: name -> `Branch` or `CycleBranch`,
      in the order they were followed; `parents`: name -> (the parent branch's
      name, the special point it started from) for every branch but the roots
      (the equilibria of the span's start, `eq1`, `eq2`, …); `dropped`: names of
      branches that retraced followed ones.
    """

    param: str
    branches: dict[str, Branch | CycleBranch]
    parents: dict[str, tuple[str, Bifurcation]]
    dropped: tuple[str, ...] = ()

    def special(self, kind: str) -> list[tuple[str, Bifurcation]]:
        """(branch name, point) of every special point of `kind`."""
        return [(name, q) for name, b in self.branches.items() for q in b.special(kind)]

    def figure(self, state: str | int | None = None):
        """Every branch on one figure: stability, cycles' envelopes, labels."""
        from ..plot import bifurcation_diagram as draw

        return draw(*self.branches.values(), state=state)


def bifurcation_diagram(
    model: System,
    param: str,
    span: Span,
    *,
    depth: int = 2,
    seeds: Any = None,
    n_seeds: int = 16,
    cycles: bool = True,
    store: str | os.PathLike | None = None,
    name: str = "",
    continuation_options: dict[str, Any] | None = None,
    cycle_options: dict[str, Any] | None = None,
    progress: bool | None = False,
) -> Diagram:
    """The bifurcation diagram of `model` in `param` over `span` (module doc).

    **Arguments:** `depth`: levels of switching below the equilibria of the span's
    start (1: their branches' branch points and Hopf points; 2: also the branches
    found there, …); `seeds`: starting guesses for the first equilibria (rows;
    default the model's initial state and `n_seeds` random states around it);
    `cycles`: follow the cycles of Hopf points and period doublings;
    `store`: an HDF5 file the branches are written to as they finish (and read
    back from on a re-run), each as run `name` + its branch name;
    `continuation_options`, `cycle_options`: passed to `continuation`/
    `switch_branch` and `cycle_continuation`.

    **Returns:** a `Diagram`.

    **Raises:** `ValueError` for an unknown parameter or a negative depth.
    """
    check_parameter_names(model, {param: 0.0})
    if depth < 0:
        raise ValueError(f"depth must be >= 0, got {depth}")
    eq_opts = {"progress": progress, **(continuation_options or {})}
    cyc_opts = {"progress": progress, **(cycle_options or {})}
    done: dict[str, Branch | CycleBranch] = {}
    parents: dict[str, tuple[str, Bifurcation]] = {}
    dropped: list[str] = []
    stored = set() if store is None else _stored(Path(store))

    def follow(branch, compute):
        run = name + branch
        if run in stored:
            from dynsim import io

            return io.load(store, run)
        result = compute()
        if store is not None and result.p.size:
            from dynsim import io

            io.save(result, store, run)
        return result

    level = [
        (f"eq{i + 1}", None, None, y)
        for i, y in enumerate(_first_equilibria(model, param, span, seeds, n_seeds))
    ]
    for depth_now in range(depth + 1):
        found = []
        for branch, parent, point, start in level:
            if parent is None:
                result = follow(
                    branch,
                    lambda y=start: continuation(model, param, span, y0=y, **eq_opts),
                )
            elif point.kind in _SWITCHES:
                result = follow(
                    branch,
                    lambda b=done[parent], q=point, d=start: switch_branch(
                        b, q, span, model=model, direction=d, **eq_opts
                    ),
                )
            elif point.kind == "hopf":
                result = follow(
                    branch,
                    lambda q=point: cycle_continuation(
                        model, param, span, hopf=q, **cyc_opts
                    ),
                )
            else:  # a period doubling
                result = follow(
                    branch,
                    lambda q=point: cycle_continuation(
                        model, param, span, doubling=q, **cyc_opts
                    ),
                )
            if not result.p.size or _retraces(result, done.values(), span):
                dropped.append(branch)
                continue
            done[branch] = result
            if parent is not None:
                parents[branch] = (parent, point)
            found.append(branch)
        if depth_now == depth:
            break
        level = [c for b in found for c in _children(b, done[b], cycles)]
    return Diagram(param, done, parents, tuple(dropped))


def _first_equilibria(model, param, span, seeds, n_seeds) -> list[np.ndarray]:
    """The distinct equilibria found by Newton from the seeds at the span's start
    (one batched solve)."""
    at = replace_parameters(model, {param: span[0]})
    y0 = np.asarray(at.initial_state(), float).reshape(-1)
    if seeds is None:
        rng = np.random.default_rng(0)
        scale = max(1.0, float(np.max(np.abs(y0))))
        seeds = np.vstack([y0, y0 + scale * rng.standard_normal((n_seeds, y0.size))])
    return distinct_equilibria(at, seeds)


def _children(name: str, branch, cycles: bool):
    """The branches to follow from the special points of `branch`."""
    out = []
    for i, q in enumerate(branch.points):
        tag = f"{name}.{q.label}{i + 1}"
        if q.kind in _SWITCHES and q.direction is not None:
            out += [(f"{tag}+", name, q, 1), (f"{tag}-", name, q, -1)]
        elif cycles and q.kind == "hopf" and q.criticality != "degenerate":
            out.append((tag, name, q, None))
        elif cycles and q.kind == "period_doubling":
            out.append((tag, name, q, None))
    return out


def _features(result) -> np.ndarray:
    """A branch as points in (p, state…) or, for cycles, (p, period, extremes…)."""
    if isinstance(result, CycleBranch):
        return np.column_stack([result.p, result.period, result.y_max, result.y_min])
    return np.column_stack([result.p, result.ys])


def _retraces(result, followed, span) -> bool:
    """Whether every sampled point of `result` lies on a followed branch of its
    kind (within `LOOP_TOLERANCE` of its polyline, in units of the diagram)."""
    mine = _features(result)
    for other in followed:
        if type(other) is not type(result):
            continue
        theirs = _features(other)
        if theirs.shape[1] != mine.shape[1] or len(theirs) < 2:
            continue
        scale = np.maximum(np.ptp(np.vstack([mine, theirs]), axis=0), 1e-12)
        scale[0] = abs(span[1] - span[0])
        a, b = theirs[:-1] / scale, theirs[1:] / scale
        samples = mine[np.linspace(0, len(mine) - 1, min(8, len(mine))).astype(int)]
        if all(_distance(x / scale, a, b) < LOOP_TOLERANCE for x in samples):
            return True
    return False


def _distance(x: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """The distance of x from the polyline of segments a[i] → b[i]."""
    d = b - a
    t = np.clip(
        np.sum((x - a) * d, axis=1) / np.maximum(np.sum(d * d, axis=1), 1e-300), 0, 1
    )
    return float(np.min(np.linalg.norm(a + t[:, None] * d - x, axis=1)))


def _stored(path: Path) -> set[str]:
    if not path.exists():
        return set()
    from dynsim import io

    return set(io.runs(path))
