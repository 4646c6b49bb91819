"""Pseudo-arclength continuation of the solutions of R(X) = 0, R: ℝᴺ⁺¹ → ℝᴺ.

One engine for every branch dynsim follows (equilibria, periodic orbits, fold and
Hopf curves): Keller's pseudo-arclength method with a tangent predictor, a Newton
corrector on the bordered system [R(X); t·(X − X̃)] = 0, adaptive steps, and test
functions whose sign changes between two points are located by the Illinois
(regula falsi) method on the arclength along the secant tangent.

A problem is an object with

- `residual(X)` → R(X) (N,), `jacobian(X)` → ∂R/∂X (N, N+1), dense or sparse;
- `monitor(X, t)` → (tests, record): test-function values (dict of floats) and
  what to keep per point (dict of arrays);
- `crossings(a, b)` → the names of the tests that changed sign between two monitored
  points, and whether the step is too coarse to tell (then it is halved);
- `accept(X)`: called for each accepted point (e.g. to move a phase reference);
- optionally `valid(X)` → whether a converged X is a solution of the kind
  followed (e.g. not a cycle collapsed onto its equilibrium): if not, the corrector
  failed;
- optionally `adapt(point)` → the accepted point re-expressed after the problem
  changed its discretisation (e.g. a new collocation mesh), or None to keep it.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from dynsim.solvers import Status

from ._linalg import LinearSolver

#: The largest distance of a corrected point from its prediction, in steps.
CORRECTION_MAX = 0.3

# How a run ends: codes of the one dynsim status family.
_S = Status


@dataclasses.dataclass
class Settings:
    ds: float = 0.01
    ds_min: float = 1e-8
    ds_max: float = 0.1
    max_points: int = 1000
    tol: float = 1e-10
    max_newton: int = 12
    locate_tol: float = 1e-11


@dataclasses.dataclass
class Point:
    X: np.ndarray
    tangent: np.ndarray
    tests: dict[str, float]
    record: dict[str, Any]


@dataclasses.dataclass
class Located:
    """A located special point: `name` of the test, the point, and where it lies."""

    name: str
    point: Point
    index: int  # it lies between points index-1 and index of the branch


def _bordered(jac: Any, row: np.ndarray) -> Any:
    if sp.issparse(jac):
        return sp.vstack([jac, sp.csr_matrix(row[None, :])], format="csc")
    return np.vstack([jac, row[None, :]])


def correct(problem, X_pred: np.ndarray, t: np.ndarray, s: Settings):
    """Newton on [R(X); t·(X − X̃)] = 0 from X̃. Returns (X, converged, iterations)."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        # A singular bordered matrix (exactly at a branch point) shows up as a
        # non-finite step and a failed correction, handled by the caller.
        warnings.simplefilter("ignore", sla.LinAlgWarning)
        return _newton(problem, X_pred, t, s)


def _newton(problem, X_pred, t, s):
    X = X_pred.copy()
    for it in range(1, s.max_newton + 1):
        r = np.append(problem.residual(X), t @ (X - X_pred))
        if not np.all(np.isfinite(r)):
            return X, False, it
        dX = LinearSolver(_bordered(problem.jacobian(X), t))(-r)
        X = X + dX
        if np.max(np.abs(dX)) <= s.tol * (1.0 + np.max(np.abs(X))):
            res = problem.residual(X)
            valid = getattr(problem, "valid", None)
            ok = bool(np.all(np.isfinite(res))) and (valid is None or valid(X))
            return X, ok, it
    return X, False, s.max_newton


def tangent(problem, X: np.ndarray, t_prev: np.ndarray) -> np.ndarray:
    """The unit null vector of ∂R/∂X, oriented like `t_prev`."""
    rhs = np.zeros(X.size)
    rhs[-1] = 1.0
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", sla.LinAlgWarning)
        z = LinearSolver(_bordered(problem.jacobian(X), t_prev))(rhs)
    return z / np.linalg.norm(z)


def _point(problem, X, t_prev, extra=None) -> Point:
    t = tangent(problem, X, t_prev)
    tests, record = problem.monitor(X, t)
    point = Point(X, t, tests, record)
    if extra is not None:
        point.tests.update(extra(point))
    return point


def locate(
    problem, a: Point, ds: float, name: str, s: Settings, extra=None
) -> Point | None:
    """The zero of test `name` between `a` and the point a step `ds` further, by
    the Illinois method on the arclength."""

    def at(h):
        # Exactly at a branch point the bordered system is singular: step off it
        # by a hair's breadth.
        for nudge in (0.0, 1e-9, -1e-9, 1e-7):
            hh = h + nudge * abs(ds)
            X, ok, _ = correct(problem, a.X + hh * a.tangent, a.tangent, s)
            if ok:
                point = _point(problem, X, a.tangent, extra)
                if np.all(np.isfinite(point.tangent)):
                    return point
        return None

    lo, hi = 0.0, ds
    p_lo, p_hi = a, at(ds)
    if p_hi is None:
        return None
    f_lo, f_hi = p_lo.tests[name], p_hi.tests[name]
    side = 0
    best = p_hi if abs(f_hi) < abs(f_lo) else p_lo
    for _ in range(80):
        if f_hi == f_lo:
            break
        h = hi - f_hi * (hi - lo) / (f_hi - f_lo)
        if not lo < h < hi:
            h = 0.5 * (lo + hi)
        p = at(h)
        if p is None:
            return None
        f = p.tests[name]
        best = p
        if abs(hi - lo) <= s.locate_tol * max(1.0, abs(ds)) or f == 0.0:
            break
        if np.sign(f) == np.sign(f_hi):
            hi, p_hi, f_hi = h, p, f
            if side == -1:
                f_lo /= 2
            side = -1
        else:
            lo, p_lo, f_lo = h, p, f
            if side == 1:
                f_hi /= 2
            side = 1
    return best


@dataclasses.dataclass
class Run:
    points: list[Point]
    located: list[Located]
    status: int
    message: str


def follow(
    problem,
    X0: np.ndarray,
    t0: np.ndarray,
    s: Settings,
    stop: Callable[[Point], float] | None = None,
    progress: Callable[[Point], None] | None = None,
    at: tuple[float, ...] = (),
) -> Run:
    """Continue from the solution `X0` in the direction of `t0` (the first corrector
    puts `X0` on the solution set). `stop(point)` is a test function whose sign
    change ends the run at its located zero (e.g. p − p_end). Points where the
    parameter (the last coordinate) takes a value of `at` are located as
    `Located(user_name(i), ...)`."""

    def extra(point):
        tests = {user_name(i): point.X[-1] - v for i, v in enumerate(at)}
        if stop is not None:
            tests["_stop"] = stop(point)
        return tests

    X, ok, _ = correct(problem, X0, t0, s)
    if not ok:
        return Run([], [], _S.NO_CONVERGENCE, _S.NO_CONVERGENCE.message)
    first = _point(problem, X, t0, extra)
    problem.accept(first.X)
    points, located = [first], []
    ds = s.ds
    status = Status.MAX_POINTS
    while len(points) < s.max_points:
        a = points[-1]
        X_pred = a.X + ds * a.tangent
        X, ok, its = correct(problem, X_pred, a.tangent, s)
        b = _point(problem, X, a.tangent, extra) if ok else None
        coarse = False
        if b is not None:
            # Corrected far from the prediction: it may have left the branch (e.g.
            # across an S-shaped part of it, both folds unseen).
            coarse = np.linalg.norm(X - X_pred) > CORRECTION_MAX * abs(ds)
            names, jumped = problem.crossings(a, b)
            coarse = coarse or jumped
            names = names + [
                user_name(i)
                for i in range(len(at))
                if np.sign(a.tests[user_name(i)]) != np.sign(b.tests[user_name(i)])
            ]
            # Turned too sharply: the predictor may have jumped branches.
            coarse = coarse or float(a.tangent @ b.tangent) < 0.9
        if b is None or (coarse and ds > s.ds_min * 2):
            ds /= 2
            if abs(ds) < s.ds_min:
                status = Status.STEP_TOO_SMALL
                break
            continue
        if stop is not None and np.sign(b.tests["_stop"]) != np.sign(a.tests["_stop"]):
            end = locate(problem, a, ds, "_stop", s, extra) or b
            points.append(end)
            status = Status.SPAN_REACHED
            for name in names:
                _add(problem, located, a, ds, name, s, len(points) - 1, extra)
            break
        for name in names:
            _add(problem, located, a, ds, name, s, len(points), extra)
        problem.accept(b.X)
        adapt = getattr(problem, "adapt", None)
        if adapt is not None:
            b = adapt(b) or b
        points.append(b)
        if progress is not None:
            progress(b)
        if len(points) > 10 and np.linalg.norm(b.X - points[0].X) < 0.5 * abs(ds):
            status = Status.CLOSED
            break
        if its <= 3:
            ds = float(np.sign(ds) * min(abs(ds) * 1.5, s.ds_max))
        elif its >= 6:
            ds *= 0.6
    return Run(points, located, status, Status(status).message)


def user_name(i: int) -> str:
    """The test of the i-th parameter value at which a branch is reported."""
    return f"_at{i}"


def _add(problem, located, a, ds, name, s, index, extra):
    p = locate(problem, a, ds, name, s, extra)
    if p is not None:
        located.append(Located(name, p, index))
