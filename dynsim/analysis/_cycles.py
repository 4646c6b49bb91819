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

import numpy as np
from jaxtyping import ArrayLike

from dynsim.models import check_parameter_names, replace_parameters
from dynsim.solvers import Status

from .._custom_types import Flow, Span, State
from .._provenance import run_info
from ._branch import Bifurcation, CycleBranch
from ._collocation import DEGREE, INTERVALS, Mesh, uniform_mesh
from ._continuation import arclength_settings, follow_with_progress, user_values
from ._cycle_problems import CollocationCycles, Cycles, merged, torus_multiplier
from ._linalg import jacobian, parameter_value
from ._normal_form import hopf_vectors

#: Two crossings of `periodic_orbit_guess` at the same state: within this fraction
#: of the orbit's size.
RETURN_TOLERANCE = 1e-3


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
            kind, lam = "neimark_sacker", torus_multiplier(mu)
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
        points=tuple(merged(specials)),
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
