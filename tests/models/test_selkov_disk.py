"""Unit-disk Green's functions, the large-D model and the GCEP (docs/models.md §1)."""

import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special
from scipy.optimize import brentq

import dynsim as ds
from dynsim.models import SelkovLargeD, SelkovWellMixed, selkov

THREE = [(0.5, 0.0), (-0.5, 0.0), (0.0, 0.0)]


class TestGreensFunctions:
    def test_neumann_green_pde_and_wall(self):
        xi = jnp.array([0.3, -0.2])
        g = lambda p: float(selkov.neumann_green(jnp.asarray(p), xi))  # noqa: E731
        p, h = np.array([-0.4, 0.5]), 1e-4
        lap = g(p + [h, 0]) + g(p - [h, 0]) + g(p + [0, h]) + g(p - [0, h]) - 4 * g(p)
        assert lap / h**2 == pytest.approx(1 / np.pi, rel=1e-5)  # ΔG₀ = 1/|Ω|
        n = np.array([np.cos(1.0), np.sin(1.0)])
        assert abs((g(n) - g(n * (1 - h))) / h) < 1e-3  # ∂ₙG₀ = 0 on r = 1
        assert g(p) == pytest.approx(float(selkov.neumann_green(xi, jnp.asarray(p))))

    def test_reduced_wave_green_pde_wall_and_regular_part(self):
        xi, theta = np.array([0.3, -0.2]), 1.3 + 0.4j
        g = lambda p: selkov.reduced_wave_green(np.asarray(p), xi, theta)  # noqa: E731
        p, h = np.array([-0.4, 0.5]), 1e-4
        lap = g(p + [h, 0]) + g(p - [h, 0]) + g(p + [0, h]) + g(p - [0, h]) - 4 * g(p)
        assert abs(lap / h**2 - theta**2 * g(p)) < 1e-6
        n = np.array([np.cos(2.0), np.sin(2.0)])
        assert abs((g(n) - g(n * (1 - h))) / h) < 1e-3
        reg = selkov.reduced_wave_regular(xi, theta)
        for d in (1e-5, 1e-6):
            assert abs(g(xi + [d, 0]) + np.log(d) / (2 * np.pi) - reg) < 1e-4 * d**0

    def test_series_summed_by_its_terms_size_and_refused_near_the_wall(self):
        # Points a quarter turn apart: cos(nπ/2) vanishes at every odd order, where
        # a series judged by its terms' values stopped (n = 15, error 1e-7). The
        # reference sums the series term by term to n = 60 (SciPy's kvp and ivp).
        theta, x, xi = 1.0, np.array([0.6, 0.0]), np.array([0.0, 0.6])
        n = np.arange(60)
        terms = (
            np.where(n == 0, 1, 2) * special.kvp(n, theta) / special.ivp(n, theta)
            * special.iv(n, 0.6 * theta) ** 2 * np.cos(n * np.pi / 2)
        )  # fmt: skip
        exact = (special.kv(0, theta * np.hypot(0.6, 0.6)) - terms.sum()) / (2 * np.pi)
        assert abs(selkov.reduced_wave_green(x, xi, theta) - exact) < 1e-14
        matrix = selkov.reduced_wave_matrix([x, xi], theta)
        assert abs(matrix[0, 1] - exact) < 1e-14 and matrix[0, 1] == matrix[1, 0]
        # Near the wall Kₙ'/Iₙ' overflows before the terms fall off: an error
        # naming the cause, never an infinite entry.
        with pytest.raises(ArithmeticError, match="too close to the wall"):
            selkov.reduced_wave_matrix([(0.9, 0.0), (0.1, 0.1)], 0.7)

    def test_reduced_wave_green_of_a_grid_of_points_is_pointwise(self):
        # Points as an (a, b, 2) array: distances over the last axis (a square grid
        # had its axes swapped), every value as the point's own.
        grid = np.random.default_rng(1).uniform(-0.5, 0.5, (3, 3, 2))
        xi, theta = np.array([0.2, -0.1]), 1.3 + 0.4j
        values = selkov.reduced_wave_green(grid, xi, theta)
        each = [[selkov.reduced_wave_green(p, xi, theta) for p in row] for row in grid]
        assert np.allclose(values, np.array(each), rtol=1e-13, atol=0)

    def test_small_theta_limit_is_the_neumann_green_function(self):
        # G_θ = 1/(|Ω|θ²) + G₀ + O(θ²): ties the Bessel series to the closed form.
        theta, xi, p = 1e-3, np.array([0.1, 0.6]), np.array([-0.5, -0.3])
        far = selkov.reduced_wave_green(p, xi, theta).real - 1 / (np.pi * theta**2)
        assert far == pytest.approx(float(selkov.neumann_green(p, xi)), abs=1e-6)
        reg = selkov.reduced_wave_regular(xi, theta).real - 1 / (np.pi * theta**2)
        assert reg == pytest.approx(float(selkov.neumann_regular(xi)), abs=1e-6)


def test_large_d_conserves_total_species_one():
    # |Ω| dŪ/dt + Σ dvⱼ/dt = −|Ω|Ū/τ + Σ F₁: the exchange terms cancel exactly.
    model = SelkovLargeD(centers=THREE, D=2.0, tau=0.7, d1=[0.8, 0.6, 1.0])
    y = jnp.asarray(np.random.default_rng(0).uniform(0.2, 2.0, 7))
    f = model.vector_field(0.0, y, None)
    f1, _ = selkov.kinetics(y[1:4], y[4:], 0.9, 2.0, 0.15)
    lhs = np.pi * f[0] + jnp.sum(f[1:4])
    assert float(lhs) == pytest.approx(float(-np.pi * y[0] / 0.7 + jnp.sum(f1)))


def test_large_d_steady_state_is_an_equilibrium():
    model = SelkovLargeD(centers=THREE, D=1.0, tau=0.55)
    y = model.steady_state()
    assert np.abs(np.asarray(model.vector_field(0.0, y, None))).max() < 1e-13


def test_large_d_tends_to_well_mixed_as_nu_vanishes():
    # Without the Green's-matrix term, D₀b = D₀(d₁Ū − d₂v)/(d₁ + D₀): a well-mixed
    # model with permeabilities scaled by D₀/(d₁ + D₀). The term is O(ν).
    d0, d1, d2 = 3.0, 0.8, 0.2
    scale = d0 / (d1 + d0)
    wm = SelkovWellMixed(n_cells=3, tau=0.6, d1=d1 * scale, d2=d2 * scale)
    errors = []
    for eps in (1e-20, 1e-80):
        nu = -1 / np.log(eps)
        ld = SelkovLargeD(centers=THREE, D=d0 / nu, tau=0.6, eps=eps)
        errors.append(np.abs(np.asarray(ld.steady_state() - wm.steady_state())).max())
    assert errors[1] < errors[0] / 3  # ν shrinks by 4: error shrinks ~ linearly


def _period_and_sync(traj, m=3, t_from=400.0):
    ts = np.asarray(traj.ts)
    v = np.asarray(traj.ys)[:, 1 : m + 1]
    keep = ts >= t_from
    x = v[keep, 0] - v[keep, 0].mean()
    up = np.flatnonzero((x[:-1] < 0) & (x[1:] >= 0))
    t_up = ts[keep][up] - x[up] * np.diff(ts[keep])[up] / (x[up + 1] - x[up])
    corr = np.corrcoef(v[keep].T)
    return np.mean(np.diff(t_up)), corr, np.ptp(v[keep, 0])


def test_large_d_oscillates_in_phase_at_tau_055_and_decays_at_11():
    # Paper §4 (Figs. 6-7): three cells at (±0.5, 0), (0, 0), D = 1.
    osc = ds.simulate(
        SelkovLargeD(centers=THREE, D=1.0, tau=0.55),
        (0.0, 700.0),
        saveat=14001,
        rtol=1e-8,
        atol=1e-10,
    )
    period, corr, amp = _period_and_sync(osc)
    assert 8.2 <= period <= 8.3
    assert amp > 0.1 and corr.min() > 0.95  # nearly in phase
    quiet = ds.simulate(
        SelkovLargeD(centers=THREE, D=1.0, tau=1.1),
        (0.0, 700.0),
        saveat=14001,
        rtol=1e-8,
        atol=1e-10,
    )
    assert _period_and_sync(quiet)[2] < 1e-3


def _exact_centred_cell(
    eps, D=1.0, tau=0.55, d1=0.8, d2=0.2, alpha=0.9, mu=2.0, zeta=0.15
):
    """One cell of radius ε at the centre of the unit disk: the radially symmetric
    steady state and eigenvalue problem solved exactly with Bessel functions (no
    small-ε approximation)."""

    def bulk(theta):
        # g(r) = I₀(θr) + (I₁(θ)/K₁(θ)) K₀(θr): Neumann at r = 1.
        c = special.iv(1, theta) / special.kv(1, theta)
        g = special.iv(0, theta * eps) + c * special.kv(0, theta * eps)
        dg = theta * (special.iv(1, theta * eps) - c * special.kv(1, theta * eps))
        return g, dg

    g, dg = bulk(1 / np.sqrt(D))
    k = 2 * np.pi / tau
    # Unknowns (a, v): εD a g' = d₁ a g − d₂ v;  μ − v + k(d₁ a g − d₂ v) = 0.
    A = np.array([[eps * D * dg - d1 * g, d2], [k * d1 * g, -1 - k * d2]])
    a, v = np.linalg.solve(A, [0.0, -mu])
    w = mu / (alpha + v**2)
    J = np.asarray(selkov.kinetics_jacobian(v, w, alpha, mu, zeta))

    def dispersion(lam):
        gl, dgl = bulk(np.sqrt((1 + tau * lam) / D + 0j))
        K = (lam - J[1, 1]) / (lam**2 - lam * np.trace(J) + np.linalg.det(J))
        return eps * D * dgl * (1 + k * d2 * K) - d1 * gl

    return v, dispersion


def test_gcep_against_exact_centred_cell():
    # The GCEP's steady state and eigenvalue differ from the exact radially symmetric
    # solution by O(ε²): halving ε divides the error by about 4.
    v_err, lam_err = [], []
    for eps in (0.08, 0.04, 0.02):
        model = SelkovLargeD(centers=[(0.0, 0.0)], D=1.0, tau=0.55, eps=eps)
        v_exact, dispersion = _exact_centred_cell(eps)
        v_err.append(abs(selkov.small_eps_steady_state(model).v[0] - v_exact))
        lam = selkov.gcep(model)[0].lam
        exact = lam
        for _ in range(50):  # Newton on the exact dispersion relation
            h = 1e-7
            step = dispersion(exact) / (
                (dispersion(exact + h) - dispersion(exact - h)) / (2 * h)
            )
            exact -= step
            if abs(step) < 1e-14:
                break
        lam_err.append(abs(lam - exact))
    for errs in (v_err, lam_err):
        rates = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
        assert np.all(rates > 1.6), (errs, rates)
    # Measured: v errors ≈ (0.85 … 1.06) ε², eigenvalue errors ≈ 0.35 ε².
    eps2 = np.tile([0.08, 0.04, 0.02], 2) ** 2
    assert np.all(np.array(v_err + lam_err) < 2 * eps2)


def test_gcep_three_cells_in_phase_hopf_between_055_and_11():
    modes = selkov.gcep(SelkovLargeD(centers=THREE, D=1.0, tau=0.55))
    lead = modes[0]
    assert lead.unstable and lead.kind == "in-phase"
    assert 2 * np.pi / lead.lam.imag == pytest.approx(8.25, abs=0.1)
    assert not selkov.gcep(SelkovLargeD(centers=THREE, D=1.0, tau=1.1))[0].unstable
    # Some mode is anti-phase: the outer cells opposite, the centre still.
    anti = [m for m in modes if m.kind == "anti-phase"]
    assert anti and np.abs(anti[0].amplitudes[2]) < 1e-6

    # The leading eigenvalue crosses the axis once in between (a Hopf point).
    def re(tau):
        return selkov.gcep(SelkovLargeD(centers=THREE, D=1.0, tau=tau))[0].lam.real

    tau_h = brentq(re, 0.55, 1.1, xtol=1e-4)
    assert 0.55 < tau_h < 1.1
