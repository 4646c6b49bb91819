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
from ._branch import Bifurcation, Branch, Codim2Point, Curve
from ._linalg import jacobian, parameter_value
from ._normal_form import first_lyapunov, hopf_vectors, multilinear


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

    def residual(self, Z):
        return np.asarray(
            self.residual_fn(
                self.model,
                self.names,
                jnp.asarray(Z),
                jnp.asarray(self.c),
                self.t,
                self.args,
            )
        )

    def jacobian(self, Z):
        return np.asarray(
            jax.jacfwd(
                lambda W: self.residual_fn(
                    self.model, self.names, W, jnp.asarray(self.c), self.t, self.args
                )
            )(jnp.asarray(Z))
        )

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
        elif a.tests["bautin"] * b.tests["bautin"] < 0:
            names.append("bautin")
        return names, len(names) > 1

    def accept(self, Z):
        v = self._vec(Z)
        self.c = v / (v @ v)


def _start(kind, model, point, y, names, p_start):
    """The first point of the augmented system, and its vector (for ⟨c, ·⟩)."""
    jac = jacobian(replace_parameters(model, dict(zip(names, p_start, strict=True))), y)
    if kind == "fold":
        ev, vecs = np.linalg.eig(np.asarray(jac))
        v = np.real(vecs[:, np.argmin(np.abs(ev))])
        return np.concatenate([y, v, p_start]), v
    q, _ = hopf_vectors(jac, point.frequency)
    a, b = q.real, q.imag
    theta = 0.5 * np.arctan2(-2 * a @ b, a @ a - b @ b)
    q = q * np.exp(1j * theta)
    return np.concatenate([y, q.real, q.imag, [point.frequency], p_start]), q.real


def bifurcation_curve(
    branch: Branch,
    point: Bifurcation,
    param2: str,
    spans: Spans,
    *,
    model: System | None = None,
    ds: float | None = None,
    ds_max: float | None = None,
    max_points: int = 1000,
    tol: float = 1e-10,
    t: float = 0.0,
    args: Any = None,
    throw: bool = False,
) -> Curve:
    """The curve of Hopf points or folds through `point` (a Hopf point or fold of
    `branch`, which varied parameter p₁) as p₁ and `param2` both vary, followed in
    both directions until a parameter leaves its span in `spans` (a dict with both
    names) or the curve closes.

    Located along the curve (test functions on the eigenvalues of ∂f/∂y, Illinois
    method on the arclength), with their normal-form coefficients (`Codim2Point`):
    on fold curves Bogdanov–Takens points (a second real eigenvalue through 0;
    `a`, `b`), cusps (the fold's quadratic coefficient through 0; `c`) and
    zero-Hopf points (a complex pair through the imaginary axis); on Hopf curves
    Bautin points (l₁ = 0), zero-Hopf (a real eigenvalue through 0) and double-Hopf
    points (a second pair through the imaginary axis).

    **Returns:** a `Curve`: the parameter pairs, states and, for Hopf curves, ω;
    its `status` says how both directions ended (`NO_CONVERGENCE` with no points
    when the curve cannot start; `throw=True`: `RuntimeError` instead of a curve
    that is not `ok`).
    """
    if point.kind not in ("hopf", "fold"):
        raise ValueError(
            "two-parameter continuation starts at a Hopf point or a fold, "
            f"not {point!r}"
        )
    model = model if model is not None else branch.model
    if model is None:
        raise ValueError(
            "pass the model: a branch loaded from a file does not hold one"
        )
    names = (branch.param, param2)
    check_parameter_names(model, {param2: 0.0})
    if set(spans) != set(names):
        raise ValueError(
            f"spans must give ranges for exactly {names}, got {list(spans)}"
        )
    p_start = np.array([point.value, float(np.asarray(parameter_value(model, param2)))])
    problem = _Curve(point.kind, model, names, point.y.size, t, args)
    Z0, vec = _start(point.kind, model, point, point.y, names, p_start)
    widths = [abs(spans[n][1] - spans[n][0]) for n in names]
    s = arc.Settings(
        ds=ds if ds is not None else 0.01 * min(widths),
        ds_max=ds_max if ds_max is not None else 0.05 * min(widths),
        max_points=max_points,
        tol=tol,
    )

    def stop(pt):
        p = pt.X[-2:]
        inside = [
            min(p[i] - min(spans[n]), max(spans[n]) - p[i]) / widths[i]
            for i, n in enumerate(names)
        ]
        return min(inside) + 1e-9

    halves = []
    for sign in (1.0, -1.0):
        problem.c = vec / (vec @ vec)
        t0 = np.zeros(Z0.size)
        t0[-1] = sign
        t0 = arc.tangent(problem, Z0, t0)
        run = arc.follow(problem, Z0, t0, s, stop=stop)
        halves.append(run)
        if run.status == Status.CLOSED:
            break
    pts = halves[0].points
    if len(halves) > 1:
        pts = halves[1].points[::-1] + pts[1:]
    n = point.y.size
    info = run_info(model, tuple(model.state_names), solver="continuation")
    if not pts:
        curve = Curve(
            bifurcation=point.kind,
            params=names,
            values=np.zeros((0, 2)),
            ys=np.zeros((0, n)),
            frequency=np.zeros(0),
            status=int(Status.NO_CONVERGENCE),
            message=f"the {point.kind} curve could not start: {halves[0].message}",
            info=info,
        )
        return checked(curve, throw)
    Z = np.array([q.X for q in pts])
    located = _codim2_points(problem, halves)
    # Both directions: the first that did not end well decides, else how it ended.
    ends = [Status(run.status) for run in halves]
    failed = [e for e in ends if not e.ok]
    status = failed[0] if failed else max(ends, key=lambda e: e == Status.CLOSED)
    curve = Curve(
        bifurcation=point.kind,
        params=names,
        values=Z[:, -2:],
        ys=Z[:, :n],
        frequency=Z[:, 3 * n] if point.kind == "hopf" else np.full(len(pts), np.nan),
        status=int(status),
        message=status.message,
        info=info,
        points=tuple(located),
    )
    return checked(curve, throw)


def _codim2_points(problem: _Curve, halves) -> list[Codim2Point]:
    """The located points of both directions' runs, with their coefficients, indexed
    along the joined curve (the second direction reversed before the first)."""
    before = len(halves[1].points) - 1 if len(halves) > 1 else 0
    out = []
    for h, run in enumerate(halves):
        for loc in run.located:
            index = loc.index + before if h == 0 else before - loc.index + 1
            out.append(_codim2_point(problem, loc.name, loc.point.X, index))
    return sorted(out, key=lambda q: q.index)


def _codim2_point(problem: _Curve, kind: str, Z, index: int) -> Codim2Point:
    model, y, jac, _ = problem.at(Z)
    t, args = problem.t, problem.args
    coefficients, note = {}, ""
    if kind == "bogdanov_takens":
        coefficients = bogdanov_takens_coefficients(model, y, jac, t, args)
    elif kind == "cusp":
        coefficients = {"c": cusp_coefficient(model, y, jac, t, args)}
    elif kind == "bautin":
        omega = float(Z[3 * problem.size])
        coefficients = {"l1": first_lyapunov(model, y, jac, omega, t, args),
                        "omega": omega}  # fmt: skip
        note = "the second Lyapunov coefficient is not computed"
    elif problem.kind == "hopf":
        coefficients = {"omega": float(Z[3 * problem.size])}
    return Codim2Point(kind, Z[-2:].copy(), y.copy(), index, coefficients, note)


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
