"""Continuation of periodic orbits (limit cycles) by single shooting.

**Why shooting.** A cycle is a fixed point of the time-T flow: φ_T(x₀; p) = x₀ with
a phase condition ⟨v, x₀ − x_ref⟩ = 0 (v: the flow direction at the previous orbit's
x_ref). The flow is dynsim's own adaptive integrator (time rescaled to [0, 1], so T
is an unknown like x₀), and its exact derivatives come from forward-mode JAX through
the solve. This reuses the error-controlled solvers instead of a fixed mesh, gives
the monodromy matrix ∂φ_T/∂x₀ directly — its eigenvalues are the Floquet
multipliers, accurate to the solver's tolerance, with the trivial multiplier 1 as a
check — and costs n + 2 forward-mode solves per Newton step, which suits the small
and moderate systems whose cycles are continued. Orthogonal collocation (AUTO,
MatCont) is the better choice for strongly unstable or very stiff cycles, where
shooting loses accuracy through the growth of the flow's derivative.

Detected along the branch: folds of cycles (dp/ds = 0) and period doublings (a real
multiplier through −1).
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import ArrayLike

from dynsim import solvers
from dynsim.models import AbstractModel, check_parameter_names, replace_parameters
from dynsim.solvers import SaveSpec, Status

from .._checks import options_for
from .._custom_types import Flow, Span, State
from .._provenance import run_info
from ._branch import Bifurcation, CycleBranch
from ._continuation import arclength_settings, follow_with_progress
from ._linalg import field, jacobian, parameter_value
from ._normal_form import hopf_vectors


class Cycles:
    """The shooting problem for `follow`: X = (x₀, T, p)."""

    def __init__(self, model, param, *, solver, rtol, atol, samples, max_steps):
        self.model, self.param = model, param
        self.opts = options_for(
            model, solver=solver, rtol=rtol, atol=atol, max_steps=max_steps
        )
        self.ts = jnp.linspace(0.0, 1.0, samples)
        self.x_ref: np.ndarray | None = None
        self.v_ref: np.ndarray | None = None
        self._cache: tuple[bytes, np.ndarray] | None = None

    def orbit(self, X):
        """The orbit through x₀ over one period, at `samples` times."""
        return np.asarray(
            _orbit(self.model, self.param, jnp.asarray(X), self.ts, self.opts)
        )

    def residual(self, X):
        return np.asarray(self._residual(X))

    def _residual(self, X):
        return _shoot(
            self.model,
            self.param,
            jnp.asarray(X),
            jnp.asarray(self.x_ref),
            jnp.asarray(self.v_ref),
            self.opts,
        )

    def jacobian(self, X):
        key = X.tobytes() + self.x_ref.tobytes()
        if self._cache is None or self._cache[0] != key:
            jac = _shoot_jacobian(
                self.model,
                self.param,
                jnp.asarray(X),
                jnp.asarray(self.x_ref),
                jnp.asarray(self.v_ref),
                self.opts,
            )
            self._cache = (key, np.asarray(jac))
        return self._cache[1]

    def multipliers(self, X):
        n = X.size - 2
        monodromy = self.jacobian(X)[:n, :n] + np.eye(n)
        mu = np.linalg.eigvals(monodromy)
        return mu[np.argsort(-np.abs(mu))]

    def monitor(self, X, t):
        mu = self.multipliers(X)
        trivial = int(np.argmin(np.abs(mu - 1.0)))
        others = np.delete(mu, trivial)
        real = others[
            np.abs(others.imag) <= 1e-8 * max(1.0, np.max(np.abs(others), initial=0))
        ]
        pd = real[np.argmin(np.abs(real + 1.0))].real + 1.0 if real.size else np.nan
        orbit = self.orbit(X)
        record = {
            "multipliers": mu,
            "trivial_error": float(abs(mu[trivial] - 1.0)),
            "stable": bool(np.all(np.abs(others) < 1.0)),
            "n_below": int(np.sum(real.real < -1.0)),
            "y_max": orbit.max(0),
            "y_min": orbit.min(0),
        }
        return {"fold": float(t[-1]), "pd": float(pd)}, record

    def crossings(self, a, b):
        names = []
        if a.tests["fold"] * b.tests["fold"] < 0:
            names.append("fold")
        d_pd = b.record["n_below"] - a.record["n_below"]
        if d_pd != 0 and a.tests["pd"] * b.tests["pd"] < 0:
            names.append("pd")
        return names, abs(d_pd) > 1 or len(names) > 1

    def accept(self, X):
        n = X.size - 2
        self.x_ref = X[:n].copy()
        p_model = replace_parameters(self.model, {self.param: X[-1]})
        v = field(p_model, self.x_ref)
        self.v_ref = v / np.linalg.norm(v)


class _Rescaled(AbstractModel):
    """`base` at parameter `param` = `value`, in the time of one period: τ = t/T,
    dx/dτ = T f(x). A model like any other, solved through its problem."""

    base: AbstractModel
    param: str = eqx.field(static=True)
    period: jax.Array
    value: jax.Array

    @property
    def state_names(self) -> tuple[str, ...]:
        return self.base.state_names

    def vector_field(self, t, u, args):
        at = replace_parameters(self.base, {self.param: self.value})
        return self.period * at.vector_field(t, u, args)

    def initial_state(self):
        return self.base.initial_state()


def _over_one_period(model, param, X, opts):
    n = X.size - 2
    problem = _Rescaled(model, param, X[n], X[n + 1]).problem()
    return solvers.integrate(problem, X[:n], 0.0, 1.0, None, options=opts)


@eqx.filter_jit
def _orbit(model, param, X, ts, opts):
    opts = dataclasses.replace(opts, saveat=SaveSpec(ts=ts))
    return _over_one_period(model, param, X, opts).ys


@eqx.filter_jit
def _shoot(model, param, X, x_ref, v_ref, opts):
    n = X.size - 2
    sol = _over_one_period(model, param, X, opts)
    end = jnp.where(sol.status == 0, sol.ys[-1], jnp.nan)
    return jnp.append(end - X[:n], v_ref @ (X[:n] - x_ref))


@eqx.filter_jit
def _shoot_jacobian(model, param, X, x_ref, v_ref, opts):
    return jax.jacfwd(lambda Z: _shoot(model, param, Z, x_ref, v_ref, opts))(X)


def periodic_orbit_guess(
    model: Flow,
    transient: float,
    window: float,
    *,
    y0: State | None = None,
    state: int | None = None,
    samples: int = 20_000,
    solver: str = "tsit5",
    rtol: float = 1e-8,
    atol: float = 1e-10,
) -> tuple[np.ndarray, float]:
    """(x₀, T): a point on the attracting cycle of `model` and its period, from a
    simulation: after `transient`, the period is the mean interval between upward
    crossings of the mean by `state` (default: the component that varies most) over
    `window`, and x₀ the state at the last crossing.

    **Raises:** `ValueError` if fewer than three crossings are seen (no oscillation).
    """
    from .._simulate import simulate

    traj = simulate(
        model,
        (0.0, transient + window),
        y0=y0,
        solver=solver,
        rtol=rtol,
        atol=atol,
        saveat=np.linspace(transient, transient + window, samples),
        max_steps=1_000_000,
    )
    ts, ys = np.asarray(traj.ts), np.asarray(traj.ys)
    i = int(np.argmax(ys.std(0))) if state is None else state
    x = ys[:, i] - ys[:, i].mean()
    up = np.flatnonzero((x[:-1] < 0) & (x[1:] >= 0))
    half = x.size // 2
    first, last = np.ptp(x[:half]), np.ptp(x[half:])
    decaying = last < 0.9 * first or last <= 1e-8 * (1 + np.abs(ys[:, i]).max())
    if up.size < 3 or decaying:
        raise ValueError(
            f"no sustained oscillation of state {i} after t = {transient} "
            f"({up.size} upward crossings in the window, peak-to-peak {first:.3g} then "
            f"{last:.3g})"
        )
    frac = -x[up] / (x[up + 1] - x[up])
    t_cross = ts[up] + frac * (ts[up + 1] - ts[up])
    k = up[-1]
    x0 = ys[k] + frac[-1] * (ys[k + 1] - ys[k])
    return x0, float(np.mean(np.diff(t_cross)))


def cycle_continuation(
    model: Flow,
    param: str,
    span: Span,
    *,
    hopf: Bifurcation | None = None,
    x0: ArrayLike | None = None,
    period: float | None = None,
    amplitude: float = 1e-3,
    ds: float | None = None,
    ds_min: float = 1e-8,
    ds_max: float | None = None,
    max_points: int = 500,
    tol: float = 1e-9,
    solver: str = "tsit5",
    rtol: float = 1e-10,
    atol: float = 1e-12,
    samples: int = 400,
    max_steps: int = 100_000,
    progress: bool | None = None,
    throw: bool = False,
) -> CycleBranch:
    """Follow a branch of limit cycles of `model` in `param` while it stays within
    `span`, by single shooting (see the module docstring for why), starting either

    - from a Hopf point (`hopf`, e.g. `branch.special("hopf")[0]`): the first orbit
      is the linear one of size `amplitude` along Re q of the critical eigenvector,
      with period 2π/ω; or
    - from a cycle guess `x0`, `period` at the model's value of `param` (e.g. from
      `periodic_orbit_guess`), corrected first, then followed towards `span[1]`.

    Along the branch: period, extremes of every component, Floquet multipliers,
    stability, and located folds of cycles and period doublings. `rtol`, `atol`,
    `solver`: the shooting integration; `tol`: Newton's tolerance; `samples`:
    points per orbit for the extremes.

    **Returns:** a `CycleBranch` (its `trivial_error` column checks the accuracy).

    **Raises:** `ValueError` for a missing or invalid start, `RuntimeError` if the
    first orbit does not converge.
    """
    check_parameter_names(model, {param: 0.0})
    problem = Cycles(
        model,
        param,
        solver=solver,
        rtol=rtol,
        atol=atol,
        samples=samples,
        max_steps=max_steps,
    )
    s = arclength_settings(span, ds, ds_min, ds_max, max_points, tol)
    if hopf is not None:
        if hopf.kind != "hopf" or not hopf.frequency > 0:
            raise ValueError(f"{hopf!r} is not a Hopf point with a positive frequency")
        p_model = replace_parameters(model, {param: hopf.value})
        q, _ = hopf_vectors(jacobian(p_model, hopf.y), hopf.frequency)
        qr = np.real(q) / np.linalg.norm(np.real(q))
        n = hopf.y.size
        X_h = np.concatenate([hopf.y, [2 * np.pi / hopf.frequency, hopf.value]])
        t0 = np.concatenate([qr, [0.0, 0.0]])
        X0 = X_h + amplitude * t0
        if ds is None:
            s.ds = 10 * amplitude
    elif x0 is not None and period is not None:
        if not period > 0:
            raise ValueError(f"period must be > 0, got {period}")
        x0 = np.asarray(x0, float)
        n = x0.size
        X0 = np.concatenate(
            [x0, [period, float(np.asarray(parameter_value(model, param)))]]
        )
        t0 = np.zeros(n + 2)
        t0[-1] = np.sign(span[1] - span[0])
    else:
        raise ValueError("give a Hopf point (hopf=...) or a cycle guess (x0=, period=)")
    problem.accept(X0)
    run = follow_with_progress(problem, X0, t0, span, s, progress, f"cycles in {param}")
    info = run_info(model, tuple(model.state_names), solver=f"shooting/{solver}")
    if not run.points:
        n = X0.size - 2
        empty = np.zeros((0, n))
        result = CycleBranch(
            param=param,
            p=np.zeros(0),
            period=np.zeros(0),
            x0=empty,
            y_max=empty,
            y_min=empty,
            multipliers=np.zeros((0, n), complex),
            trivial_error=np.zeros(0),
            stable=np.zeros(0, bool),
            points=(),
            status=int(Status.NO_CONVERGENCE),
            message=f"no periodic orbit near the starting guess: {run.message}",
            info=info,
            model=model,
        )
        return checked(result, throw)
    pts = run.points
    specials = []
    for loc in run.located:
        X = loc.point.X
        mu = loc.point.record["multipliers"]
        if loc.name == "fold":
            kind, lam = "cycle_fold", mu[np.argsort(np.abs(mu - 1.0))[1]]
        else:
            kind, lam = "period_doubling", mu[np.argmin(np.abs(mu + 1.0))]
        specials.append(
            Bifurcation(
                kind,
                float(X[-1]),
                X[:n],
                loc.index,
                eigenvalue=complex(lam),
                frequency=2 * np.pi / X[n],
            )
        )
    result = CycleBranch(
        param=param,
        p=np.array([q.X[-1] for q in pts]),
        period=np.array([q.X[n] for q in pts]),
        x0=np.array([q.X[:n] for q in pts]),
        y_max=np.array([q.record["y_max"] for q in pts]),
        y_min=np.array([q.record["y_min"] for q in pts]),
        multipliers=np.array([q.record["multipliers"] for q in pts]),
        trivial_error=np.array([q.record["trivial_error"] for q in pts]),
        stable=np.array([q.record["stable"] for q in pts]),
        points=tuple(specials),
        status=run.status,
        message=run.message,
        info=info,
        model=model,
    )
    return checked(result, throw)


def checked(result: CycleBranch, throw: bool) -> CycleBranch:
    if throw and not result.ok:
        raise RuntimeError(result.message)
    return result
