"""The well-mixed Sel'kov cell–bulk model against docs/models.md §1's closed forms."""

import jax
import numpy as np
import pytest
from scipy.optimize import brentq

import dynsim as ds
from dynsim.models import Selkov, SelkovWellMixed


def _jac(model, y):
    return np.asarray(jax.jacfwd(lambda u: model.vector_field(0.0, u, None))(y))


def _max_re(model):
    return np.linalg.eigvals(_jac(model, model.steady_state())).real.max()


def test_identical_cells_steady_state_closed_form():
    m, tau, d1, d2, area, mu, alpha = 4, 0.7, 0.8, 0.2, np.pi, 2.0, 0.9
    model = SelkovWellMixed(n_cells=m, tau=tau)
    chi = 1 + (2 * np.pi * d2 / tau) * area / (area + 2 * np.pi * m * d1)
    v = mu / chi
    expected = np.concatenate(
        [
            [2 * np.pi * m * d2 * v / (area + 2 * np.pi * m * d1)],
            np.full(m, v),
            np.full(m, mu / (alpha + v**2)),
        ]
    )
    y = model.steady_state()
    assert np.allclose(np.asarray(y), expected, rtol=1e-13)
    assert np.allclose(model.vector_field(0.0, y, None), 0.0, atol=1e-13)


def test_heterogeneous_cells_steady_state_is_an_equilibrium():
    model = SelkovWellMixed(
        n_cells=3,
        tau=0.5,
        d1=[0.8, 0.5, 1.0],
        alpha=[0.9, 0.8, 1.0],
        mu=[2.0, 1.8, 2.2],
    )
    y = model.steady_state()
    assert np.allclose(model.vector_field(0.0, y, None), 0.0, atol=1e-13)


def _in_phase_hurwitz(
    tau, m=3, d1=0.8, d2=0.2, area=np.pi, alpha=0.9, mu=2.0, zeta=0.15
):
    """a₂a₁ − a₀ of the in-phase mode's cubic λ³ + a₂λ² + a₁λ + a₀, written out
    from the equations (all cells equal: Ū, v, w), independent of the model code."""
    chi = 1 + (2 * np.pi * d2 / tau) * area / (area + 2 * np.pi * m * d1)
    v = mu / chi
    w = mu / (alpha + v**2)
    k = 2 * np.pi / tau
    J = np.array(
        [
            [-1 / tau - k * m * d1 / area, k * m * d2 / area, 0.0],
            [k * d1, 2 * w * v - 1 - k * d2, alpha + v**2],
            [0.0, -zeta * 2 * w * v, -zeta * (alpha + v**2)],
        ]
    )
    _, a2, a1, a0 = np.poly(J).real
    return a2 * a1 - a0


def test_in_phase_hopf_points_match_routh_hurwitz():
    taus = np.linspace(0.05, 3.0, 120)
    full = np.array([_max_re(SelkovWellMixed(n_cells=3, tau=t)) for t in taus])
    rh = np.array([_in_phase_hurwitz(t) for t in taus])
    full_roots = [
        brentq(
            lambda t: _max_re(SelkovWellMixed(n_cells=3, tau=t)),
            taus[i],
            taus[i + 1],
            xtol=1e-12,
        )
        for i in np.flatnonzero(np.diff(np.sign(full)))
    ]
    rh_roots = [
        brentq(_in_phase_hurwitz, taus[i], taus[i + 1], xtol=1e-12)
        for i in np.flatnonzero(np.diff(np.sign(rh)))
    ]
    assert len(full_roots) == 2  # one oscillation window in τ (a lobe)
    assert np.allclose(full_roots, rh_roots, atol=1e-8)
    # Unstable between the Hopf points: the Hurwitz determinant is negative there.
    assert _in_phase_hurwitz(np.mean(rh_roots)) < 0


def test_quorum_sensing_needs_enough_cells():
    # One or two cells never oscillate at the baseline set; three do (some τ).
    taus = np.linspace(0.05, 3.0, 60)

    def unstable(m):
        return max(_max_re(SelkovWellMixed(n_cells=m, tau=t)) for t in taus) > 0

    assert not unstable(1) and not unstable(2) and unstable(3)


def test_dilute_bulk_reduces_to_single_cell_with_efflux():
    # |Ω| → ∞: Ū → 0 and each cell only loses v at rate 2πd₂/τ: the Hopf point in α
    # is the single-cell-with-efflux closed form (docs/models.md §1).
    tau, mu = 2.0, 1.5
    single = Selkov(mu=mu, efflux=2 * np.pi * 0.2 / tau)

    def max_re(alpha):
        return _max_re(
            SelkovWellMixed(n_cells=1, tau=tau, area=1e12, alpha=alpha, mu=mu)
        )

    alpha_h = brentq(max_re, 0.05, 1.5, xtol=1e-13)
    assert alpha_h == pytest.approx(float(single.hopf_alpha()), abs=1e-8)


def test_oscillates_inside_the_window_only():
    obs = {"amp": ds.observables.Amplitude("v0", t_from=800.0)}
    res = ds.scan(
        SelkovWellMixed(n_cells=3),
        {"tau": [0.2, 0.5, 1.0]},
        (0.0, 1000.0),
        observables=obs,
    )
    amp = res.values["amp"]
    assert amp[1] > 0.05 and amp[0] < 1e-4 and amp[2] < 1e-4
