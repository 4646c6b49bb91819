"""Limit cycles by collocation (the default) and shooting: against the normal forms'
closed forms, each other, a published period doubling, and the period's growth
towards the Lorenz homoclinic orbit."""

import jax.numpy as jnp
import numpy as np
import pytest

import dynsim as ds
from dynsim.analysis import (
    Bifurcation,
    continuation,
    cycle_continuation,
    periodic_orbit_guess,
)
from dynsim.models import param
from tests.helpers import Bautin


@pytest.mark.parametrize("method", ["collocation", "shooting"])
def test_hopf_normal_form_cycles(method):
    # r' = μr + ar³, θ' = ω + br²: for a < 0 the cycle of μ > 0 has radius √(−μ/a),
    # period 2π/(ω + b r²) and nontrivial Floquet multiplier exp(−2μT) (the
    # derivative of the radial equation at r* is μ + 3a r*² = −2μ).
    a, omega, b = -2.0, 1.5, 0.4
    model = ds.models.HopfNormalForm(a=a, omega=omega, b=b)
    branch = continuation(model, "mu", (-0.5, 0.5), y0=[0.0, 0.0])
    (hopf,) = branch.points
    cycles = cycle_continuation(model, "mu", (-0.5, 0.5), hopf=hopf, method=method)
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


@pytest.mark.parametrize(
    "model, name, guess",
    [
        (ds.models.VanDerPol(mu=5.0), "mu", (100.0, 40.0)),
        (ds.models.Brusselator(a=1.0, b=3.0), "b", (100.0, 40.0)),
        (ds.models.Rossler(a=0.2, b=0.2, c=2.5), "c", (200.0, 50.0)),
    ],
    ids=["vanderpol_mu5", "brusselator", "rossler"],
)
def test_collocation_agrees_with_shooting(model, name, guess):
    # Two independent discretisations of the same cycle (the first point of each
    # branch is the start corrected at the model's own parameter value):
    # collocation on an adapted mesh, multipliers by Fairgrieve–Jepson, against
    # shooting with the adaptive integrator at rtol 1e-10 (monodromy by forward
    # mode). Van der Pol at μ = 5 is a relaxation oscillation (fast jumps).
    x0, period = periodic_orbit_guess(model, *guess)
    runs = {
        method: cycle_continuation(
            model,
            name,
            (0.0, 10.0),
            x0=x0,
            period=period,
            method=method,
            intervals=80,
            max_points=2,
            progress=False,
        )
        for method in ("collocation", "shooting")
    }
    col, sho = runs["collocation"], runs["shooting"]
    assert col.period[0] == pytest.approx(sho.period[0], abs=1e-6)
    assert np.allclose(col.multipliers[0], sho.multipliers[0], atol=1e-6)
    assert col.trivial_error[0] < 1e-8
    # The phase differs (each its own phase condition); the orbit's extremes do not
    # (shooting reads them off 400 equally spaced samples, a little short of the
    # sharp peaks of a relaxation oscillation).
    assert np.allclose(col.y_max[0], sho.y_max[0], rtol=3e-3)


def test_lorenz_cycles_to_the_homoclinic_orbit():
    # The cycles born at the subcritical Hopf point ρ = 24.7368 of Lorenz (σ = 10,
    # β = 8/3) shrink in ρ towards the homoclinic explosion at ρ_h ≈ 13.9266
    # (Sparrow, The Lorenz Equations, 1982), their period growing without bound.
    # Near a homoclinic orbit to a saddle the period grows like −ln(ρ − ρ_h)/λ with
    # λ the saddle's leading eigenvalue, the one nearest the imaginary axis
    # (Gaspard 1990; Kuznetsov, Elements of Applied Bifurcation Theory, §6.2): at
    # the origin of Lorenz −β = −8/3 (the others −18.1 and +7.13). Followed down to
    # ρ − ρ_h < 1e-6 with the trivial multiplier within 1e-6 of 1 at every point.
    model = ds.models.Lorenz()
    c = np.sqrt(8 / 3 * 0.5)
    branch = continuation(model, "rho", (1.5, 30.0), y0=[c, c, 0.5], progress=False)
    (hopf,) = branch.special("hopf")
    assert hopf.value == pytest.approx(470 / 19)  # σ(σ + β + 3)/(σ − β − 1)
    rho_h = 13.92655741  # Sparrow: 13.926; further digits: where this branch stops
    cycles = cycle_continuation(
        model,
        "rho",
        (rho_h + 9e-7, 30.0),
        hopf=hopf,
        intervals=200,
        max_points=400,
        progress=False,
    )
    assert cycles.ok and cycles.p[-1] - rho_h < 1e-6
    # The arclength measures the orbit's change by its L² norm (not by its mesh
    # values one by one) and the period by its own weight: the whole family in
    # fewer points than AUTO's ~120 (shooting with equal weights needed ~2 000).
    assert cycles.p.size < 120
    assert cycles.trivial_error.max() < 1e-6
    assert np.all(np.diff(cycles.p) < 0)  # the branch turns nowhere
    near = cycles.p - rho_h < 1e-3
    slope = np.polyfit(np.log(cycles.p[near] - rho_h), cycles.period[near], 1)[0]
    assert slope == pytest.approx(-3 / 8, rel=0.01)


def test_bad_method():
    model = ds.models.HopfNormalForm()
    with pytest.raises(ValueError, match="method must be 'collocation' or 'shooting'"):
        cycle_continuation(
            model, "mu", (0.0, 1.0), x0=[1.0, 0.0], period=6.0, method="x"
        )
    with pytest.raises(ValueError, match="intervals >= 2"):
        cycle_continuation(
            model, "mu", (0.0, 1.0), x0=[1.0, 0.0], period=6.0, intervals=1
        )


class TwoOscillators(ds.AbstractModel):
    """Two uncoupled oscillators, zₖ' = (aₖ + iωₖ) zₖ − |zₖ|² zₖ with a₁ = 1, a₂ = μ:
    the cycle |z₁| = 1, z₂ = 0 (period 2π/ω₁) has the multipliers e^{−2T} (radial)
    and e^{(μ ± iω₂)T} (from z₂): a Neimark–Sacker point at μ = 0 exactly, where the
    pair crosses the unit circle at the angle ω₂T (closed form)."""

    mu: float = param(-0.5)
    omega1: float = param(1.0)
    omega2: float = param(2.3)
    state_names = ("x1", "y1", "x2", "y2")

    def vector_field(self, t, y, args):
        x1, y1, x2, y2 = y
        g1 = 1.0 - (x1**2 + y1**2)
        g2 = self.mu - (x2**2 + y2**2)
        return jnp.stack(
            [
                g1 * x1 - self.omega1 * y1,
                g1 * y1 + self.omega1 * x1,
                g2 * x2 - self.omega2 * y2,
                g2 * y2 + self.omega2 * x2,
            ]
        )

    def initial_state(self):
        return jnp.array([1.0, 0.0, 0.0, 0.0])


def test_neimark_sacker_and_user_points():
    model = TwoOscillators()
    cycles = cycle_continuation(
        model,
        "mu",
        (-0.5, 0.5),
        x0=[1.0, 0.0, 0.0, 0.0],
        period=2 * np.pi,
        at=[-0.25, 0.25],
        progress=False,
    )
    assert cycles.ok
    (ns,) = cycles.special("neimark_sacker")
    assert ns.value == pytest.approx(0.0, abs=1e-9)
    assert ns.period == pytest.approx(2 * np.pi, rel=1e-9)
    angle = (2.3 * 2 * np.pi) % (2 * np.pi)
    assert ns.eigenvalue == pytest.approx(np.exp(1j * angle), abs=1e-7)
    assert (
        cycles.stable[cycles.p < -1e-6].all()
        and not cycles.stable[cycles.p > 1e-6].any()
    )
    users = cycles.special("user")
    assert [u.value for u in users] == pytest.approx([-0.25, 0.25], abs=1e-12)
    assert ns.label == "NS" and users[0].label == "UZ"


def test_switching_at_period_doubling():
    # Rössler (a, b) = (0.2, 0.2): the period-1 cycle doubles at c ≈ 2.832 and the
    # doubled one again at c ≈ 3.838 (the first steps of the cascade to chaos:
    # Barrio et al., Int. J. Bifurc. Chaos 2009, Fig. 1; Kuznetsov's MatCont
    # tutorial). Switching onto the doubled branch at the first doubling, it
    # starts at twice the period and finds the second.
    model = ds.models.Rossler(a=0.2, b=0.2, c=2.5)
    x0, period = periodic_orbit_guess(model, 200.0, 50.0)
    kw = dict(ds_max=0.05, progress=False)
    single = cycle_continuation(model, "c", (2.5, 3.0), x0=x0, period=period, **kw)
    (pd,) = single.special("period_doubling")
    doubled = cycle_continuation(
        model, "c", (2.0, 4.0), doubling=pd, amplitude=1e-2, **kw
    )
    assert doubled.ok and doubled.p[0] == pytest.approx(pd.value, abs=1e-3)
    assert doubled.period[0] == pytest.approx(2 * pd.period, rel=1e-3)
    assert doubled.trivial_error.max() < 1e-6
    (pd2,) = doubled.special("period_doubling")
    assert pd2.value == pytest.approx(3.838, abs=2e-3)
    # A simulation at c = 3 settles on the doubled orbit: its guess is the true
    # period (two crossings of the mean per period), as the branch has it.
    guess = periodic_orbit_guess(ds.models.Rossler(a=0.2, b=0.2, c=3.0), 200.0, 50.0)
    on_branch = doubled.period[np.argmin(np.abs(doubled.p - 3.0))]
    assert guess[1] == pytest.approx(on_branch, rel=1e-3)
    fold = Bifurcation("cycle_fold", 2.9, x0, 0)
    with pytest.raises(ValueError, match="not a period doubling"):
        cycle_continuation(model, "c", (2.0, 4.0), doubling=fold)


class SCycles(ds.AbstractModel):
    """r' = r(μ − h(r²)), θ' = ω with h(s) = s³ − 3s² + 2.5s: cycles of radius r where
    μ = h(r²), an S-shaped branch with folds where h'(s) = 0, s = 1 ± √(1/6), at
    μ = h(s) (closed form)."""

    mu: float = param(-0.5)
    omega: float = param(1.0)
    state_names = ("x", "y")

    def vector_field(self, t, y, args):
        x, v = y
        s = x**2 + v**2
        g = self.mu - (s**3 - 3 * s**2 + 2.5 * s)
        return jnp.stack([g * x - self.omega * v, g * v + self.omega * x])

    def initial_state(self):
        return jnp.zeros(2)


@pytest.mark.parametrize("ds_max", [None, 1.0])
def test_large_steps_do_not_jump_the_folds_of_an_s(ds_max):
    # With a step bound as large as the S itself a corrector that lands far from
    # its prediction has jumped across it: the step is halved, and both folds are
    # found (they were missed before with ds_max = 1).
    model = SCycles()
    (hopf,) = continuation(model, "mu", (-0.5, 2.0), progress=False).points
    cycles = cycle_continuation(
        model, "mu", (-0.5, 2.0), hopf=hopf, ds_max=ds_max, progress=False
    )
    s = 1 + np.array([-1, 1]) * np.sqrt(1 / 6)
    folds = cycles.special("cycle_fold")
    assert [f.value for f in folds] == pytest.approx(
        s**3 - 3 * s**2 + 2.5 * s, abs=1e-8
    )
    assert [np.linalg.norm(f.y) ** 2 for f in folds] == pytest.approx(s, abs=1e-6)


class _DenseCellBulk(ds.models.SelkovCellBulk):
    """The same discretisation with its sparse Jacobian withheld (JAX's dense one)."""

    def sparse_jacobian(self, y, args=None):
        return None


def test_sparse_pde_cycles_agree_with_dense():
    # Cycles of the discretised cell-bulk PDE-ODE (three cells, 79 states) from its
    # Hopf point in τ: collocation assembled from the model's sparse Jacobian at
    # every Gauss point gives the same orbits and multipliers as from JAX's dense
    # blocks.
    kw = dict(
        centers=[(0.5, 0.0), (-0.5, 0.0), (0.0, 0.0)],
        D=1.0,
        tau=0.6,
        n=6,
        ntheta=12,
        kernel="nodal",
    )
    model = ds.models.SelkovCellBulk(**kw)
    branch = continuation(model, "tau", (0.6, 0.9), n_eigenvalues=6, progress=False)
    (hopf,) = branch.special("hopf")
    runs = [
        cycle_continuation(
            m, "tau", (0.3, 0.9), hopf=hopf, intervals=8, max_points=3, progress=False
        )
        for m in (model, _DenseCellBulk(**kw))
    ]
    assert runs[0].p.size == 3 and runs[0].trivial_error.max() < 1e-9
    assert np.allclose(runs[0].p, runs[1].p, atol=1e-10)
    assert np.allclose(runs[0].period, runs[1].period, rtol=1e-10)
    assert np.allclose(
        runs[0].multipliers[:, :4], runs[1].multipliers[:, :4], atol=1e-6
    )


def test_jumps_are_coarse_steps_and_duplicates_merge():
    # A step whose trivial multiplier went bad (from a point where it was fine), or
    # whose period jumped by more than 1.5×, is too coarse: the engine halves it
    # instead of recording a point of another solution. One point located twice
    # is kept once.
    from dynsim.analysis._arclength import Point
    from dynsim.analysis._cycle_problems import Cycles, merged

    def point(trivial, period, fold=1.0):
        record = {"trivial_error": trivial, "period": period, "n_below": 0}
        record["n_outside"] = 0
        return Point(np.zeros(3), np.zeros(3), {"fold": fold, "pd": 1.0, "ns": -1.0},
                     record)  # fmt: skip

    crossings = Cycles.crossings
    assert crossings(None, point(1e-10, 6.0), point(1e-9, 6.1)) == ([], False)
    assert crossings(None, point(1e-10, 6.0), point(1e-2, 6.1))[1]
    assert crossings(None, point(1e-10, 6.0), point(1e-9, 12.0))[1]
    assert crossings(None, point(1e-2, 6.0), point(1e-2, 6.1)) == ([], False)
    fold = Bifurcation("cycle_fold", 0.25, np.ones(2), 3, frequency=1.0)
    again = Bifurcation("cycle_fold", 0.25 + 1e-12, np.ones(2), 4, frequency=1.0)
    other = Bifurcation("cycle_fold", 0.5, np.ones(2), 9, frequency=1.0)
    assert merged([fold, again, other]) == [fold, other]
