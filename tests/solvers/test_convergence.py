"""Empirical orders of convergence and agreement with reference solvers."""

import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

import dynsim as ds
from tests.helpers import ExpSin


def _observed_order(solver: str, t1: float, dts: np.ndarray) -> float:
    model = ExpSin(k=3.0)
    errors = []
    for dt in dts:
        traj = ds.simulate(model, (0.0, t1), solver=solver, adaptive=False, dt0=dt)
        errors.append(abs(float(traj.ys[-1, 0] - model.exact(t1))))
    slope, _ = np.polyfit(np.log(dts), np.log(errors), 1)
    return slope


@pytest.mark.parametrize(
    "solver, order, t1, dts",
    [
        # Theoretical orders: Euler 1, Heun 2, Dopri5 5 and Tsit5 5 (Tsitouras 2011).
        # Steps lie in the asymptotic range, with errors well above round-off
        # (fifth order: 1e-4 ... 1e-11 at t1 = 6).
        ("euler", 1, 2.0, 2.0 ** -np.arange(6, 11)),
        ("heun", 2, 2.0, 2.0 ** -np.arange(4, 9)),
        ("dopri5", 5, 6.0, 2.0 ** -np.arange(3, 8)),
        ("tsit5", 5, 6.0, 2.0 ** -np.arange(3, 8)),
    ],
)
def test_fixed_step_order(solver, order, t1, dts):
    assert _observed_order(solver, t1, dts) == pytest.approx(order, abs=0.2)


def test_lorenz_matches_scipy_dop853():
    model = ds.models.Lorenz()
    y0 = np.array([1.0, 1.0, 1.0])

    def f(t, y):
        return np.asarray(model.vector_field(t, jnp.asarray(y), None))

    ref = solve_ivp(f, (0.0, 1.0), y0, method="DOP853", rtol=1e-12, atol=1e-12)
    traj = ds.simulate(model, (0.0, 1.0), y0=y0, rtol=1e-10, atol=1e-10)
    assert np.max(np.abs(np.asarray(traj.ys[-1]) - ref.y[:, -1])) < 1e-7


def test_adaptive_error_tracks_tolerance():
    # Tightening rtol by 100x tightens the achieved error by at least 10x.
    model = ExpSin(k=2.0)
    errs = []
    for tol in (1e-5, 1e-7, 1e-9):
        traj = ds.simulate(model, (0.0, 5.0), rtol=tol, atol=tol)
        errs.append(abs(float(traj.ys[-1, 0] - model.exact(5.0))))
    assert errs[0] > 10 * errs[1] > 100 * errs[2]
    assert errs[2] < 1e-7


def test_implicit_solver_on_stiff_linear_system():
    # y' = A y with eigenvalues -1 and -1e4: exact solution by eigendecomposition.
    A = jnp.array([[-1.0, 0.0], [1.0, -1e4]])
    model = ds.models.LinearSystem(A=A)
    traj = ds.simulate(model, (0.0, 1.0), solver="kvaerno5", rtol=1e-8, atol=1e-10)
    w, V = np.linalg.eig(np.asarray(A))
    exact = (V @ np.diag(np.exp(w * 1.0)) @ np.linalg.solve(V, np.ones(2))).real
    assert np.allclose(np.asarray(traj.ys[-1]), exact, rtol=1e-6, atol=1e-9)
    # Far fewer steps than an explicit solver would need (stability bound ~ 3e-4).
    assert int(traj.stats["num_steps"]) < 200
