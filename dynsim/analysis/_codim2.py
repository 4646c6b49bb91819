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
from ._branch import Bifurcation, Branch, Curve
from ._linalg import jacobian, parameter_value
from ._normal_form import hopf_vectors


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

    def monitor(self, Z, t):
        return {}, {}

    def crossings(self, a, b):
        return [], False

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
    )
    return checked(curve, throw)


def checked(curve: Curve, throw: bool) -> Curve:
    if throw and not curve.ok:
        raise RuntimeError(curve.message)
    return curve
