"""dynsim.simulate: closed forms, maps, events, dense output, gradients, bad input."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dynsim as ds
from tests.helpers import BlowUp, Decay, ExpSin


def test_saveat_points_match_closed_form():
    model = ExpSin(k=0.7)
    traj = ds.simulate(model, (0.0, 3.0), saveat=31, rtol=1e-10, atol=1e-12)
    assert traj.ts.shape == (31,) and traj.ys.shape == (31, 1)
    assert np.allclose(np.asarray(traj.ys[:, 0]), model.exact(traj.ts), atol=1e-8)
    assert traj.ok and traj.status == ds.Status.SUCCESS
    assert np.array_equal(np.asarray(traj["y"]), np.asarray(traj.ys[:, 0]))


def test_dense_output():
    model = ExpSin(k=1.0)
    traj = ds.simulate(model, (0.0, 2.0), dense=True, rtol=1e-10, atol=1e-12)
    t = jnp.linspace(0.1, 1.9, 7)
    assert np.allclose(np.asarray(traj.evaluate(t)[:, 0]), model.exact(t), atol=1e-7)
    with pytest.raises(ValueError, match="dense"):
        ds.simulate(model, (0.0, 1.0)).evaluate(0.5)


def test_event_stops_at_the_crossing():
    # y' = -y from 1 reaches 0.25 at t = ln 4.
    traj = ds.simulate(
        Decay(),
        (0.0, 10.0),
        event=lambda t, y, args: y[0] - 0.25,
        rtol=1e-10,
        atol=1e-12,
    )
    assert traj.status == ds.Status.EVENT and traj.ok
    assert float(traj.ts[-1]) == pytest.approx(np.log(4.0), abs=1e-8)


def test_henon_map_iterates():
    model = ds.models.Henon()
    # 20 iterates: chaos amplifies round-off differences by ~e^(0.42 n).
    traj = ds.simulate(model, (0, 20), saveat=20)
    x, y = 0.1, 0.1
    expected = []
    for _ in range(20):
        x, y = 1 - 1.4 * x**2 + y, 0.3 * x
        expected.append((x, y))
    assert np.allclose(np.asarray(traj.ys), np.array(expected), rtol=1e-10)
    assert np.array_equal(np.asarray(traj.ts), np.arange(1, 21))


def test_failed_solve_raises_or_returns_status():
    with pytest.raises(Exception, match="maximum number of steps"):
        ds.simulate(Decay(), (0.0, 100.0), max_steps=5)
    traj = ds.simulate(Decay(), (0.0, 100.0), max_steps=5, throw=False)
    assert traj.status == ds.Status.MAX_STEPS and not traj.ok
    assert "max_steps" in traj.message
    # A finite-time blow-up (at t = 1/2) diverges: NONFINITE, not a step budget.
    with pytest.raises(Exception, match="NaN or inf"):
        ds.simulate(BlowUp(a=2.0), (0.0, 1.0))
    traj = ds.simulate(BlowUp(a=2.0), (0.0, 1.0), throw=False)
    assert traj.status == ds.Status.NONFINITE and "diverged" in traj.message


def test_new_parameter_values_do_not_recompile(monkeypatch):
    # New values of k, t1 and the tolerances: same shapes and dtypes, so the solve
    # kernel is traced once and reused.
    import dynsim._simulate as simulate_module

    guarded = eqx.filter_jit(
        eqx.debug.assert_max_traces(simulate_module._solve, max_traces=1)
    )
    monkeypatch.setattr(simulate_module, "_solve_jit", guarded)
    for k, t1, rtol in [(1.0, 1.0, 1e-6), (2.0, 2.0, 1e-6), (0.5, 3.0, 1e-8)]:
        traj = ds.simulate(Decay(k=k), (0.0, t1), saveat=3, rtol=rtol)
        assert np.allclose(traj.ys[-1, 0], np.exp(-k * t1), rtol=1e-4)


def test_gradients_forward_and_reverse():
    # y(1) = e^{-k}: dy/dk = -e^{-k}.
    def end(k, adjoint):
        model = eqx.tree_at(lambda m: m.k, Decay(), k)
        traj = ds.simulate(model, (0.0, 1.0), rtol=1e-10, atol=1e-12, adjoint=adjoint)
        return traj.ys[-1, 0]

    k = jnp.asarray(0.8)
    exact = -np.exp(-0.8)
    assert float(jax.jacfwd(end)(k, None)) == pytest.approx(exact, rel=1e-6)
    assert float(jax.grad(end)(k, "recursive")) == pytest.approx(exact, rel=1e-6)


def test_vmap_over_simulate():
    ks = jnp.linspace(0.5, 1.5, 4)

    def end(k):
        model = eqx.tree_at(lambda m: m.k, Decay(), k)
        return ds.simulate(model, (0.0, 1.0), rtol=1e-10, atol=1e-12).ys[-1, 0]

    assert np.allclose(
        np.asarray(jax.vmap(end)(ks)), np.exp(-np.asarray(ks)), rtol=1e-8
    )


def test_imex_split_model_with_kencarp():
    class Split(ds.AbstractIMEXModel):
        state_names = ("u", "v")

        def nonstiff_part(self, t, y, args):
            return jnp.array([jnp.sin(t), 0.0])

        def stiff_part(self, t, y, args):
            return jnp.array([-1000.0 * (y[0] - y[1]), -y[1]])

        def initial_state(self):
            return jnp.array([1.0, 1.0])

    model = Split()
    kc = ds.simulate(model, (0.0, 2.0), solver="kencarp4", rtol=1e-8, atol=1e-10)
    ref = ds.simulate(model, (0.0, 2.0), solver="kvaerno5", rtol=1e-10, atol=1e-12)
    assert np.allclose(np.asarray(kc.ys[-1]), np.asarray(ref.ys[-1]), atol=1e-6)
    assert kc.ok


class TestBadInput:
    def test_negative_tolerance(self):
        with pytest.raises(ValueError, match="rtol"):
            ds.simulate(Decay(), (0.0, 1.0), rtol=-1e-6)
        with pytest.raises(ValueError, match="atol"):
            ds.simulate(Decay(), (0.0, 1.0), atol=-1.0)

    def test_wrong_y0_shape(self):
        with pytest.raises(ValueError, match=r"y0 has shape \(2,\).*\(3,\)"):
            ds.simulate(ds.models.Lorenz(), (0.0, 1.0), y0=[1.0, 2.0])

    def test_unknown_solver(self):
        with pytest.raises(ValueError, match="unknown solver 'rk45'.*tsit5"):
            ds.simulate(Decay(), (0.0, 1.0), solver="rk45")

    def test_solver_unfit_for_problem(self):
        with pytest.raises(ValueError, match="cannot solve a ODE"):
            ds.simulate(Decay(), (0.0, 1.0), solver="sra")
        with pytest.raises(ValueError, match="cannot adapt"):
            ds.simulate(Decay(), (0.0, 1.0), solver="euler")

    def test_sde_needs_dt0(self):
        model = ds.models.OrnsteinUhlenbeck()
        with pytest.raises(ValueError, match="dt0"):
            ds.simulate(model, (0.0, 1.0))

    def test_bad_t_span_and_saveat(self):
        with pytest.raises(ValueError, match="t_span"):
            ds.simulate(Decay(), (0.0,))
        with pytest.raises(ValueError, match="empty"):
            ds.simulate(Decay(), (1.0, 1.0))
        with pytest.raises(ValueError, match="within t_span"):
            ds.simulate(Decay(), (0.0, 1.0), saveat=[0.5, 2.0])

    def test_not_a_model(self):
        with pytest.raises(TypeError, match="dynsim model"):
            ds.simulate(lambda t, y: -y, (0.0, 1.0))

    def test_bad_max_steps(self):
        with pytest.raises(ValueError, match="max_steps"):
            ds.simulate(Decay(), (0.0, 1.0), max_steps=0)


class SqrtDecay(ds.AbstractModel):
    """y' = −√y from y(0) = 1: y = (1 − t/2)², zero at t = 2; beyond it the vector
    field is NaN (√ of a negative number)."""

    state_names = ("y",)

    def vector_field(self, t, y, args):
        return -jnp.sqrt(y)

    def initial_state(self):
        return jnp.array([1.0])


@pytest.mark.parametrize(
    "solver, options",
    [
        ("tsit5", {}),
        ("dopri8", {}),
        ("kvaerno5", {}),
        ("euler", {"adaptive": False, "dt0": 0.01}),
    ],
)
def test_nan_vector_field_stops_as_nonfinite(solver, options):
    # Adaptive solvers see an infinite error estimate and shrink the step: the solve
    # stops when the steps reach round-off size, far below the step budget.
    traj = ds.simulate(SqrtDecay(), (0.0, 3.0), solver=solver, throw=False, **options)
    assert traj.status == ds.Status.NONFINITE
    assert int(traj.stats["num_steps"]) < 2000


def test_nan_inputs_and_zero_tolerances_are_refused():
    with pytest.raises(ValueError, match=r"y0 is not finite \(entries \[1\]"):
        ds.simulate(ds.models.Lorenz(), (0.0, 1.0), y0=[1.0, np.nan, 0.0])
    with pytest.raises(ValueError, match="Lorenz parameter 'rho' is not finite"):
        ds.simulate(ds.models.Lorenz(rho=np.nan), (0.0, 1.0))
    with pytest.raises(ValueError, match="rtol and atol are both 0"):
        ds.simulate(ds.models.Lorenz(), (0.0, 1.0), rtol=0.0, atol=0.0)


def test_implicit_solver_recovers_from_failed_newton_steps():
    # Robertson's stiff kinetics to t = 1e5 (Hairer & Wanner, Solving ODEs II):
    # Kvaerno5's Newton iterations fail on the large early steps and the controller
    # shrinks them (an infinite error estimate) — that must not end the solve.
    # Reference: SciPy's Radau at rtol 1e-10.
    class Robertson(ds.AbstractModel):
        state_names = ("a", "b", "c")

        def vector_field(self, t, y, args):
            a, b, c = y
            return jnp.stack(
                [
                    -0.04 * a + 1e4 * b * c,
                    0.04 * a - 1e4 * b * c - 3e7 * b**2,
                    3e7 * b**2,
                ]
            )

        def initial_state(self):
            return jnp.array([1.0, 0.0, 0.0])

    from scipy.integrate import solve_ivp

    def f(t, y):
        a, b, c = y
        return [
            -0.04 * a + 1e4 * b * c,
            0.04 * a - 1e4 * b * c - 3e7 * b**2,
            3e7 * b**2,
        ]

    ref = solve_ivp(f, (0, 1e5), [1, 0, 0], method="Radau", rtol=1e-10, atol=1e-14)
    traj = ds.simulate(
        Robertson(), (0.0, 1e5), solver="kvaerno5", rtol=1e-8, atol=1e-12
    )
    assert traj.status == ds.Status.SUCCESS
    assert int(traj.stats["num_rejected_steps"]) > 0
    assert np.allclose(traj.ys[-1], ref.y[:, -1], rtol=1e-5, atol=1e-10)
