"""Curves that start at codimension-two points: the Hopf curve (and the fold curve)
of a Bogdanov–Takens point, the curve of folds of cycles of a Bautin point.

Near such a point the new curve is found where the unfolding says it is, a step
`OFFSET` (of p₂'s span) along the old curve: near a Bogdanov–Takens point a Hopf
point lies on the equilibrium branch in p₁ through a fold nearby (on one side of
the point: both are tried); near a Bautin point the cycles born at a nearby Hopf
point turn in a fold where l₁ l₂ < 0 (Kuznetsov 2004, §8.3–8.4). From there the
new curve is followed both ways, and it runs back into the point.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from dynsim.models import replace_parameters
from dynsim.solvers import Status

from . import _arclength as arc
from ._branch import Bifurcation, Codim2Point, Curve
from ._codim2 import CurveOptions, _Curve, _start, through, trace
from ._continuation import Equilibria, _branch
from ._cycles import cycle_continuation
from ._normal_form import first_lyapunov

#: How far along the old curve the new one is looked for: this fraction of the
#: span of p₂.
OFFSET = 0.02

STARTS = {"bogdanov_takens": ("hopf", "fold"), "bautin": ("cycle_fold",)}


def curve_from(
    curve: Curve,
    point: Codim2Point,
    bifurcation: str | None,
    spans: dict[str, tuple[float, float]],
    model,
    options: CurveOptions,
) -> Curve:
    """The curve `bifurcation` that starts at `point` of `curve` (see
    `bifurcation_curve`)."""
    starts = STARTS.get(point.kind, ())
    bifurcation = bifurcation if bifurcation is not None else (starts or (None,))[0]
    if bifurcation not in starts:
        raise ValueError(
            f"no curve {bifurcation!r} starts at a {point.kind} point; "
            + (f"choose one of {starts}" if starts else "curves start at "
               "Bogdanov–Takens points (hopf, fold) and Bautin points (cycle_fold)")
        )  # fmt: skip
    names = tuple(curve.params)
    n = point.y.size
    if bifurcation == "fold":
        problem = _Curve("fold", model, names, n, options.t, options.args)
        Z0 = _start("fold", model, point.y, names, np.asarray(point.values, float))
        return _through_start(trace(problem, Z0, spans, model, options), point)
    kind = "fold" if point.kind == "bogdanov_takens" else "hopf"
    old = _Curve(kind, model, names, n, options.t, options.args)
    omega = point.coefficients.get("omega", float("nan"))
    Z = _start(kind, model, point.y, names, np.asarray(point.values, float), omega)
    delta = OFFSET * abs(spans[names[1]][1] - spans[names[1]][0])
    tried = []
    for sign in (1.0, -1.0):
        near = _along(old, Z, sign * delta, options)
        if near is None:
            tried.append("the old curve could not be followed there")
            continue
        at = replace_parameters(model, {names[1]: float(near[-1])})
        found = (
            _hopf_near_fold(old, at, near, spans, options)
            if kind == "fold"
            else _cycle_fold_near_hopf(old, at, near, point, spans, options)
        )
        if isinstance(found, Curve):
            return found
        tried.append(found)
    return Curve(
        bifurcation=bifurcation,
        params=names,
        values=np.zeros((0, 2)),
        ys=np.zeros((0, n)),
        frequency=np.zeros(0),
        status=int(Status.NO_CONVERGENCE),
        message=f"no {bifurcation} curve found near the {point.kind} point: "
        + "; ".join(tried),
        info=curve.info,
        model=model,
    )


def _along(problem: _Curve, Z: np.ndarray, shift: float, options) -> np.ndarray | None:
    """The point of the curve of `problem` at p₂ + `shift` (Newton from Z with p₂
    held)."""
    problem.accept(Z)
    fixed = np.zeros(Z.size)
    fixed[-1] = 1.0
    guess = Z.copy()
    guess[-1] += shift
    s = arc.Settings(tol=options.tol)
    X, ok, _ = arc.correct(problem, guess, fixed, s)
    return X if ok else None


def _hopf_near_fold(fold: _Curve, model, Zf, spans, options) -> Curve | str:
    """The Hopf curve through the Hopf point nearest the fold Zf on the equilibrium
    branch in p₁ (p₂ held) through it, followed both ways from the fold."""
    n, p1 = fold.size, fold.names[0]
    lo, hi = spans[p1]
    width = 0.25 * abs(hi - lo)
    span = (max(min(lo, hi), Zf[-2] - width), min(max(lo, hi), Zf[-2] + width))
    problem = Equilibria(model, p1, t=options.t, args=options.args)
    s = arc.Settings(
        ds=1e-3 * abs(hi - lo), ds_max=1e-2 * abs(hi - lo), max_points=400,
        tol=options.tol,
    )  # fmt: skip
    X0 = np.append(Zf[:n], Zf[-2])
    v = np.append(Zf[n : 2 * n], 0.0)
    hopfs = []
    for sign in (1.0, -1.0):
        t0 = arc.tangent(problem, X0, sign * v / np.linalg.norm(v))
        run = arc.follow(problem, X0, t0, s, stop=lambda q: _inside(q.X[-1], span))
        hopfs += _branch(problem, run, s, 1e-8, p1, span).special("hopf")
    if not hopfs:
        return f"no Hopf point near the fold at {fold.names[1]} = {Zf[-1]:.6g}"
    h = min(hopfs, key=lambda q: abs(q.value - Zf[-2]))
    problem, Z0 = through(h, model, fold.names, options)
    return trace(problem, Z0, spans, model, options)


def _cycle_fold_near_hopf(
    hopf: _Curve, model, Zh, point: Codim2Point, spans, options
) -> Curve | str:
    """The curve of folds of cycles through the fold of the cycles born at the Hopf
    point Zh, if l₁ l₂ < 0 there (the side of the Bautin point where they turn)."""
    n, (p1, p2) = hopf.size, hopf.names
    at, y, jac, _ = hopf.at(Zh)
    omega = float(Zh[3 * n])
    l1 = first_lyapunov(at, y, jac, omega, options.t, options.args)
    if not l1 * point.coefficients.get("l2", np.nan) < 0:
        return f"l1 l2 >= 0 at {p2} = {Zh[-1]:.6g} (no fold of cycles on that side)"
    h = Bifurcation("hopf", float(Zh[-2]), y, 0, frequency=omega, coefficient=l1)
    cycles = cycle_continuation(
        model, p1, spans[p1], hopf=h, max_points=100, progress=False
    )
    folds = cycles.special("cycle_fold")
    if not folds:
        return f"the cycles from the Hopf point at {p2} = {Zh[-1]:.6g} have no fold"
    problem, Z0 = through(folds[0], model, hopf.names, options)
    return trace(problem, Z0, spans, model, options)


def _inside(p: float, span) -> float:
    return min(p - span[0], span[1] - p) + 1e-12


def _through_start(curve: Curve, point: Codim2Point) -> Curve:
    """`curve`, started at `point`, with `point` among its points (test functions
    are singular exactly there: what they located at the start is dropped)."""
    if not len(curve.values):
        return curve
    gap = np.linalg.norm(curve.values - point.values, axis=1)
    start = int(np.argmin(gap))
    scale = np.ptp(curve.values, axis=0).max()
    kept = [
        q
        for q in curve.points
        if np.linalg.norm(q.values - point.values) > 1e-6 * scale
    ]
    here = dataclasses.replace(point, index=start)
    points = sorted([*kept, here], key=lambda q: q.index)
    return dataclasses.replace(curve, points=tuple(points))
