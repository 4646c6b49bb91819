"""Two-parameter continuation of Hopf and fold curves (the boundaries of the
"lobes" of a phase diagram), by the standard augmented systems (Kuznetsov 2004,
§10.2):

- fold:  f(y, p) = 0,  A v = 0,  ⟨c, v⟩ = 1;
- Hopf:  f(y, p) = 0,  A q_r + ω q_i = 0,  A q_i − ω q_r = 0,  ⟨c, q_r⟩ = 1,
  ⟨c, q_i⟩ = 0,

with A = ∂f/∂y (its products by JAX JVPs) and c the previous point's vector. The
augmented Jacobian is dense (forward-mode JAX), so this suits systems of up to a few
hundred states.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from dynsim.models import check_parameter_names, replace_parameters
from dynsim.solvers import Status

from .._custom_types import Spans, System
from .._provenance import run_info
from . import _arclength as arc
from ._branch import Bifurcation, Branch, Codim2Point, Curve, CycleBranch
from ._cycle_folds import CycleFolds
from ._linalg import jacobian, parameter_value
from ._normal_form import first_lyapunov, hopf_vectors, multilinear, second_lyapunov


def _f(model, names, y, p, t, args):
    return replace_parameters(model, dict(zip(names, p, strict=True))).vector_field(
        t, y, args
    )


@eqx.filter_jit
def _fold_residual(model, names, Z, c, t, args):
    n = (Z.size - 2) // 2
    y, v, p = Z[:n], Z[n : 2 * n], Z[2 * n :]
    f, av = jax.jvp(lambda u: _f(model, names, u, p, t, args), (y,), (v,))
    return jnp.concatenate([f, av, jnp.atleast_1d(c @ v - 1.0)])


@eqx.filter_jit
def _residual_jacobian(residual_fn, model, names, Z, c, t, args):
    """∂residual/∂Z, compiled once per residual and model structure (JAX's
    Jacobian of a compiled residual, taken outside a jit, traces it anew on every
    call: 6 ms a point of a Hopf curve)."""
    return jax.jacfwd(lambda W: residual_fn(model, names, W, c, t, args))(Z)


@eqx.filter_jit
def _hopf_residual(model, names, Z, c, t, args):
    n = (Z.size - 3) // 3
    y, qr, qi, omega, p = (
        Z[:n],
        Z[n : 2 * n],
        Z[2 * n : 3 * n],
        Z[3 * n],
        Z[3 * n + 1 :],
    )

    def f(u):
        return _f(model, names, u, p, t, args)

    f0, aqr = jax.jvp(f, (y,), (qr,))
    _, aqi = jax.jvp(f, (y,), (qi,))
    return jnp.concatenate(
        [f0, aqr + omega * qi, aqi - omega * qr, jnp.stack([c @ qr - 1.0, c @ qi])]
    )


class _Curve:
    """The augmented system for `follow`: Z = (y, vectors…, p₁, p₂)."""

    def __init__(self, kind, model, names, size, t, args):
        self.kind, self.model, self.names, self.t, self.args = (
            kind,
            model,
            names,
            t,
            args,
        )
        self.residual_fn = _fold_residual if kind == "fold" else _hopf_residual
        # What a real eigenvalue through 0 and a complex pair through the imaginary
        # axis are on this curve.
        self.kinds = (
            ("bogdanov_takens", "zero_hopf")
            if kind == "fold"
            else ("zero_hopf", "double_hopf")
        )
        self.size = size
        self.c: np.ndarray | None = None

    def _vec(self, Z):
        n = self.size
        return Z[n : 2 * n]

    def _inputs(self, Z):
        """The residual's arguments at Z (NumPy arrays: no device copy each)."""
        return (
            self.model,
            self.names,
            np.asarray(Z, float),
            np.asarray(self.c, float),
            self.t,
            self.args,
        )

    def residual(self, Z):
        return np.asarray(self.residual_fn(*self._inputs(Z)))

    def jacobian(self, Z):
        return np.asarray(_residual_jacobian(self.residual_fn, *self._inputs(Z)))

    def at(self, Z):
        """The model at Z's parameters, the equilibrium, ∂f/∂y and its eigenvalues."""
        model = replace_parameters(
            self.model, dict(zip(self.names, Z[-2:], strict=True))
        )
        y = Z[: self.size]
        jac = np.asarray(jacobian(model, y, self.t, self.args))
        return model, y, jac, np.linalg.eigvals(jac)

    def monitor(self, Z, t):
        """Test functions of the codimension-two points (module doc), and the
        counts of eigenvalues in the right half-plane that tell a crossing."""
        model, y, jac, ev = self.at(Z)
        if self.kind == "fold":
            rest = ev[np.argsort(np.abs(ev))[1:]]  # without the zero eigenvalue
        else:
            omega = Z[3 * self.size]
            near = np.argsort(
                np.minimum(np.abs(ev - 1j * omega), np.abs(ev + 1j * omega))
            )
            rest = ev[near[2:]]  # without ±iω
        is_real = np.abs(rest.imag) <= 1e-9 * max(1.0, np.max(np.abs(rest), initial=0))
        real, pairs = rest[is_real].real, rest[~is_real]
        # A real eigenvalue through 0, a complex pair through the imaginary axis.
        real_kind, pair_kind = self.kinds
        tests = {
            real_kind: real[np.argmin(np.abs(real))] if real.size else np.nan,
            pair_kind: pairs.real[np.argmin(np.abs(pairs.real))]
            if pairs.size
            else np.nan,
        }
        record = {
            real_kind: int(np.sum(real > 0)),
            pair_kind: int(np.sum(pairs.real > 0)),
        }
        if self.kind == "fold":
            v = Z[self.size : 2 * self.size]
            w = np.linalg.svd(jac)[0][:, -1]  # Aᵀw = 0
            bvv = multilinear(model, y, v, v, t=self.t, args=self.args)
            with np.errstate(divide="ignore", invalid="ignore"):
                tests["cusp"] = 0.5 * (w @ bvv) / (w @ v)
        else:
            tests["bautin"] = first_lyapunov(model, y, jac, omega, self.t, self.args)
        return tests, record

    def crossings(self, a, b):
        names = [
            kind
            for kind in self.kinds
            if b.record[kind] != a.record[kind] and a.tests[kind] * b.tests[kind] < 0
        ]
        if self.kind == "fold":
            # ⟨w, v⟩ → 0 at a Bogdanov–Takens point: the cusp test passes ∞ there.
            if a.tests["cusp"] * b.tests["cusp"] < 0 and "bogdanov_takens" not in names:
                names.append("cusp")
        elif (
            a.tests["bautin"] * b.tests["bautin"] < 0
            and self.end(a.X) * self.end(b.X) > 0
        ):
            # l₁ ∝ 1/ω also changes sign where ω does, at the curve's end.
            names.append("bautin")
        return names, len(names) > 1

    def accept(self, Z):
        v = self._vec(Z)
        self.c = v / (v @ v)

    def split(self, Z):
        """The states and frequencies of the points Z (rows)."""
        n = self.size
        omega = Z[:, 3 * n] if self.kind == "hopf" else np.full(len(Z), np.nan)
        return Z[:, :n], omega

    def end(self, Z):
        """A Hopf curve ends where ω passes 0 (a Bogdanov–Takens point; beyond it
        the system describes the same curve with −ω)."""
        return Z[3 * self.size] if self.kind == "hopf" else np.inf


def _start(kind, model, y, names, p_start, frequency=float("nan")):
    """The first point of the augmented system: the null vector of ∂f/∂y (fold),
    or ω and q = q_r + i q_i with A q = iωq, q_r ⟂ q_i (Hopf)."""
    jac = jacobian(replace_parameters(model, dict(zip(names, p_start, strict=True))), y)
    if kind == "fold":
        ev, vecs = np.linalg.eig(np.asarray(jac))
        v = np.real(vecs[:, np.argmin(np.abs(ev))])
        return np.concatenate([y, v, p_start])
    q, _ = hopf_vectors(jac, frequency)
    a, b = q.real, q.imag
    theta = 0.5 * np.arctan2(-2 * a @ b, a @ a - b @ b)
    q = q * np.exp(1j * theta)
    return np.concatenate([y, q.real, q.imag, [frequency], p_start])


@dataclasses.dataclass(frozen=True)
class CurveOptions:
    """How a curve is followed: arclength steps (`ds`, `ds_max`: default 1 % and 5 %
    of the narrower span), `max_points`, Newton's `tol`, `t` and `args` of the
    field, and for folds of cycles the shooting integrator (`solver`, `rtol`,
    `atol`, `max_steps`)."""

    ds: float | None = None
    ds_max: float | None = None
    max_points: int = 1000
    tol: float = 1e-10
    t: float = 0.0
    args: Any = None
    solver: str = "tsit5"
    rtol: float = 1e-10
    atol: float = 1e-12
    max_steps: int = 100_000


def bifurcation_curve(
    source: Branch | CycleBranch | Curve,
    point: Bifurcation | Codim2Point,
    param2: str | None = None,
    spans: Spans | None = None,
    *,
    bifurcation: str | None = None,
    model: System | None = None,
    ds: float | None = None,
    ds_max: float | None = None,
    max_points: int = 1000,
    tol: float = 1e-10,
    t: float = 0.0,
    args: Any = None,
    solver: str = "tsit5",
    rtol: float = 1e-10,
    atol: float = 1e-12,
    max_steps: int = 100_000,
    throw: bool = False,
) -> Curve:
    """The curve of Hopf points, folds or folds of cycles through `point` as p₁ and
    `param2` both vary, followed in both directions until a parameter leaves its
    span in `spans` (a dict with both names), the curve closes, or a Hopf curve
    ends at a Bogdanov–Takens point (ω → 0).

    - `point` a Hopf point or fold of the equilibrium branch `source` (which varied
      p₁): its Hopf or fold curve (augmented systems, module docstring);
    - `point` a fold of cycles of the cycle branch `source`: its curve of folds of
      cycles (shooting with `solver`, `rtol`, `atol`, `max_steps`;
      `_cycle_folds.py`);
    - `point` a codimension-two point of the curve `source` (whose `params` are
      p₁, p₂; `param2` may be omitted): the curve `bifurcation` that starts there.
      From a Bogdanov–Takens point: "hopf" (default; found on an equilibrium branch
      in p₁ through a fold a little way along the fold curve, then followed) or
      "fold" (the fold curve through it); from a Bautin point: "cycle_fold" (the
      cycles born at a Hopf point a little way along the Hopf curve, on the side
      where l₁ l₂ < 0, are followed to their fold, whose curve is then followed).

    Located along Hopf and fold curves (test functions on the eigenvalues of
    ∂f/∂y, Illinois method on the arclength), with their normal-form coefficients
    (`Codim2Point`): on fold curves Bogdanov–Takens points (a second real
    eigenvalue through 0; `a`, `b`), cusps (the fold's quadratic coefficient
    through 0; `c`) and zero-Hopf points (a complex pair through the imaginary
    axis); on Hopf curves Bautin points (l₁ = 0; `l1`, the second Lyapunov
    coefficient `l2`, `omega`), zero-Hopf points (a real eigenvalue through 0),
    double-Hopf points (a second pair through the imaginary axis) and the
    Bogdanov–Takens point where the curve ends.

    **Returns:** a `Curve`: the parameter pairs, states (for folds of cycles a
    point of each orbit) and ω (2π/T for folds of cycles); its `status` says how
    both directions ended (`NO_CONVERGENCE` with no points when the curve cannot
    start; `throw=True`: `RuntimeError` instead of a curve that is not `ok`).

    **Raises:** `ValueError` for a point that starts no curve, unknown parameters,
    or spans that do not name both parameters.
    """
    model = model if model is not None else source.model
    if model is None:
        raise ValueError(
            "pass the model: a result loaded from a file does not hold one"
        )
    options = CurveOptions(ds, ds_max, max_points, tol, t, args, solver, rtol,
                           atol, max_steps)  # fmt: skip
    if isinstance(point, Codim2Point):
        from ._curve_starts import curve_from

        names = tuple(source.params)
        if param2 not in (None, names[1]):
            raise ValueError(
                f"a curve from {point.kind} varies the curve's own parameters "
                f"{names}, not {param2!r}"
            )
        spans = _checked_spans(model, names, spans)
        return checked(curve_from(source, point, bifurcation, spans, model, options),
                       throw)  # fmt: skip
    if point.kind not in ("hopf", "fold", "cycle_fold"):
        raise ValueError(
            "a curve starts at a Hopf point, a fold, a fold of cycles or a "
            f"codimension-two point, not {point!r}"
        )
    if param2 is None:
        raise ValueError("name the second parameter (param2)")
    names = (source.param, param2)
    spans = _checked_spans(model, names, spans)
    problem, Z0 = through(point, model, names, options)
    return checked(trace(problem, Z0, spans, model, options), throw)


def through(point: Bifurcation, model, names, options: CurveOptions):
    """The problem of the curve through `point` (a Hopf point, fold or fold of
    cycles at the model's value of p₂), and its first point."""
    p = np.array([point.value, float(np.asarray(parameter_value(model, names[1])))])
    if point.kind == "cycle_fold":
        problem = CycleFolds(model, names, point.y.size, solver=options.solver,
                             rtol=options.rtol, atol=options.atol,
                             max_steps=options.max_steps)  # fmt: skip
        return problem, np.concatenate([point.y, [point.period], p])
    problem = _Curve(point.kind, model, names, point.y.size, options.t, options.args)
    return problem, _start(point.kind, model, point.y, names, p, point.frequency)


def _checked_spans(model, names, spans) -> dict[str, tuple[float, float]]:
    check_parameter_names(model, {name: 0.0 for name in names})
    if spans is None or set(spans) != set(names):
        raise ValueError(
            f"spans must give ranges for exactly {names}, got "
            f"{None if spans is None else list(spans)}"
        )
    return {n: (float(spans[n][0]), float(spans[n][1])) for n in names}


def trace(problem, Z0: np.ndarray, spans, model, options: CurveOptions) -> Curve:
    """Follow the curve of `problem` from Z0 both ways (p₂ increasing first) and
    collect it as a `Curve`."""
    names = problem.names
    widths = [abs(spans[n][1] - spans[n][0]) for n in names]
    s = arc.Settings(
        ds=options.ds if options.ds is not None else 0.01 * min(widths),
        ds_max=options.ds_max if options.ds_max is not None else 0.05 * min(widths),
        max_points=options.max_points,
        tol=options.tol,
    )
    end = getattr(problem, "end", None)

    def stop(pt):
        p = pt.X[-2:]
        inside = (
            min(
                min(p[i] - min(spans[n]), max(spans[n]) - p[i]) / widths[i]
                for i, n in enumerate(names)
            )
            + 1e-9
        )
        return inside if end is None else min(inside, end(pt.X))

    halves = []
    for sign in (1.0, -1.0):
        problem.accept(Z0)
        t0 = np.zeros(Z0.size)
        t0[-1] = sign
        run = arc.follow(problem, Z0, arc.tangent(problem, Z0, t0), s, stop=stop)
        halves.append(run)
        if run.status == Status.CLOSED:
            break
    pts = halves[0].points
    if len(halves) > 1:
        pts = halves[1].points[::-1] + pts[1:]
    info = run_info(model, tuple(model.state_names), solver="continuation")
    if not pts:
        n = problem.size
        curve = Curve(
            bifurcation=problem.kind,
            params=names,
            values=np.zeros((0, 2)),
            ys=np.zeros((0, n)),
            frequency=np.zeros(0),
            status=int(Status.NO_CONVERGENCE),
            message=f"the {problem.kind} curve could not start: {halves[0].message}",
            info=info,
            model=model,
        )
        return curve
    Z = np.array([q.X for q in pts])
    ys, frequency = problem.split(Z)
    located = _codim2_points(problem, halves)
    # Both directions: the first that did not end well decides, else how it ended.
    ends = [Status(run.status) for run in halves]
    failed = [e for e in ends if not e.ok]
    status = failed[0] if failed else max(ends, key=lambda e: e == Status.CLOSED)
    return Curve(
        bifurcation=problem.kind,
        params=names,
        values=Z[:, -2:],
        ys=ys,
        frequency=frequency,
        status=int(status),
        message=status.message,
        info=info,
        points=tuple(located),
        model=model,
    )


def _codim2_points(problem, halves) -> list[Codim2Point]:
    """The located points of both directions' runs, with their coefficients, indexed
    along the joined curve (the second direction reversed before the first), and
    the Bogdanov–Takens point where a Hopf curve ended (ω → 0)."""
    if not isinstance(problem, _Curve):
        return []
    before = len(halves[1].points) - 1 if len(halves) > 1 else 0
    out = []
    for h, run in enumerate(halves):
        for loc in run.located:
            index = loc.index + before if h == 0 else before - loc.index + 1
            out.append(_codim2_point(problem, loc.name, loc.point.X, index))
    if problem.kind != "hopf":
        return sorted(out, key=lambda q: q.index)
    scale = max(abs(problem.end(q.X)) for run in halves for q in run.points)
    for h, run in enumerate(halves):
        last = run.points[-1].X if run.points else None
        ended = run.status == Status.SPAN_REACHED and last is not None
        if ended and abs(problem.end(last)) <= 1e-6 * scale:
            index = before + len(run.points) - 1 if h == 0 else 0
            out.append(_codim2_point(problem, "bogdanov_takens", last, index))
    return sorted(out, key=lambda q: q.index)


def _codim2_point(problem: _Curve, kind: str, Z, index: int) -> Codim2Point:
    model, y, jac, _ = problem.at(Z)
    t, args = problem.t, problem.args
    coefficients = {}
    if kind == "bogdanov_takens":
        coefficients = bogdanov_takens_coefficients(model, y, jac, t, args)
    elif kind == "cusp":
        coefficients = {"c": cusp_coefficient(model, y, jac, t, args)}
    elif kind == "bautin":
        omega = float(Z[3 * problem.size])
        coefficients = {
            "l1": first_lyapunov(model, y, jac, omega, t, args),
            "l2": second_lyapunov(model, y, jac, omega, t, args),
            "omega": omega,
        }
    elif problem.kind == "hopf":
        coefficients = {"omega": float(Z[3 * problem.size])}
    return Codim2Point(kind, Z[-2:].copy(), y.copy(), index, coefficients)


def bogdanov_takens_coefficients(model, y, jac, t=0.0, args=None) -> dict[str, float]:
    """a and b of the Bogdanov–Takens normal form ẇ₀ = w₁, ẇ₁ = a w₀² + b w₀ w₁
    (Kuznetsov 2004, §8.4): A q₀ = 0, A q₁ = q₀, Aᵀp₁ = 0, Aᵀp₀ = p₁ with
    ⟨q₀,p₀⟩ = ⟨q₁,p₁⟩ = 1, ⟨q₁,p₀⟩ = ⟨q₀,p₁⟩ = 0; a = ½⟨p₁, B(q₀,q₀)⟩,
    b = ⟨p₀, B(q₀,q₀)⟩ + ⟨p₁, B(q₀,q₁)⟩; as w ↦ −w flips both signs, given with
    a > 0."""
    A = np.asarray(jac, float)
    u, _, vt = np.linalg.svd(A)
    q0, p1 = vt[-1], u[:, -1]
    q1 = np.linalg.lstsq(A, q0, rcond=None)[0]
    p0 = np.linalg.lstsq(A.T, p1, rcond=None)[0]
    scale = q0 @ p0
    p0, p1 = p0 / scale, p1 / scale
    q1 = q1 - (q1 @ p0) * q0
    b00 = multilinear(model, y, q0, q0, t=t, args=args).real
    b01 = multilinear(model, y, q0, q1, t=t, args=args).real
    a, b = float(0.5 * p1 @ b00), float(p0 @ b00 + p1 @ b01)
    # w ↦ −w changes the signs of both: the convention a > 0 (sign(ab) decides).
    return {"a": abs(a), "b": b if a >= 0 else -b}


def cusp_coefficient(model, y, jac, t=0.0, args=None) -> float:
    """c of the cusp normal form ẋ = c x³ (Kuznetsov 2004, §8.2):
    c = ⅙⟨p, C(q,q,q) + 3B(q,h₂)⟩ with A q = 0, Aᵀp = 0, ⟨p,q⟩ = 1 and
    h₂ = −A^INV B(q,q) (the solution orthogonal to p of the bordered system)."""
    A = np.asarray(jac, float)
    u, _, vt = np.linalg.svd(A)
    q, p = vt[-1], u[:, -1]
    p = p / (p @ q)
    bqq = multilinear(model, y, q, q, t=t, args=args).real
    n = A.shape[0]
    bordered = np.block([[A, p[:, None]], [q[None, :], np.zeros((1, 1))]])
    h2 = -np.linalg.solve(bordered, np.append(bqq, 0.0))[:n]
    cqqq = multilinear(model, y, q, q, q, t=t, args=args).real
    bqh = multilinear(model, y, q, h2, t=t, args=args).real
    return float((p @ cqqq + 3 * p @ bqh) / 6)


def checked(curve: Curve, throw: bool) -> Curve:
    if throw and not curve.ok:
        raise RuntimeError(curve.message)
    return curve
