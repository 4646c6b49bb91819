"""The discretised Sel'kov cell–bulk PDE–ODE (docs/models.md §1; Iyaniwura &
Ward 2021)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import simpson

import dynsim as ds
from dynsim.models import SelkovCellBulk, SelkovLargeD, selkov
from tests.models.test_selkov_disk import THREE, _exact_centred_cell, _period_and_sync


def _dense_eigenvalues(model):
    y = model.steady_state()
    J = jax.jacfwd(lambda u: model.vector_field(0.0, u, None))(y)
    ev = np.linalg.eigvals(np.asarray(J))
    return ev[np.argsort(-ev.real)]


@pytest.mark.parametrize(
    "model",
    [
        SelkovCellBulk(centers=THREE, D=5.0, tau=0.55, n=6, ntheta=12, kernel="nodal"),
        SelkovCellBulk(
            centers=[(0.25, 0.25), (-0.5, 0.0)],
            D=2.0,
            tau=0.8,
            domain="square",
            n=16,
            length=2.0,
            kernel="gaussian",
            sigma=0.2,
        ),
    ],
)
def test_steady_state_mass_identity_and_exact_eigenvalue_reduction(model):
    y = model.steady_state()
    f = model.vector_field(0.0, y, None)
    assert float(jnp.abs(f).max()) < 1e-9 * float(jnp.abs(y).max())
    # d/dt (∫U + Σv) = −∫U/τ + Σ F₁: the exchange conserves, exactly.
    z = y * jnp.linspace(0.9, 1.1, y.size)
    dm = jax.jvp(model.total_mass, (z,), (model.vector_field(0.0, z, None),))[1]
    u, v, w = model._split(z)
    f1, _ = selkov.kinetics(v, w, 0.9, 2.0, 0.15)
    assert float(dm) == pytest.approx(
        float(-model.grid.integrate(u) / model.tau + jnp.sum(f1)), rel=1e-10
    )
    # The m×m reduction finds the dense Jacobian's leading eigenvalues exactly.
    dense = _dense_eigenvalues(model)
    lead = selkov.discrete_eigenvalues(model)[0].lam
    assert np.min(np.abs(dense - lead)) < 1e-8
    assert lead.real == pytest.approx(dense[0].real, abs=1e-8)


def test_mass_balance_along_a_trajectory():
    model = SelkovCellBulk(centers=THREE, D=1.0, tau=0.55, n=48)
    traj = ds.simulate(
        model, (0.0, 20.0), solver="kencarp4", saveat=2001, rtol=1e-8, atol=1e-10
    )
    ys = np.asarray(traj.ys)
    mass = np.array([float(model.total_mass(jnp.asarray(y))) for y in ys[::1]])
    size = model.grid.size
    u_int = ys[:, :size] @ model.grid.areas
    f1, _ = selkov.kinetics(ys[:, size : size + 3], ys[:, size + 3 :], 0.9, 2.0, 0.15)
    rhs = -u_int / 0.55 + np.asarray(f1).sum(1)
    # Simpson on the saved points against the change of mass (≈ 5): to ~1e-6
    # relative, the size of the solver tolerance and the quadrature error.
    assert abs(mass[-1] - mass[0] - simpson(rhs, x=np.asarray(traj.ts))) < 5e-6


def test_positive_fac_is_enforced():
    # Nodal point sources on a fine grid at D = 1: r_eff ≈ 0.14 h < ε e^{-D/d1}.
    with pytest.raises(ValueError, match="fac = 1 \\+ \\(d1/D\\) log\\(r_eff/eps\\)"):
        SelkovCellBulk(centers=[(0.0, 0.0)], D=1.0, n=64, kernel="nodal")
    with pytest.raises(ValueError, match="not a grid node"):
        SelkovCellBulk(centers=[(0.33, 0.0)], D=5.0, n=8, kernel="nodal")
    with pytest.raises(ValueError, match="not resolved"):
        SelkovCellBulk(centers=[(0.0, 0.0)], n=8, kernel="gaussian", sigma=0.05)


def test_centred_cell_converges_with_the_correction_and_not_without():
    # One cell at the centre, D = 5 (fac > 0 on every grid), nodal point source: the
    # steady state and the leading eigenvalue converge at second order as h → 0 and
    # approach the exact Bessel solution within the O(ε²) of a point source; with
    # the grid value taken as the wall value (no correction) they drift like log h.
    D, eps = 5.0, 0.05
    v_exact, _ = _exact_centred_cell(eps, D=D)
    res = {}
    for correction in (True, False):
        vs, lams = [], []
        for n in (8, 16, 32, 64):
            m = SelkovCellBulk(
                centers=[(0.0, 0.0)],
                D=D,
                tau=0.55,
                n=n,
                kernel="nodal",
                correction=correction,
            )
            y = np.asarray(m.steady_state())
            vs.append(y[m.grid.size])
            lams.append(selkov.discrete_eigenvalues(m)[0].lam)
        res[correction] = (np.array(vs), np.array(lams))
    for x in res[True]:
        d = np.abs(np.diff(x))
        assert np.all(np.log2(d[:-1] / d[1:]) > 1.6), d
    for x in res[False]:
        d = np.abs(np.diff(x))
        assert np.all(d[1:] > 0.5 * d[:-1]), d  # no convergence
    assert abs(res[True][0][-1] - v_exact) < eps**2
    gcep = selkov.gcep(SelkovLargeD(centers=[(0.0, 0.0)], D=D, tau=0.55))[0].lam
    assert abs(res[True][1][-1] - gcep) < eps**2


def test_three_cells_agree_with_the_gcep():
    m = SelkovCellBulk(centers=THREE, D=1.0, tau=0.55, n=48)
    pde = selkov.discrete_eigenvalues(m)[0]
    theory = selkov.gcep(m)[0]
    assert pde.kind == theory.kind == "in-phase"
    assert abs(pde.lam - theory.lam) < 0.05**2
    y = np.asarray(m.steady_state())
    size = m.grid.size
    assert (
        np.abs(y[size : size + 3] - selkov.small_eps_steady_state(m).v).max() < 0.05**2
    )


@pytest.mark.parametrize(
    "tau, oscillates, rtol",
    # The decaying case needs the tighter tolerance: at rtol 1e-5 the error control
    # leaves a ~1e-3 ripple around the steady state (1e-5 at rtol 1e-7).
    [(0.55, True, 1e-5), (1.1, False, 1e-7)],
)
def test_pde_three_cells_paper_section_4(tau, oscillates, rtol):
    # Paper §4 (Figs. 6-7): D = 1, cells at (±0.5, 0), (0, 0) of the unit disk.
    m = SelkovCellBulk(centers=THREE, D=1.0, tau=tau, n=48)
    traj = ds.simulate(
        m, (0.0, 700.0), solver="kencarp4", saveat=14001, rtol=rtol, atol=1e-8
    )
    size = m.grid.size
    ys = np.asarray(traj.ys)
    cells = np.concatenate([ys[:, :1], ys[:, size:]], axis=1)  # [U0, v, w] layout
    period, corr, amp = _period_and_sync(
        ds.Trajectory(traj.ts, jnp.asarray(cells), traj.status, traj.stats, traj.info)
    )
    if oscillates:
        assert 8.2 <= period <= 8.3 and amp > 0.1 and corr.min() > 0.95
    else:
        late = np.asarray(traj.ts) >= 600.0
        assert np.ptp(cells[late, 1]) < 1e-4
