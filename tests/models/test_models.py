"""Models against their closed forms (docs/models.md §1, §5, §6)."""

import dataclasses
import inspect

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import dynsim as ds
from dynsim import models


def _jacobian(model, y):
    return np.asarray(jax.jacfwd(lambda u: model.vector_field(0.0, u, None))(y))


class TestSelkov:
    def test_steady_state_is_an_equilibrium(self):
        for efflux in (0.0, 0.7):
            m = models.Selkov(efflux=efflux)
            y = m.steady_state()
            assert np.allclose(m.vector_field(0.0, y, None), 0.0, atol=1e-14)
            assert float(y[0]) == pytest.approx(2.0 / (1 + efflux))

    def test_baseline_values_from_models_md(self):
        # docs/models.md §1: with d2 = 0 the isolated cell oscillates iff
        # α < 0.69441, and
        # at α = 0.9 it is quiescent with tr J ≈ -0.102.
        # The closed form gives α_H = −4 + (√5.8 − 1)/0.3 = 0.6943964 exactly; the
        # quoted 0.69441 agrees to its last digit's rounding (±2e-5).
        m = models.Selkov()
        assert float(m.hopf_alpha()) == pytest.approx(-4 + (np.sqrt(5.8) - 1) / 0.3)
        assert float(m.hopf_alpha()) == pytest.approx(0.69441, abs=2e-5)
        tr = np.trace(_jacobian(m, m.steady_state()))
        assert tr == pytest.approx(-0.102, abs=5e-4)

    @pytest.mark.parametrize("efflux", [0.0, 0.5, 2.0])
    def test_trace_vanishes_on_the_hopf_curve(self, efflux):
        for mu in (0.8, 1.5, 2.0):
            m = models.Selkov(mu=mu, efflux=efflux)
            m = dataclasses.replace(m, alpha=m.hopf_alpha())
            J = _jacobian(m, m.steady_state())
            assert np.trace(J) == pytest.approx(0.0, abs=1e-12)
            assert np.linalg.det(J) > 0  # a Hopf point, not a saddle-node

    def test_textbook_hopf_curve(self):
        # ζ = 1: the textbook model's Hopf curve b² = ½(1 − 2a ± √(1 − 8a))
        # (Strogatz §7.3) gives a = α_H(b) on both branches.
        for a in (0.01, 0.05, 0.1):
            for sign in (+1, -1):
                b = np.sqrt(0.5 * (1 - 2 * a + sign * np.sqrt(1 - 8 * a)))
                m = models.Selkov(zeta=1.0)
                assert float(m.hopf_alpha(b)) == pytest.approx(a, abs=1e-12)

    def test_oscillates_below_hopf_and_not_above(self):
        base = models.Selkov(mu=1.5)
        a_h = float(base.hopf_alpha())
        obs = {"amp": ds.observables.Amplitude("v", t_from=1500.0)}
        res = ds.scan(
            base, {"alpha": [a_h - 0.05, a_h + 0.05]}, (0.0, 2000.0), observables=obs
        )
        assert res.values["amp"][0] > 0.1 and res.values["amp"][1] < 1e-4


def test_brusselator_hopf_eigenvalues():
    # At b = 1 + a² the Jacobian at (a, b/a) has eigenvalues ±i a.
    a = 1.7
    m = models.Brusselator(a=a, b=1 + a**2)
    J = _jacobian(m, jnp.array([a, (1 + a**2) / a]))
    ev = np.sort_complex(np.linalg.eigvals(J))
    assert np.allclose(ev, [-1j * a, 1j * a], atol=1e-12)


def test_lorenz_equilibria_and_divergence():
    m = models.Lorenz()
    c = np.sqrt(m.beta * (m.rho - 1))
    for y in ([0.0, 0.0, 0.0], [c, c, m.rho - 1], [-c, -c, m.rho - 1]):
        assert np.allclose(m.vector_field(0.0, jnp.array(y), None), 0.0, atol=1e-12)
    # The trace of the Jacobian is -(σ + 1 + β) everywhere.
    J = _jacobian(m, jnp.array([3.0, -2.0, 10.0]))
    assert np.trace(J) == pytest.approx(-(10 + 1 + 8 / 3))


def test_pitchfork_closed_form():
    # a² = r a0² e^{2rt} / (r + c a0² (e^{2rt} − 1))  (docs/models.md §5)
    r, c, a0, t = 0.8, 2.0, 0.01, 10.0
    m = models.PitchforkNormalForm(r=r, c=c)
    traj = ds.simulate(m, (0.0, t), rtol=1e-11, atol=1e-13)
    e = np.exp(2 * r * t)
    exact = np.sqrt(r * a0**2 * e / (r + c * a0**2 * (e - 1)))
    assert float(traj.ys[-1, 0]) == pytest.approx(exact, rel=1e-8)


def test_henon_jacobian_determinant():
    m = models.Henon(b=0.3)
    J = jax.jacfwd(lambda y: m.step(0, y, None))(jnp.array([0.4, -0.2]))
    assert float(jnp.linalg.det(J)) == pytest.approx(-0.3)


def test_may_harvesting_fold():
    # Near h ≈ 2.60 (k = 10, s = 1, r = 1) the upper equilibrium disappears: below the
    # fold a high-biomass state persists, above it the population collapses.
    low = ds.simulate(models.MayHarvesting(h=2.4), (0.0, 400.0))
    high = ds.simulate(models.MayHarvesting(h=2.8), (0.0, 400.0))
    assert float(low.ys[-1, 0]) > 4.0 and float(high.ys[-1, 0]) < 2.0


def test_linear_system_is_expm():
    A = jnp.array([[0.0, 1.0], [-2.0, -0.3]])
    traj = ds.simulate(models.LinearSystem(A=A), (0.0, 3.0), rtol=1e-11, atol=1e-13)
    exact = jax.scipy.linalg.expm(A * 3.0) @ jnp.ones(2)
    assert np.allclose(np.asarray(traj.ys[-1]), np.asarray(exact), atol=1e-9)


def test_lorenz96_shape_and_check():
    m = models.Lorenz96(n=6)
    assert m.state_names == ("x0", "x1", "x2", "x3", "x4", "x5")
    assert np.allclose(m.vector_field(0.0, jnp.full(6, 8.0), None), 0.0)
    with pytest.raises(ValueError, match="n >= 4"):
        models.Lorenz96(n=3)


class TestParameters:
    def test_parameters_and_nested_names(self):
        m = models.AdditiveNoise(models.Lorenz(), sigma=0.2)
        assert set(models.parameters(m)) == {
            "sigma",
            "base.sigma",
            "base.rho",
            "base.beta",
        }
        m2 = models.replace_parameters(m, {"base.rho": 12.0})
        assert float(m2.base.rho) == 12.0 and float(m.base.rho) == 28.0

    def test_replace_unknown(self):
        with pytest.raises(ValueError, match="no parameter 'r'"):
            models.replace_parameters(models.Lorenz(), {"r": 1.0})

    def test_description_round_trip(self):
        m = models.AdditiveNoise(models.Lorenz96(n=5, forcing=3.0), sigma=0.1)
        back = models.from_description(models.describe(m))
        assert back.base.n == 5 and float(back.base.forcing) == 3.0
        assert float(back.sigma) == pytest.approx(0.1)

    def test_from_description_only_builds_dynsim_models(self):
        with pytest.raises(ValueError, match="unknown model 'os.system'"):
            models.from_description({"type": "os.system", "params": {}})


def _concrete_models():
    return {
        name: cls
        for name in dir(models)
        if inspect.isclass(cls := getattr(models, name))
        and issubclass(cls, ds.AbstractSystem)
        and not inspect.isabstract(cls)
        and not name.startswith("Abstract")
    }


# Only what a model cannot have a default for: what it wraps, its data or sizes.
REQUIRED = {
    "AdditiveNoise": lambda: {"base": models.Lorenz()},
    "DeepLinearGradientFlow": lambda: {"sigma31": np.eye(3), "widths": (3, 4, 3)},
    "LTC": lambda: {"inputs": 2, "units": 4, "key": jr.key(0)},
    "LinearSystem": lambda: {"A": -np.eye(2)},
    "NeuralODE": lambda: {"dim": 2, "key": jr.key(0)},
    "NeuralSDE": lambda: {"dim": 2, "key": jr.key(0)},
    "Ramp": lambda: {"base": models.Lorenz(), "name": "rho"},
    "SelkovCellBulk": lambda: {"centers": [(0.0, 0.0)]},
    "SelkovLargeD": lambda: {"centers": [(0.0, 0.0)]},
    "SelkovWellMixed": lambda: {"n_cells": 1},
}


@pytest.mark.parametrize("name", sorted(_concrete_models()))
def test_every_model_constructs_with_its_defaults(name):
    cls = _concrete_models()[name]
    model = cls(**REQUIRED.get(name, dict)())
    y0 = model.initial_state()
    assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(y0))
    assert model.problem().kind in ds.solvers.KINDS
