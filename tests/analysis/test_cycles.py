"""Limit cycles by shooting: against the normal forms' closed forms and a
published period doubling."""

import jax.numpy as jnp
import numpy as np
import pytest

import dynsim as ds
from dynsim.analysis import continuation, cycle_continuation, periodic_orbit_guess
from dynsim.models import param


class Bautin(ds.AbstractModel):
    """r' = μr + r³ − r⁵, θ' = ω in Cartesian form: a subcritical Hopf point at μ = 0
    whose unstable cycles turn around in a fold of cycles where μ + 3r² − 5r⁴ = 0 on
    μ + r² − r⁴ = 0, i.e. r² = 1/2, μ = −1/4."""

    mu: float = param(-0.5)
    omega: float = param(1.0)
    state_names = ("x", "y")

    def vector_field(self, t, y, args):
        x, v = y
        r2 = x**2 + v**2
        g = self.mu + r2 - r2**2
        return jnp.stack([g * x - self.omega * v, g * v + self.omega * x])

    def initial_state(self):
        return jnp.zeros(2)


def test_hopf_normal_form_cycles():
    # r' = μr + ar³, θ' = ω + br²: for a < 0 the cycle of μ > 0 has radius √(−μ/a),
    # period 2π/(ω + b r²) and nontrivial Floquet multiplier exp(−2μT) (the
    # derivative of the radial equation at r* is μ + 3a r*² = −2μ).
    a, omega, b = -2.0, 1.5, 0.4
    model = ds.models.HopfNormalForm(a=a, omega=omega, b=b)
    branch = continuation(model, "mu", (-0.5, 0.5), y0=[0.0, 0.0])
    (hopf,) = branch.points
    cycles = cycle_continuation(model, "mu", (-0.5, 0.5), hopf=hopf)
    assert cycles.ok and cycles.p[-1] == pytest.approx(0.5)
    mu = cycles.p
    radius = np.sqrt(-mu / a)
    # Near the Hopf point r(μ) is ill-conditioned (dr/dμ ~ 1/r): compare μ(r).
    r = np.linalg.norm(cycles.x0, axis=1)
    assert np.allclose(-a * r**2, mu, atol=1e-9)
    assert np.allclose(cycles.period, 2 * np.pi / (omega + b * radius**2), rtol=1e-8)
    mult = np.sort(np.abs(cycles.multipliers), axis=1)
    assert np.allclose(mult[:, 0], np.exp(-2 * mu * cycles.period), atol=1e-7)
    assert cycles.trivial_error.max() < 1e-7  # the trivial multiplier is 1
    assert cycles.stable[mu > 1e-3].all()
    assert np.allclose(cycles.amplitude[:, 0], radius, rtol=1e-4)  # 400 samples


def test_fold_of_cycles():
    model = Bautin()
    branch = continuation(model, "mu", (-0.5, 0.5))
    (hopf,) = branch.points
    assert hopf.criticality == "subcritical"
    cycles = cycle_continuation(model, "mu", (-0.5, 0.5), hopf=hopf, ds_max=0.05)
    (fold,) = cycles.special("cycle_fold")
    assert fold.value == pytest.approx(-0.25, abs=1e-7)
    assert np.linalg.norm(fold.y) == pytest.approx(np.sqrt(0.5), abs=1e-6)
    # Small cycles unstable, large ones (beyond the fold) stable.
    r = np.linalg.norm(cycles.x0, axis=1)
    assert not cycles.stable[r < 0.65].any() and cycles.stable[r > 0.75].all()


def test_rossler_period_doubling():
    # Rössler (a, b) = (0.2, 0.2): the period-1 cycle doubles at c ≈ 2.832 (e.g.
    # Barrio et al., Int. J. Bifurc. Chaos 2009, Fig. 1; Kuznetsov's MatCont
    # tutorial). The start comes from a simulation at c = 2.5.
    model = ds.models.Rossler(a=0.2, b=0.2, c=2.5)
    x0, period = periodic_orbit_guess(model, 200.0, 50.0)
    assert period == pytest.approx(5.749, abs=0.01)
    cycles = cycle_continuation(
        model, "c", (2.5, 3.0), x0=x0, period=period, ds_max=0.05
    )
    (pd,) = cycles.points
    assert pd.kind == "period_doubling" and pd.value == pytest.approx(2.832, abs=2e-3)
    assert pd.eigenvalue.real == pytest.approx(-1.0, abs=1e-6)
    assert (
        cycles.stable[cycles.p < 2.8].all() and not cycles.stable[cycles.p > 2.9].any()
    )


def test_bad_starts():
    model = ds.models.HopfNormalForm()
    with pytest.raises(ValueError, match="Hopf point .hopf=.... or a cycle guess"):
        cycle_continuation(model, "mu", (0.0, 1.0))
    with pytest.raises(ValueError, match="period must be > 0"):
        cycle_continuation(model, "mu", (0.0, 1.0), x0=[1.0, 0.0], period=-1.0)
    with pytest.raises(ValueError, match="no sustained oscillation"):
        periodic_orbit_guess(ds.models.HopfNormalForm(mu=-0.5), 50.0, 20.0)
