"""Lyapunov exponents against published values and closed forms."""

import numpy as np
import pytest

import dynsim as ds
from dynsim.analysis import (
    equilibrium,
    jacobian,
    kaplan_yorke,
    lyapunov_spectrum,
    max_lyapunov,
)
from tests.helpers import has_line


@pytest.fixture(scope="module")
def lorenz():
    return lyapunov_spectrum(
        ds.models.Lorenz(), t_transient=100.0, t_total=4000.0, dt_renorm=1.0
    )


def test_lorenz_spectrum(lorenz):
    # (σ, ρ, β) = (10, 28, 8/3): (0.9056, 0, −14.5723) (Sprott, Chaos and Time-Series
    # Analysis, 2003, Table A.2); the sum is the divergence −(σ + 1 + β).
    assert np.allclose(lorenz.exponents, [0.9056, 0.0, -14.5723], atol=0.01)
    assert lorenz.exponents.sum() == pytest.approx(-(10 + 1 + 8 / 3), abs=1e-3)
    assert np.all(lorenz.stderr < 0.01)
    assert lorenz.running.shape == (4000, 3) and lorenz.times[-1] == 4000.0
    # Kaplan–Yorke: 2 + (λ₁ + λ₂)/|λ₃| ≈ 2.062.
    assert lorenz.kaplan_yorke == pytest.approx(2.062, abs=0.002)
    assert "natural log" in lorenz.units


def test_two_trajectory_method_agrees(lorenz):
    one = max_lyapunov(ds.models.Lorenz(), t_transient=100.0, t_total=2000.0)
    assert one.exponents.shape == (1,) and one.method == "two-trajectory"
    assert abs(one.exponents[0] - 0.9056) < 0.02


def test_henon_map_sum_is_log_det():
    # Hénon (a, b) = (1.4, 0.3): the Jacobian's determinant is −b everywhere, so
    # λ₁ + λ₂ = ln 0.3 exactly; λ₁ ≈ 0.4192 (Sprott 2003).
    r = lyapunov_spectrum(
        ds.models.Henon(), t_transient=1000, t_total=100_000, dt_renorm=1
    )
    assert r.exponents.sum() == pytest.approx(np.log(0.3), abs=1e-8)
    assert r.exponents[0] == pytest.approx(0.4192, abs=0.005)


def test_linear_system_exponents_are_real_parts():
    # y' = A y: the exponents are the real parts of A's eigenvalues.
    A = np.array([[-0.5, 2.0, 0.0], [-2.0, -0.5, 0.0], [0.3, 0.1, -1.2]])
    r = lyapunov_spectrum(
        ds.models.LinearSystem(A=A), t_transient=0.0, t_total=400.0, dt_renorm=0.5
    )
    expected = np.sort(np.linalg.eigvals(A).real)[::-1]
    assert np.allclose(r.exponents, expected, atol=5e-3)


def test_leading_exponents_of_a_discretised_pde():
    # u_t = D u_xx + c u on (0, 1), u = 0 at both ends, N = 64 interior nodes
    # (second differences, h = 1/65): the exponents are the eigenvalues of the
    # discrete operator, c − (4D/h²) sin²(jπ/(2(N + 1))), j = 1, 2, …; the leading
    # three of the 64 from three tangent vectors.
    n, diff, c, h = 64, 0.01, 0.5, 1.0 / 65
    lap = (np.eye(n, k=1) + np.eye(n, k=-1) - 2 * np.eye(n)) / h**2
    model = ds.models.LinearSystem(A=diff * lap + c * np.eye(n))
    r = lyapunov_spectrum(
        model, n_exponents=3, t_transient=20.0, t_total=400.0, dt_renorm=1.0, rtol=1e-8
    )
    j = np.arange(1, 4)
    expected = c - 4 * diff / h**2 * np.sin(j * np.pi / (2 * (n + 1))) ** 2
    assert r.exponents.shape == (3,)
    assert np.allclose(r.exponents, expected, atol=5e-3)


def test_rossler_largest_exponent():
    # Rössler (0.2, 0.2, 5.7): λ₁ = 0.0714 (Sprott 2003, Table A.2).
    r = lyapunov_spectrum(
        ds.models.Rossler(a=0.2, b=0.2, c=5.7),
        n_exponents=1,
        t_transient=500.0,
        t_total=20_000.0,
        dt_renorm=2.0,
        rtol=1e-7,
        atol=1e-9,
    )
    assert abs(r.exponents[0] - 0.0714) < 0.005


def test_vectorised_over_parameters():
    # λ₁(ρ) in one call: a stable equilibrium at ρ = 20 (λ₁ = the largest real part
    # of its Jacobian's eigenvalues), chaos at 28.
    rhos = np.array([20.0, 28.0])
    r = lyapunov_spectrum(
        ds.models.Lorenz(),
        n_exponents=1,
        t_transient=200.0,
        t_total=1000.0,
        params={"rho": rhos},
    )
    assert r.exponents.shape == (2, 1) and r.running.shape == (2, 1000, 1)
    m20 = ds.models.Lorenz(rho=20.0)
    c = np.sqrt(8 / 3 * 19)
    eq = equilibrium(m20, [c, c, 19.0])
    lam = np.linalg.eigvals(jacobian(m20, eq.y)).real.max()
    assert r.exponents[0, 0] == pytest.approx(lam, abs=0.01)
    assert abs(r.exponents[1, 0] - 0.9056) < 0.03


def test_kaplan_yorke_and_bad_input():
    assert kaplan_yorke([0.9, 0.0, -14.5]) == pytest.approx(2 + 0.9 / 14.5)
    assert kaplan_yorke([-0.1, -1.0]) == 0.0
    assert kaplan_yorke([0.5, 0.2]) == 2.0
    with pytest.raises(
        ValueError, match="n_exponents must be between 1 and the state size 3"
    ):
        lyapunov_spectrum(ds.models.Lorenz(), n_exponents=4)
    with pytest.raises(ValueError, match="fewer than"):
        lyapunov_spectrum(ds.models.Lorenz(), t_total=5.0, dt_renorm=1.0)
    with pytest.raises(ValueError, match="whole number of iterates"):
        lyapunov_spectrum(ds.models.Henon(), dt_renorm=0.5)


def test_hdf5_round_trip_and_figures(lorenz, tmp_path):
    path = tmp_path / "lyap.h5"
    ds.io.save(lorenz, path, "lorenz")
    scan = lyapunov_spectrum(
        ds.models.Lorenz(),
        n_exponents=2,
        t_transient=10.0,
        t_total=100.0,
        params={"rho": [20.0, 28.0, 35.0]},
    )
    ds.io.save(scan, path, "scan")
    back = ds.io.load(path, "lorenz")
    assert np.array_equal(back.exponents, lorenz.exponents)
    assert back.units == lorenz.units and back.info == lorenz.info
    again = ds.io.load(path, "scan")
    assert np.array_equal(again.params["rho"], [20.0, 28.0, 35.0])
    assert np.array_equal(again.running, scan.running)
    for name, r in (("one", lorenz), ("scan", scan)):
        (png,) = ds.plot.save_figures(r, tmp_path, name)
        assert png.name == f"{name}_lyapunov.png"
    one = lorenz.figures()[0][1]
    for i in range(lorenz.exponents.shape[-1]):
        assert has_line(one, lorenz.running[:, i], lorenz.times)
    # Over a parameter: each exponent against ρ.
    assert has_line(scan.figures()[0][1], scan.exponents[:, 0], [20.0, 28.0, 35.0])
