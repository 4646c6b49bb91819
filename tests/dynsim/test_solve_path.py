"""Every solve of dynsim goes through one path: the model presents itself as a
`solvers.Problem` (`model.problem()`), and `solvers.integrate` solves it — or, for a
scan's batch of small ODEs, the ensemble executor `solvers.integrate_ensemble` with
the same problems and options.

Spies replace `dynsim.solvers.integrate` and `integrate_ensemble` and record the
problems they are given.
Each entry point uses a model class defined here, so that nothing compiled earlier
in the session is reused (a cached kernel would not call `integrate` again).
"""

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import dynsim as ds
from dynsim import solvers
from dynsim.analysis import continuation, cycle_continuation, lyapunov_spectrum
from dynsim.models import LTC, HopfNormalForm, Lorenz, NeuralODE


@pytest.fixture
def calls(monkeypatch):
    seen: list[solvers.Problem] = []
    real = solvers.integrate

    def spy(problem, *args, **kwargs):
        assert isinstance(problem, solvers.Problem)
        assert isinstance(kwargs["options"], solvers.SolveOptions)
        seen.append(problem)
        return real(problem, *args, **kwargs)

    real_ensemble = solvers.integrate_ensemble

    def ensemble_spy(setup, *args, **kwargs):
        assert isinstance(kwargs["options"], solvers.SolveOptions)

        def watched(inputs):
            problem, y0 = setup(inputs)
            assert isinstance(problem, solvers.Problem)
            seen.append(problem)
            return problem, y0

        return real_ensemble(watched, *args, **kwargs)

    monkeypatch.setattr(solvers, "integrate", spy)
    monkeypatch.setattr(solvers, "integrate_ensemble", ensemble_spy)
    return seen


class SpyLorenz(Lorenz):
    pass


class SpyHopf(HopfNormalForm):
    pass


class SpyNeuralODE(NeuralODE):
    pass


class SpyLTC(LTC):
    pass


def test_simulate(calls):
    traj = ds.simulate(SpyLorenz(), (0.0, 0.5), saveat=5)
    assert traj.ok and [p.kind for p in calls] == ["ode"]


@pytest.mark.parametrize("executor", ["ensemble", "vmap"])
def test_scan(calls, executor):
    class Spy(Lorenz):  # a class of its own per case: no cached kernel
        pass

    r = ds.scan(Spy(), {"rho": [10.0, 20.0]}, (0.0, 0.5), saveat=3, executor=executor)
    assert r.ok and calls and {p.kind for p in calls} == {"ode"}


def test_lyapunov(calls):
    r = lyapunov_spectrum(SpyLorenz(), t_transient=1.0, t_total=5.0, dt_renorm=0.5)
    assert r.ok and calls and {p.kind for p in calls} == {"ode"}


def test_cycles(calls):
    model = SpyHopf(a=-1.0, omega=1.0)
    branch = continuation(model, "mu", (-0.2, 0.2), y0=[0.0, 0.0], progress=False)
    assert not calls  # equilibria need no solve
    # Shooting integrates the flow through the one solve path; collocation solves
    # no ODE from a Hopf point (its equations are algebraic).
    cycles = cycle_continuation(
        model,
        "mu",
        (-0.2, 0.2),
        hopf=branch.points[0],
        max_points=4,
        progress=False,
        method="shooting",
    )
    assert cycles.p.size and calls and {p.kind for p in calls} == {"ode"}


def test_neural_ode_and_fit(calls):
    model = SpyNeuralODE(2, width=4, key=jr.key(0))
    ts = jnp.linspace(0.0, 1.0, 5)
    assert model.predict(ts, jnp.ones(2)).shape == (5, 2) and calls
    calls.clear()
    data = (np.asarray(ts), np.ones((3, 2)), np.ones((3, 5, 2)))
    res = ds.fit(model, data, steps=2, progress=False)
    assert res.ok and calls and {p.kind for p in calls} == {"ode"}


def test_ltc(calls):
    model = SpyLTC(2, 3, integration="ode", key=jr.key(0))
    states = model.states(jnp.linspace(0.0, 1.0, 4), jnp.ones((4, 2)))
    assert states.shape == (4, 3) and calls and {p.kind for p in calls} == {"ode"}
