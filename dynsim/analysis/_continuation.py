"""Continuation of equilibria in one parameter, with detection and location of folds,
Hopf points and branch points (pitchforks classified), and branch switching."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from dynsim.models import check_parameter_names, replace_parameters
from dynsim.solvers import Status

from .._custom_types import Span, State, System
from .._protocol import checked
from .._provenance import run_info
from . import _arclength as arc
from ._branch import Bifurcation, Branch
from ._linalg import eigenvalues, equilibrium, field, jacobian, parameter_derivative
from ._normal_form import first_lyapunov


class Equilibria:
    """The problem f(y, p) = 0 for `follow`, X = (y, p)."""

    def __init__(
        self, model, param, *, n_eigenvalues=None, shift=0.0, t=0.0, args=None
    ):
        self.model, self.param = model, param
        self.n_eigenvalues, self.shift = n_eigenvalues, shift
        self.t, self.args = t, args
        self._last: tuple[bytes, Any, np.ndarray] | None = None

    def at(self, p: float):
        return replace_parameters(self.model, {self.param: p})

    def residual(self, X):
        return field(self.at(X[-1]), X[:-1], self.t, self.args)

    def _derivatives(self, X):
        """(∂f/∂y, ∂f/∂p) at X, remembered for the last X (the corrector, the
        tangent and the eigenvalues all ask for the same point)."""
        key = X.tobytes()
        if self._last is None or self._last[0] != key:
            m, y = self.at(X[-1]), X[:-1]
            jy = jacobian(m, y, self.t, self.args)
            jp = parameter_derivative(m, self.param, y, self.t, self.args)
            self._last = (key, jy, jp)
        return self._last[1], self._last[2]

    def jacobian(self, X):
        jy, jp = self._derivatives(X)
        if sp.issparse(jy):
            return sp.hstack([jy, sp.csc_matrix(jp[:, None])], format="csc")
        return np.hstack([jy, jp[:, None]])

    def eigen(self, X, vectors=False):
        jy, _ = self._derivatives(X)
        return eigenvalues(jy, self.n_eigenvalues, self.shift, vectors=vectors), jy

    def monitor(self, X, t):
        ev, _ = self.eigen(X)
        tol = 1e-8 * max(1.0, float(np.max(np.abs(ev))))
        cplx = ev[ev.imag > tol]
        real = ev[np.abs(ev.imag) <= tol].real
        tests = {
            "fold": float(t[-1]),
            "hopf": float(cplx[np.argmin(np.abs(cplx.real))].real)
            if cplx.size
            else np.nan,
            "real": float(real[np.argmin(np.abs(real))]) if real.size else np.nan,
        }
        record = {
            "eigenvalues": ev,
            "n_complex": int(np.sum(cplx.real > 0)),
            "n_real": int(np.sum(real > 0)),
        }
        return tests, record

    def crossings(self, a, b):
        def flip(name):
            fa, fb = a.tests[name], b.tests[name]
            return bool(np.isfinite(fa) and np.isfinite(fb) and fa * fb < 0)

        d_cplx = b.record["n_complex"] - a.record["n_complex"]
        d_real = b.record["n_real"] - a.record["n_real"]
        fold, hopf = flip("fold"), d_cplx != 0 and flip("hopf")
        # A real eigenvalue through zero without a fold: a branch point.
        branch = d_real != 0 and flip("real") and not fold
        names = [
            n for n, hit in (("fold", fold), ("real", branch), ("hopf", hopf)) if hit
        ]
        # More than one eigenvalue (pair) crossed, or two kinds of event at once:
        # halve the step so that each is seen and located on its own.
        coarse = abs(d_cplx) > 2 or abs(d_real) > 1 or len(names) > 1
        return names, coarse

    def accept(self, X):
        pass


def _classify(problem: Equilibria, loc: arc.Located, branch_pts, s, lyap_tol):
    pt = loc.point
    _X, y, p = pt.X, pt.X[:-1], float(pt.X[-1])
    if loc.name == "fold":
        ev = pt.record["eigenvalues"]
        lam = ev[np.argmin(np.abs(ev))]
        return Bifurcation("fold", p, y, loc.index, eigenvalue=complex(lam))
    if loc.name == "hopf":
        ev = pt.record["eigenvalues"]
        cplx = ev[ev.imag > 0]
        lam = cplx[np.argmin(np.abs(cplx.real))]
        omega = float(lam.imag)
        m = problem.at(p)
        jy = jacobian(m, y, problem.t, problem.args)
        scale = max(1.0, float(np.max(np.abs(ev))))
        real = ev[np.abs(ev.imag) <= 1e-8 * scale].real
        if real.size and np.min(np.abs(real)) < 1e-6 * scale:
            return Bifurcation(
                "hopf",
                p,
                y,
                loc.index,
                frequency=omega,
                criticality="degenerate",
                eigenvalue=complex(lam),
                note="a zero eigenvalue too: a fold–Hopf (zero-Hopf) point",
            )
        if omega < 1e-6 * scale:
            return Bifurcation(
                "hopf",
                p,
                y,
                loc.index,
                frequency=omega,
                criticality="degenerate",
                eigenvalue=complex(lam),
                note="ω ≈ 0: a Bogdanov–Takens point",
            )
        l1 = first_lyapunov(m, y, jy, omega, problem.t, problem.args)
        crit = (
            "degenerate"
            if abs(l1) <= lyap_tol
            else ("supercritical" if l1 < 0 else "subcritical")
        )
        note = (
            "l1 = 0: a Bautin (generalised Hopf) point" if crit == "degenerate" else ""
        )
        return Bifurcation(
            "hopf",
            p,
            y,
            loc.index,
            frequency=omega,
            coefficient=l1,
            criticality=crit,
            eigenvalue=complex(lam),
            note=note,
        )
    return _branch_point(problem, loc, branch_pts, s)


def _branch_point(problem: Equilibria, loc, branch_pts, s):
    """Classify a branch point by the other branch through it: corrected points a
    distance ±h along its direction give Δp±; equal (to O(h)) means a pitchfork,
    opposite signs a transcritical bifurcation."""
    pt = loc.point
    X, y, p = pt.X, pt.X[:-1], float(pt.X[-1])
    (ev, vecs), _ = problem.eigen(X, vectors=True)
    i = np.argmin(np.abs(ev))
    phi = np.append(np.real(vecs[:, i]), 0.0)
    t0 = pt.tangent
    t1 = phi - (phi @ t0) * t0
    t1 /= np.linalg.norm(t1)
    h = 1e-2 * (1.0 + float(np.max(np.abs(y))))
    dp = []
    for sign in (1.0, -1.0):
        Xs, ok, _ = arc.correct(problem, X + sign * h * t1, t1, s)
        ok = ok and abs(np.linalg.norm(Xs - X) - h) < 0.5 * h
        dp.append(float(Xs[-1] - p) if ok else np.nan)
    lam = complex(ev[i])
    if not np.all(np.isfinite(dp)):
        return Bifurcation(
            "branch_point",
            p,
            y,
            loc.index,
            eigenvalue=lam,
            direction=t1,
            note="the other branch could not be followed from here",
        )
    d_plus, d_minus = dp
    if abs(d_plus - d_minus) <= 0.05 * (abs(d_plus) + abs(d_minus)) + 1e-12:
        # Pitchfork: the new branch exists on one side, p − p* ≈ c s². It is
        # supercritical when that side is where the old branch has lost stability.
        before, after = branch_pts[loc.index - 1], branch_pts[loc.index]
        more_unstable_ahead = after.record["n_real"] > before.record["n_real"]
        ahead = np.sign(after.X[-1] - before.X[-1])
        unstable_side = ahead if more_unstable_ahead else -ahead
        side = np.sign(d_plus + d_minus)
        return Bifurcation(
            "pitchfork",
            p,
            y,
            loc.index,
            coefficient=(d_plus + d_minus) / h**2,
            criticality="supercritical" if side == unstable_side else "subcritical",
            eigenvalue=lam,
            direction=t1,
        )
    if d_plus * d_minus < 0:
        return Bifurcation(
            "transcritical", p, y, loc.index, eigenvalue=lam, direction=t1
        )
    return Bifurcation("branch_point", p, y, loc.index, eigenvalue=lam, direction=t1)


def arclength_settings(span, ds, ds_min, ds_max, max_points, tol):
    width = abs(span[1] - span[0])
    return arc.Settings(
        ds=ds if ds is not None else 0.01 * width,
        ds_min=ds_min,
        ds_max=ds_max if ds_max is not None else 0.05 * width,
        max_points=max_points,
        tol=tol,
    )


def user_values(at: Any) -> tuple[float, ...]:
    """`at` as a tuple of finite floats (a clear error otherwise)."""
    values = tuple(float(v) for v in np.atleast_1d(np.asarray(at, float)))
    if not all(np.isfinite(values)):
        raise ValueError(f"at must hold finite parameter values, got {at!r}")
    return values


def follow_with_progress(problem, X0, t0, span, s, progress, desc, at=()):
    """Follow the branch; with `progress`, a bar over the parameter span (the share
    of the span covered so far), the current value and the point count."""
    lo, hi = min(span), max(span)
    width = hi - lo

    def stop(point):
        # Positive inside the span (with a margin so the start is inside).
        p = point.X[-1]
        return min(p - lo, hi - p) + 1e-9 * width

    show = True if progress is None else bool(progress)
    start = float(X0[-1])
    with tqdm(
        total=1000, desc=desc, disable=not show, leave=False, bar_format=_BAR
    ) as bar:
        bar.set_postfix_str(f"starting at p = {start:.6g}", refresh=True)
        count = [0]

        def tick(point):
            count[0] += 1
            p = float(point.X[-1])
            # The share of the span between the start and the far end of the span.
            far = hi if abs(hi - start) >= abs(lo - start) else lo
            done = abs(p - start) / max(abs(far - start), 1e-300)
            bar.n = int(1000 * min(max(done, bar.n / 1000), 1.0))
            bar.set_postfix_str(f"p = {p:.6g}, {count[0]} points", refresh=True)

        return arc.follow(problem, X0, t0, s, stop=stop, progress=tick, at=at)


_BAR = "{desc}: {percentage:3.0f}% of the span |{bar}| {elapsed}{postfix}"


def _empty_branch(model, param: str, status: Status, message: str) -> Branch:
    """A branch that could not start: no points, the status and why."""
    n = int(np.size(model.initial_state()))
    return Branch(
        param=param,
        p=np.zeros(0),
        ys=np.zeros((0, n)),
        eigenvalues=np.zeros((0, 0), complex),
        n_unstable=np.zeros(0, int),
        points=(),
        status=status,
        message=message,
        info=run_info(model, tuple(model.state_names), solver="continuation"),
        model=model,
    )


def _branch(problem, run, s, lyap_tol, param, span):
    pts = run.points
    if not pts:
        return _empty_branch(
            problem.model,
            param,
            Status(run.status),
            f"continuation in {param!r} could not start: {run.message}",
        )
    specials = []
    lo, hi = min(span), max(span)
    for loc in run.located:
        if not lo - 1e-12 <= loc.point.X[-1] <= hi + 1e-12:
            continue
        if loc.name.startswith("_at"):
            X = loc.point.X
            specials.append(Bifurcation("user", float(X[-1]), X[:-1], loc.index))
            continue
        specials.append(_classify(problem, loc, pts, s, lyap_tol))
    width = max(len(q.record["eigenvalues"]) for q in pts)
    ev = np.full((len(pts), width), np.nan + 0j)
    for i, q in enumerate(pts):
        ev[i, : len(q.record["eigenvalues"])] = q.record["eigenvalues"]
    model = problem.model
    status = run.status
    p_end = pts[-1].X[-1]
    if status == Status.SPAN_REACHED and abs(p_end - span[1]) > abs(p_end - span[0]):
        status = Status.TURNED_BACK
    return Branch(
        param=param,
        p=np.array([q.X[-1] for q in pts]),
        ys=np.array([q.X[:-1] for q in pts]),
        eigenvalues=ev,
        n_unstable=np.array([q.record["n_complex"] + q.record["n_real"] for q in pts]),
        points=tuple(specials),
        status=status,
        message=Status(status).message,
        info=run_info(model, tuple(model.state_names), solver="continuation"),
        model=model,
    )


def continuation(
    model: System,
    param: str,
    span: Span,
    *,
    y0: State | None = None,
    ds: float | None = None,
    ds_min: float = 1e-9,
    ds_max: float | None = None,
    max_points: int = 2000,
    tol: float = 1e-10,
    n_eigenvalues: int | None = None,
    shift: float = 0.0,
    lyapunov_tol: float = 1e-8,
    t: float = 0.0,
    args: Any = None,
    at: Any = (),
    progress: bool | None = None,
    throw: bool = False,
) -> Branch:
    """Follow a branch of equilibria of `model` as `param` goes from `span[0]` to
    `span[1]`, by pseudo-arclength continuation (it turns around folds).

    Along the branch: the eigenvalues (all of them for small systems; the
    `n_eigenvalues` nearest `shift` by shift-invert Arnoldi for models with a
    sparse Jacobian or more than 400 states) and their stability. Detected and
    located (Illinois method on a test function, along the arclength):

    - folds (dp/ds = 0),
    - Hopf points (the real part of a complex pair crosses zero; a neutral saddle,
      two real eigenvalues ±κ, is not a Hopf point) with ω and the first Lyapunov
      coefficient l₁: supercritical (l₁ < 0), subcritical (l₁ > 0) or degenerate
      (|l₁| ≤ `lyapunov_tol`, or ω ≈ 0),
    - branch points (a real eigenvalue crosses zero without a fold), classified as
      pitchfork (with criticality) or transcritical from the branch crossing them.

    Steps halve where more than one eigenvalue crosses in a step, so Hopf points
    close to folds are not jumped over.

    **Arguments:** `y0`: a guess of the first equilibrium (default the model's
    `steady_state()` or `initial_state()`); `ds`, `ds_min`, `ds_max`: arclength
    steps (default 1 % and 5 % of the span); `max_points`; `tol`: Newton tolerance;
    `t`, `args`: for non-autonomous fields; `at`: parameter values at which the
    branch is reported (located exactly; special points of kind "user", AUTO's
    UZ); `progress`: a progress bar over the
    span (default on; False silences it); `throw`: raise `RuntimeError` instead of
    returning a branch that is not `ok`.

    **Returns:** a `Branch`; its `status` says how the run ended (`SPAN_REACHED`,
    `TURNED_BACK`, `CLOSED`, `MAX_POINTS`, `STEP_TOO_SMALL`, or `NO_CONVERGENCE`
    with no points when no equilibrium is found near `y0` at `span[0]`).

    **Raises:** `ValueError` for an unknown parameter or an empty span.
    """
    check_parameter_names(model, {param: 0.0})
    if not (np.isfinite(span[0]) and np.isfinite(span[1])) or span[0] == span[1]:
        raise ValueError(f"span must be two different finite numbers, got {span}")
    model0 = replace_parameters(model, {param: span[0]})
    eq = equilibrium(model0, y0, t=t, args=args, rtol=tol, atol=tol * 1e-2)
    if not eq.ok:
        message = f"no equilibrium at {param} = {span[0]}: {eq.message}"
        return checked(_empty_branch(model, param, eq.status, message), throw)
    problem = Equilibria(
        model, param, n_eigenvalues=n_eigenvalues, shift=shift, t=t, args=args
    )
    s = arclength_settings(span, ds, ds_min, ds_max, max_points, tol)
    X0 = np.append(eq.y, span[0])
    t0 = np.zeros(X0.size)
    t0[-1] = np.sign(span[1] - span[0])
    t0 = arc.tangent(problem, X0, t0)
    run = follow_with_progress(
        problem, X0, t0, span, s, progress, f"continuation in {param}", user_values(at)
    )
    return checked(_branch(problem, run, s, lyapunov_tol, param, span), throw)


def switch_branch(
    branch: Branch,
    point: Bifurcation,
    span: Span | None = None,
    *,
    model: System | None = None,
    direction: int = 1,
    ds: float | None = None,
    throw: bool = False,
    **kwargs: Any,
) -> Branch:
    """Follow the other branch through a branch point (pitchfork, transcritical),
    in `direction` ±1 along it, over `span` (default: the original branch's);
    options as `continuation`. A branch that cannot be stepped onto comes back
    with no points and status `NO_CONVERGENCE` (`throw=True`: `RuntimeError`)."""
    if point.direction is None:
        raise ValueError(f"{point!r} is not a branch point with a known direction")
    model = model if model is not None else branch.model
    if model is None:
        raise ValueError(
            "pass the model: a branch loaded from a file does not hold one"
        )
    span = span if span is not None else (float(branch.p[0]), float(branch.p[-1]))
    n_eigenvalues = kwargs.pop("n_eigenvalues", None)
    shift = kwargs.pop("shift", 0.0)
    lyap_tol = kwargs.pop("lyapunov_tol", 1e-8)
    progress = kwargs.pop("progress", None)
    at = user_values(kwargs.pop("at", ()))
    problem = Equilibria(model, branch.param, n_eigenvalues=n_eigenvalues, shift=shift)
    s = arclength_settings(
        span,
        ds,
        **{"ds_min": 1e-9, "ds_max": None, "max_points": 2000, "tol": 1e-10, **kwargs},
    )
    X_bp = np.append(point.y, point.value)
    t1 = direction * point.direction
    h = s.ds
    X1, ok, _ = arc.correct(problem, X_bp + h * t1, t1, s)
    if not ok:
        message = f"could not step onto the other branch at {point!r}"
        empty = _empty_branch(model, branch.param, Status.NO_CONVERGENCE, message)
        return checked(empty, throw)
    t0 = arc.tangent(problem, X1, t1)
    run = follow_with_progress(problem, X1, t0, span, s, progress, "switch branch", at)
    return checked(_branch(problem, run, s, lyap_tol, branch.param, span), throw)
