"""Continuation of equilibria: located bifurcations against closed forms."""

import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import brentq

import dynsim as ds
from dynsim.analysis import (
    continuation,
    equilibrium,
    switch_branch,
)
from dynsim.models import param
from dynsim.solvers import Status
from tests.helpers import covers


class Cubic(ds.AbstractModel):
    """ẋ = r + x − x³/3."""

    r: float = param(-1.0)
    state_names = ("x",)

    def vector_field(self, t, y, args):
        return self.r + y - y**3 / 3

    def initial_state(self):
        return jnp.array([-2.0])


class Bratu(ds.AbstractModel):
    """u'' + λ eᵘ = 0 on (0, 1), u(0) = u(1) = 0, second-order finite differences on
    n interior nodes, written as the gradient flow u_t = u'' + λ eᵘ."""

    lam: float = param(0.0)
    n: int = 49

    @property
    def state_names(self):
        return tuple(f"u{i}" for i in range(self.n))

    def vector_field(self, t, u, args):
        h = 1.0 / (self.n + 1)
        up = jnp.pad(u, 1)
        return (up[:-2] - 2 * u + up[2:]) / h**2 + self.lam * jnp.exp(u)

    def initial_state(self):
        return jnp.zeros(self.n)


class NeutralSaddle(ds.AbstractModel):
    """ẋ = p x + y, ẏ = x + x²: the origin is a saddle for every p (det J = −1);
    at p = 0 its eigenvalues are ±1, a neutral saddle (trace 0) but no Hopf point."""

    p: float = param(-1.0)
    state_names = ("x", "y")

    def vector_field(self, t, y, args):
        x, v = y
        return jnp.stack([self.p * x + v, x + x**2])

    def initial_state(self):
        return jnp.zeros(2)


def test_brusselator_hopf_closed_form():
    # Brusselator ẋ = a − (b+1)x + x²y, ẏ = bx − x²y: Hopf at b = 1 + a² with
    # ω = a (trace and determinant of the Jacobian at (a, b/a)), supercritical
    # (Kuznetsov 2004, §3.5 example).
    for a in (1.0, 1.5, 2.0):
        model = ds.models.Brusselator(a=a)
        branch = continuation(model, "b", (1.0, 2.0 + a**2), y0=[a, 1.0 / a])
        assert branch.status == Status.SPAN_REACHED
        (hopf,) = branch.points
        assert hopf.kind == "hopf" and hopf.criticality == "supercritical"
        assert hopf.value == pytest.approx(1 + a**2, abs=1e-9)
        assert hopf.frequency == pytest.approx(a, abs=1e-8)
        assert hopf.coefficient < 0
        # Stable before, unstable after.
        assert branch.stable[branch.p < 1 + a**2 - 1e-3].all()
        assert not branch.stable[branch.p > 1 + a**2 + 1e-3].any()


def test_hopf_normal_form_lyapunov_coefficient():
    # ż = (μ + iω)z + (a + ib)|z|²z in Kuznetsov's normalisation ⟨q,q⟩ = ⟨p,q⟩ = 1,
    # q = (1, −i)/√2: x = √2 Re z ⇒ the cubic coefficient is g₂₁ = 4(a + ib) and
    # l₁ = Re g₂₁ / (2ω) = 2a/ω.
    for a, omega in ((-1.0, 1.0), (0.5, 2.0)):
        model = ds.models.HopfNormalForm(a=a, omega=omega, b=0.3)
        (hopf,) = continuation(model, "mu", (-0.5, 0.5), y0=[0.0, 0.0]).points
        assert hopf.value == pytest.approx(0.0, abs=1e-10)
        assert hopf.coefficient == pytest.approx(2 * a / omega, rel=1e-8)
        assert hopf.criticality == ("supercritical" if a < 0 else "subcritical")


def test_lorenz_pitchfork_and_subcritical_hopf():
    # Lorenz (σ, β) = (10, 8/3): the origin has a supercritical pitchfork at ρ = 1
    # (C± = (±√(β(ρ−1)), ±√(β(ρ−1)), ρ−1) exist for ρ > 1, where the origin is
    # unstable); C± lose stability in a subcritical Hopf bifurcation at
    # ρ_H = σ(σ+β+3)/(σ−β−1) = 24.7368… (Strogatz §9.2; Sparrow 1982).
    sigma, beta = 10.0, 8.0 / 3.0
    model = ds.models.Lorenz()
    origin = continuation(model, "rho", (0.5, 30.0), y0=[0.0, 0.0, 0.0])
    (pf,) = origin.points
    assert pf.kind == "pitchfork" and pf.criticality == "supercritical"
    assert pf.value == pytest.approx(1.0, abs=1e-9)
    assert not any(b.kind == "hopf" for b in origin.points)
    c_plus = switch_branch(origin, pf)
    assert c_plus.status == Status.SPAN_REACHED
    x = c_plus.ys[:, 0]
    assert np.allclose(np.abs(x), np.sqrt(beta * (c_plus.p - 1)), atol=1e-8)
    (hopf,) = c_plus.special("hopf")
    rho_h = sigma * (sigma + beta + 3) / (sigma - beta - 1)
    assert hopf.value == pytest.approx(rho_h, abs=1e-8)
    assert hopf.criticality == "subcritical" and hopf.coefficient > 0
    # The other half of the pitchfork mirrors it (Z₂: x, y → −x, −y).
    c_minus = switch_branch(origin, pf, direction=-1)
    assert np.sign(c_minus.ys[-1, 0]) == -np.sign(c_plus.ys[-1, 0])


def test_cubic_fold_pair():
    # ẋ = r + x − x³/3: folds where 1 − x² = 0, x = ±1, r = ∓2/3.
    branch = continuation(Cubic(), "r", (-1.0, 1.0), y0=[-2.0], ds_max=0.05)
    folds = branch.special("fold")
    assert len(folds) == 2 and len(branch.points) == 2
    assert sorted(f.value for f in folds) == pytest.approx([-2 / 3, 2 / 3], abs=1e-9)
    assert sorted(f.y[0] for f in folds) == pytest.approx([-1.0, 1.0], abs=1e-5)
    # The branch turns twice: it ends at r = 1 on the upper sheet.
    assert branch.p[-1] == pytest.approx(1.0) and branch.ys[-1, 0] > 1.5
    # The middle sheet is unstable, the outer ones stable.
    assert np.array_equal(branch.stable, branch.ys[:, 0] ** 2 > 1)


def test_bratu_fold_converges_to_the_continuum_value():
    # The Bratu problem's fold λ* = 3.513830719… (Bratu 1914; e.g. Mohsen, Appl.
    # Math. Model. 2014) is approached at O(h²); Richardson's extrapolation of
    # h = 1/50 and 1/100 recovers it.
    folds = []
    for n in (49, 99):
        branch = continuation(Bratu(n=n), "lam", (0.0, 4.0), ds_max=0.3, max_points=40)
        (fold,) = branch.special("fold")
        folds.append(fold.value)
    assert abs(folds[1] - 3.513830719) < 3e-4
    assert abs((4 * folds[1] - folds[0]) / 3 - 3.513830719) < 2e-6


def test_van_der_pol_hopf_is_degenerate():
    # ẍ − μ(1 − x²)ẋ + x = 0: eigenvalues (μ ± √(μ² − 4))/2 cross at μ = 0 with
    # ω = 1, but at μ = 0 the system is the linear centre (l₁ = 0): degenerate.
    branch = continuation(ds.models.VanDerPol(), "mu", (-0.5, 0.5), y0=[0.0, 0.0])
    (hopf,) = branch.points
    assert hopf.value == pytest.approx(0.0, abs=1e-10)
    assert hopf.frequency == pytest.approx(1.0, abs=1e-9)
    assert hopf.criticality == "degenerate"


def test_neutral_saddle_is_not_a_hopf_point():
    branch = continuation(NeutralSaddle(), "p", (-1.0, 1.0), y0=[0.0, 0.0])
    assert branch.points == () and branch.status == Status.SPAN_REACHED
    assert (branch.n_unstable == 1).all()


def test_wellmixed_selkov_two_hopf_points_match_routh_hurwitz():
    # Three identical cells, well mixed: the in-phase mode's cubic has a₂a₁ = a₀ at
    # two τ (tests/models/test_selkov_wellmixed.py writes the cubic out by hand).
    from tests.models.test_selkov_wellmixed import _in_phase_hurwitz

    roots = [brentq(_in_phase_hurwitz, *b, xtol=1e-14) for b in ((0.2, 0.5), (0.5, 1))]
    branch = continuation(ds.models.SelkovWellMixed(n_cells=3), "tau", (0.1, 2.0))
    hopfs = branch.special("hopf")
    assert len(branch.points) == 2 and len(hopfs) == 2
    assert [h.value for h in hopfs] == pytest.approx(roots, abs=1e-8)


def test_sparse_pde_continuation_uses_arnoldi():
    # The discretised cell-bulk PDE-ODE: sparse Jacobian, k eigenvalues by
    # shift-invert Arnoldi; the Hopf point it locates is where the exact m×m
    # reduction of the same discretisation has Re λ = 0.
    model = ds.models.SelkovCellBulk(
        centers=[(0.5, 0.0), (-0.5, 0.0), (0.0, 0.0)], D=1.0, tau=0.6, n=16, sigma=1 / 8
    )
    branch = continuation(model, "tau", (0.6, 0.9), n_eigenvalues=6, ds_max=0.05)
    assert branch.eigenvalues.shape[1] == 6  # not the 400+ of a dense solve
    (hopf,) = branch.points
    at = ds.models.replace_parameters(model, {"tau": hopf.value})
    lam = ds.models.selkov.discrete_eigenvalues(at)[0].lam
    assert abs(lam.real) < 1e-9 and lam.imag == pytest.approx(hopf.frequency, rel=1e-8)


def test_equilibrium_and_failures():
    eq = equilibrium(ds.models.Brusselator(a=1.0, b=1.5), [1.2, 1.3])
    assert eq.converged and np.allclose(eq.y, [1.0, 1.5]) and eq.stable

    # Failures to converge are statuses: tests/analysis/test_failures.py.
    with pytest.raises(ValueError, match="no parameter .rhoo."):
        continuation(ds.models.Lorenz(), "rhoo", (0.0, 1.0))
    with pytest.raises(ValueError, match="span"):
        continuation(ds.models.Lorenz(), "rho", (1.0, 1.0))
    # Out of points before the end of the span: said so.
    short = continuation(Cubic(), "r", (-1.0, 1.0), y0=[-2.0], max_points=5)
    assert short.status == Status.MAX_POINTS and not short.ok
    assert "max_points" in short.message

    # x' = c − x²: the branch x = √c ends in a fold at c = 0 and comes back on
    # x = −√c; from c = 1 towards c = −1 it never reaches −1 and says so.
    class Fold(ds.AbstractModel):
        c: float = param(1.0)
        state_names = ("x",)

        def vector_field(self, t, y, args):
            return self.c - y**2

        def initial_state(self):
            return jnp.ones(1)

    back = continuation(Fold(), "c", (1.0, -1.0), max_points=50)
    assert back.special("fold") and back.status == Status.TURNED_BACK
    assert not back.ok and "not reached" in back.message


def test_results_round_trip_hdf5_and_draw(tmp_path):
    model = ds.models.Lorenz()
    origin = continuation(model, "rho", (0.5, 30.0), y0=[0.0, 0.0, 0.0])
    c_plus = switch_branch(origin, origin.points[0])
    cycles = ds.analysis.cycle_continuation(
        model, "rho", (20.0, 30.0), hopf=c_plus.special("hopf")[0], max_points=15
    )
    path = tmp_path / "bif.h5"
    for name, r in (("origin", origin), ("c_plus", c_plus), ("cycles", cycles)):
        ds.io.save(r, path, name)
    back = ds.io.load(path, "c_plus")
    assert np.array_equal(back.p, c_plus.p) and np.array_equal(back.ys, c_plus.ys)
    assert np.array_equal(back.eigenvalues, c_plus.eigenvalues)
    (h,) = back.points
    assert h.kind == "hopf" and h.value == c_plus.points[0].value
    assert h.criticality == "subcritical" and h.frequency == c_plus.points[0].frequency
    pf = ds.io.load(path, "origin").points[0]
    assert np.array_equal(pf.direction, origin.points[0].direction)
    cyc = ds.io.load(path, "cycles")
    assert np.array_equal(cyc.multipliers, cycles.multipliers)
    assert cyc.info == cycles.info and cyc.model is None
    # A loaded branch holds no model: switching needs one.
    with pytest.raises(ValueError, match="pass the model"):
        switch_branch(ds.io.load(path, "origin"), pf)
    assert switch_branch(ds.io.load(path, "origin"), pf, model=model).ok
    fig = ds.plot.bifurcation_diagram(origin, c_plus, cycles, state="x")
    for b in (origin, c_plus):  # every computed point is on the diagram
        assert covers(fig, b.p, b.ys[:, 0])
    assert covers(fig, cycles.p, cycles.y_max[:, 0])
    with pytest.raises(ValueError, match="unknown state"):
        ds.plot.bifurcation_diagram(origin, state="w")
