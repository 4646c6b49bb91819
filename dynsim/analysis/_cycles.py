"""Continuation of periodic orbits (limit cycles): by orthogonal collocation (the
default, `_collocation.py`) or by single shooting.

**Collocation** solves for the whole orbit on a mesh (AUTO, MatCont): it stays
accurate for strongly unstable orbits, e.g. near a homoclinic orbit, where the flow's
derivative grows by many orders of magnitude over a period, and its Floquet
multipliers come from the condensed collocation system without forming the monodromy
matrix (Fairgrieve–Jepson). A corrected orbit that has collapsed onto its
equilibrium (a constant solves the equations for any period) is rejected.

**Shooting.** A cycle is a fixed point of the time-T flow: φ_T(x₀; p) = x₀ with
a phase condition ⟨v, x₀ − x_ref⟩ = 0 (v: the flow direction at the previous orbit's
x_ref). The flow is dynsim's own adaptive integrator (time rescaled to [0, 1], so T
is an unknown like x₀), and its exact derivatives come from forward-mode JAX through
the solve: the monodromy matrix ∂φ_T/∂x₀ directly, its eigenvalues the Floquet
multipliers to the solver's tolerance, for n + 2 forward-mode solves per Newton step.

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
from ._collocation import DEGREE, INTERVALS, Collocation, Mesh, uniform_mesh
from ._continuation import arclength_settings, follow_with_progress, user_values
from ._linalg import field, jacobian, parameter_value
from ._normal_form import hopf_vectors

#: A corrected orbit smaller than this fraction of the previous one has collapsed
#: onto the equilibrium (a constant solves the collocation equations for any T).
COLLAPSE = 1e-2
#: Two crossings of `periodic_orbit_guess` at the same state: within this fraction
#: of the orbit's size.
RETURN_TOLERANCE = 1e-3
#: The trivial multiplier's largest error before a step counts as a jump.
TRIVIAL_TOLERANCE = 1e-3
#: The largest factor of change of the period in one step.
PERIOD_JUMP = 1.5
#: Accepted points between two adaptations of a collocation mesh (AUTO's IAD).
ADAPT_EVERY = 3


class _CycleTests:
    """What both cycle problems monitor along a branch: multipliers (by decreasing
    modulus), the trivial multiplier's error, stability, the orbit's extremes, and
    the test functions of folds of cycles, period doublings (a real multiplier
    through −1) and Neimark–Sacker points (a complex pair through the unit circle).
    A problem gives `multipliers(X)`, `orbit(X)` and `x0_period(X)`.

    A step is too coarse (and halved) where more than one of these happens in it,
    and where its corrector landed on a different solution: the trivial multiplier
    off by more than `TRIVIAL_TOLERANCE` (from a point where it was not), or the
    period changing by more than a factor `PERIOD_JUMP`."""

    def monitor(self, X, t):
        mu = self.multipliers(X)
        trivial = int(np.argmin(np.abs(mu - 1.0)))
        others = np.delete(mu, trivial)
        is_real = np.abs(others.imag) <= 1e-8 * max(
            1.0, np.max(np.abs(others), initial=0)
        )
        real, pairs = others[is_real], others[~is_real]
        pd = real[np.argmin(np.abs(real + 1.0))].real + 1.0 if real.size else np.nan
        torus = _torus_multiplier(pairs)
        orbit = self.orbit(X)
        x0, period = self.x0_period(X)
        record = {
            "multipliers": mu,
            "trivial_error": float(abs(mu[trivial] - 1.0)),
            "stable": bool(np.all(np.abs(others) < 1.0)),
            "n_below": int(np.sum(real.real < -1.0)),
            "n_outside": int(np.sum(np.abs(pairs) > 1.0)),
            "y_max": orbit.max(0),
            "y_min": orbit.min(0),
            "x0": x0,
            "period": period,
        }
        tests = {"fold": float(t[-1]), "pd": float(pd), "ns": abs(torus) - 1.0}
        return tests, record

    def remember_size(self, X):
        """The size of the orbit X (the largest peak-to-peak of a component), the
        reference of `valid`."""
        self._size = float(np.ptp(self.orbit(X), axis=0).max())

    def valid(self, X):
        """Not collapsed onto an equilibrium (which solves the cycle equations for
        any period): at least `COLLAPSE` times the size of the previous orbit (or
        of the start)."""
        return bool(np.ptp(self.orbit(X), axis=0).max() > COLLAPSE * self._size)

    def crossings(self, a, b):
        names = []
        if a.tests["fold"] * b.tests["fold"] < 0:
            names.append("fold")
        d_pd = b.record["n_below"] - a.record["n_below"]
        if d_pd != 0 and a.tests["pd"] * b.tests["pd"] < 0:
            names.append("pd")
        d_ns = b.record["n_outside"] - a.record["n_outside"]
        if d_ns != 0 and a.tests["ns"] * b.tests["ns"] < 0:
            names.append("ns")
        jumped = (
            b.record["trivial_error"] > TRIVIAL_TOLERANCE >= a.record["trivial_error"]
        ) or not (
            1 / PERIOD_JUMP <= b.record["period"] / a.record["period"] <= PERIOD_JUMP
        )
        return names, jumped or abs(d_pd) > 1 or abs(d_ns) > 2 or len(names) > 1


def _torus_multiplier(pairs: np.ndarray) -> complex:
    """Of complex multipliers, the one (Im > 0) nearest the unit circle."""
    upper = pairs[pairs.imag > 0]
    if not upper.size:
        return complex("nan")
    return complex(upper[np.argmin(np.abs(np.abs(upper) - 1.0))])


def _merged(points: list[Bifurcation]) -> list[Bifurcation]:
    """Special points without duplicates (one point located twice, from both sides
    of a step)."""
    out: list[Bifurcation] = []
    for q in points:
        same = [
            o
            for o in out
            if o.kind == q.kind
            and abs(o.value - q.value) <= 1e-8 * (1 + abs(q.value))
            and abs(o.period - q.period) <= 1e-6 * q.period
        ]
        if not same:
            out.append(q)
    return out


class Cycles(_CycleTests):
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

    def x0_period(self, X):
        return X[:-2].copy(), float(X[-2])

    def accept(self, X):
        n = X.size - 2
        self.x_ref = X[:n].copy()
        p_model = replace_parameters(self.model, {self.param: X[-1]})
        v = field(p_model, self.x_ref)
        self.v_ref = v / np.linalg.norm(v)
        self.remember_size(X)


class CollocationCycles(Collocation, _CycleTests):
    """The collocation problem (`Collocation`) for `follow`, its mesh adapted every
    `ADAPT_EVERY` accepted points."""

    def x0_period(self, X):
        U, T, _ = self.split(X)
        return U[0].copy(), T

    def accept(self, X):
        super().accept(X)
        self.remember_size(X)
        self._accepted = getattr(self, "_accepted", 0) + 1

    def adapt(self, point):
        if self._accepted % ADAPT_EVERY:
            return None
        X, t = self.remeshed(point.X, point.tangent)
        return dataclasses.replace(point, X=X, tangent=t)


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
    simulation: after `transient`, the upward crossings of the mean by `state`
    (default: the component that varies most) over `window`; the period is the mean
    time between a crossing and the next at the same state (for a period-k orbit,
    k crossings later), and x₀ the state at the last crossing.

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
    at_cross = ys[up] + frac[:, None] * (ys[up + 1] - ys[up])
    k = _crossings_per_period(at_cross, np.ptp(ys, axis=0).max())
    x0 = at_cross[-1]
    return x0, float(np.mean(t_cross[k:] - t_cross[:-k]))


def _crossings_per_period(at_cross: np.ndarray, size: float) -> int:
    """The number k of crossings in one period: the smallest k after which every
    crossing comes back to the state of the k-th previous one (a period-k orbit
    crosses k times before it closes), within `RETURN_TOLERANCE` of the orbit's
    size; 1 if none does (e.g. a chaotic window: the mean interval)."""
    for k in range(1, (len(at_cross) - 1) // 2 + 1):
        gap = np.linalg.norm(at_cross[k:] - at_cross[:-k], axis=1).max()
        if gap <= RETURN_TOLERANCE * size:
            return k
    return 1


def cycle_continuation(
    model: Flow,
    param: str,
    span: Span,
    *,
    hopf: Bifurcation | None = None,
    x0: ArrayLike | None = None,
    period: float | None = None,
    doubling: Bifurcation | None = None,
    amplitude: float = 1e-3,
    method: str = "collocation",
    intervals: int = INTERVALS,
    degree: int = DEGREE,
    period_weight: float = 1.0,
    at: ArrayLike = (),
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
    `span`, starting either

    - from a Hopf point (`hopf`, e.g. `branch.special("hopf")[0]`): the first orbit
      is the linear one of size `amplitude` along the critical eigenvector, with
      period 2π/ω; or
    - from a cycle guess `x0`, `period` at the model's value of `param` (e.g. from
      `periodic_orbit_guess`), corrected first, then followed towards `span[1]`; or
    - from a period doubling of a cycle branch (`doubling`, e.g.
      `cycles.special("period_doubling")[0]`; collocation): onto the branch of
      doubled orbits, the orbit traversed twice plus `amplitude` times the
      multiplier −1's Floquet mode (antiperiodic over one period), towards
      `span[1]`.

    `method`: `"collocation"` (default; orthogonal collocation on `intervals` mesh
    intervals of `degree` Gauss points, the mesh adapted along the branch, Floquet
    multipliers by the Fairgrieve–Jepson method: `dynsim.analysis._collocation`) or
    `"shooting"` (single shooting with dynsim's adaptive integrator: `solver`,
    `rtol`, `atol`, `max_steps`; `samples` points per orbit for the extremes).
    `period_weight`: the period's weight in the arclength (collocation), against
    the L² norm of the orbit's change. `tol`: Newton's tolerance. `at`: parameter
    values at which the branch is reported (special points of kind "user").

    Along the branch: period, extremes of every component, Floquet multipliers,
    stability, and located folds of cycles and period doublings.

    **Returns:** a `CycleBranch` (its `trivial_error` column checks the accuracy).

    **Raises:** `ValueError` for a missing or invalid start or method.
    """
    check_parameter_names(model, {param: 0.0})
    if method not in ("collocation", "shooting"):
        raise ValueError(f"method must be 'collocation' or 'shooting', got {method!r}")
    if hopf is not None:
        if hopf.kind != "hopf" or not hopf.frequency > 0:
            raise ValueError(f"{hopf!r} is not a Hopf point with a positive frequency")
    elif doubling is not None:
        if doubling.kind != "period_doubling":
            raise ValueError(f"{doubling!r} is not a period doubling")
        if method != "collocation":
            raise ValueError(
                "switching at a period doubling needs method='collocation'"
            )
    elif x0 is not None and period is not None:
        if not period > 0:
            raise ValueError(f"period must be > 0, got {period}")
    else:
        raise ValueError("give a Hopf point (hopf=...) or a cycle guess (x0=, period=)")
    s = arclength_settings(span, ds, ds_min, ds_max, max_points, tol)
    if method == "shooting":
        problem = Cycles(
            model,
            param,
            solver=solver,
            rtol=rtol,
            atol=atol,
            samples=samples,
            max_steps=max_steps,
        )
        X0, t0 = _shooting_start(model, param, hopf, x0, period, amplitude, span)
        label = f"shooting/{solver}"
    else:
        if intervals < 2 or degree < 1:
            raise ValueError(
                f"collocation needs intervals >= 2 and degree >= 1, got {intervals} "
                f"and {degree}"
            )
        start = doubling if doubling is not None else hopf
        n = start.y.size if start is not None else np.asarray(x0).size
        problem = CollocationCycles(
            model, param, uniform_mesh(intervals, degree), n, period_weight
        )
        if doubling is not None:
            X0, t0 = _doubled_start(
                problem, model, param, doubling, amplitude, span, solver, tol
            )
        else:
            X0, t0 = _collocation_start(
                problem, model, param, hopf, x0, period, amplitude, span, solver
            )
        label = f"collocation/m={degree},N={intervals}"
    if hopf is not None and ds is None:
        s.ds = 10 * amplitude
    problem.accept(X0)
    run = follow_with_progress(
        problem, X0, t0, span, s, progress, f"cycles in {param}", user_values(at)
    )
    info = run_info(model, tuple(model.state_names), solver=label)
    n = np.asarray(X0).size - 2 if method == "shooting" else problem.n
    if not run.points:
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
        record = loc.point.record
        mu = record["multipliers"]
        if loc.name == "fold":
            kind, lam = "cycle_fold", mu[np.argsort(np.abs(mu - 1.0))[1]]
        elif loc.name == "pd":
            kind, lam = "period_doubling", mu[np.argmin(np.abs(mu + 1.0))]
        elif loc.name == "ns":
            kind, lam = "neimark_sacker", _torus_multiplier(mu)
        else:
            kind, lam = "user", complex("nan")
        specials.append(
            Bifurcation(
                kind,
                float(loc.point.X[-1]),
                record["x0"],
                loc.index,
                eigenvalue=complex(lam),
                frequency=2 * np.pi / record["period"],
            )
        )
    result = CycleBranch(
        param=param,
        p=np.array([q.X[-1] for q in pts]),
        period=np.array([q.record["period"] for q in pts]),
        x0=np.array([q.record["x0"] for q in pts]),
        y_max=np.array([q.record["y_max"] for q in pts]),
        y_min=np.array([q.record["y_min"] for q in pts]),
        multipliers=np.array([q.record["multipliers"] for q in pts]),
        trivial_error=np.array([q.record["trivial_error"] for q in pts]),
        stable=np.array([q.record["stable"] for q in pts]),
        points=tuple(_merged(specials)),
        status=run.status,
        message=run.message,
        info=info,
        model=model,
    )
    return checked(result, throw)


def _hopf_orbit(model, param, hopf):
    """The Hopf point's critical eigenvector's real and imaginary parts (q with
    J q = iω q, Re q of unit norm) and its period."""
    p_model = replace_parameters(model, {param: hopf.value})
    q, _ = hopf_vectors(jacobian(p_model, hopf.y), hopf.frequency)
    q = q / np.linalg.norm(np.real(q))
    return np.real(q), np.imag(q), 2 * np.pi / hopf.frequency


def _shooting_start(model, param, hopf, x0, period, amplitude, span):
    if hopf is not None:
        qr, _, T = _hopf_orbit(model, param, hopf)
        X_h = np.concatenate([hopf.y, [T, hopf.value]])
        t0 = np.concatenate([qr, [0.0, 0.0]])
        return X_h + amplitude * t0, t0
    x0 = np.asarray(x0, float)
    X0 = np.concatenate(
        [x0, [period, float(np.asarray(parameter_value(model, param)))]]
    )
    t0 = np.zeros(X0.size)
    t0[-1] = np.sign(span[1] - span[0])
    return X0, t0


def _collocation_start(
    problem, model, param, hopf, x0, period, amplitude, span, solver
):
    if hopf is not None:
        qr, qi, T = _hopf_orbit(model, param, hopf)
        tau = problem.mesh.times[:, None]
        shape = qr * np.cos(2 * np.pi * tau) - qi * np.sin(2 * np.pi * tau)
        at_hopf = problem.join(np.broadcast_to(hopf.y, shape.shape), T, hopf.value)
        t0 = problem.join(shape, 0.0, 0.0)
        t0 /= np.linalg.norm(t0)
        return at_hopf + amplitude * t0, t0
    from .._simulate import simulate

    x0 = np.asarray(x0, float)
    p0 = float(np.asarray(parameter_value(model, param)))

    def sampled(mesh: Mesh) -> np.ndarray:
        ts = mesh.times * period
        traj = simulate(
            model, (0.0, period), y0=x0, solver=solver, rtol=1e-10, atol=1e-12,
            saveat=ts, max_steps=1_000_000,
        )  # fmt: skip
        U = np.array(traj.ys, float).reshape(ts.size, -1)
        U[-1] = U[0]
        return U

    U = sampled(problem.mesh)
    problem.set_mesh(problem.mesh.adapted(U))
    X0 = problem.join(sampled(problem.mesh), period, p0)
    t0 = np.zeros(X0.size)
    t0[-1] = np.sign(span[1] - span[0])
    return X0, t0


def _doubled_start(problem, model, param, doubling, amplitude, span, solver, tol):
    """The doubled orbit next to a period doubling, and the direction onto its
    branch: the orbit at the doubling (simulated from its point over its period,
    corrected by collocation at the doubling's parameter value) traversed twice on
    a mesh of twice the intervals, plus `amplitude` times its flipped mode."""
    from . import _arclength as arc

    model_at = replace_parameters(model, {param: doubling.value})
    X, _ = _collocation_start(
        problem, model_at, param, None, doubling.y, doubling.period, 0.0, span, solver
    )
    fixed_p = np.zeros(X.size)
    fixed_p[-1] = 1.0
    problem.accept(X)
    X, ok, _ = arc.correct(problem, X, fixed_p, arc.Settings(tol=tol))
    if not ok:
        raise ValueError(f"no cycle found at {doubling!r}")
    U, T, p = problem.split(X)
    V = problem.flipped_mode(X)
    mesh = problem.mesh
    twice = Mesh(np.concatenate([mesh.tau / 2, 0.5 + mesh.tau[1:] / 2]), mesh.basis)
    problem.set_mesh(twice)
    U2 = np.concatenate([U, U[1:]])
    X2 = problem.join(U2, 2 * T, p)
    t2 = problem.join(np.concatenate([V, -V[1:]]), 0.0, 0.0)
    t2 /= np.linalg.norm(t2)
    problem.accept(X2 + amplitude * t2)
    return X2 + amplitude * t2, t2


def checked(result: CycleBranch, throw: bool) -> CycleBranch:
    if throw and not result.ok:
        raise RuntimeError(result.message)
    return result
