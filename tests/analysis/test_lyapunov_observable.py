"""The largest Lyapunov exponent of every run of a scan, from the tangent dynamics
carried with each run (`dynsim.observables.LyapunovExponent`)."""

import jax.numpy as jnp
import numpy as np
import pytest

import dynsim as ds
from dynsim.models import AbstractSDEModel, param


def _lorenz_leading(rho: float, sigma=10.0, beta=8.0 / 3.0) -> float:
    """The real part of the leading eigenvalue of the Lorenz Jacobian at the
    equilibrium a run settles on for this ρ: the origin for ρ < 1, C± (x = y =
    ±√(β(ρ − 1)), z = ρ − 1; both have the same spectrum by the symmetry) above."""
    x = np.sqrt(beta * (rho - 1.0)) if rho > 1 else 0.0
    z = rho - 1.0 if rho > 1 else 0.0
    jac = np.array([[-sigma, sigma, 0.0], [rho - z, -1.0, -x], [x, x, -beta]])
    return float(np.max(np.linalg.eigvals(jac).real))


def test_lorenz_line_classified_in_one_scan():
    """64 values of ρ in one scan on the ensemble executor: below the Hopf point
    ρ_H = 470/19 ≈ 24.74 the runs settle on an equilibrium and the exponent is the
    leading eigenvalue's real part there (closed form above; ρ < 22, clear of the
    long transient chaos below 24.06); above the bistable
    range (24.06, 24.74) the attractor is chaotic (λ₁ > 0.5). The other observables
    of the same runs equal those of a scan without the exponent."""
    rho = np.linspace(2.0, 30.0, 64)
    obs = {
        "lam": ds.observables.LyapunovExponent(t_from=50.0),
        "end": ds.observables.FinalState(),
        "zmax": ds.observables.Max("z", t_from=50.0),
    }
    opts = dict(rtol=1e-8, atol=1e-10)
    res = ds.scan(ds.models.Lorenz(), {"rho": rho}, (0.0, 250.0), observables=obs,
                  **opts)  # fmt: skip
    assert res.info.solver_settings["executor"] == "ensemble"
    assert res.ok
    lam = res.values["lam"]
    steady = rho < 22.0  # (transient chaos lasts longest just below 24.06)
    expected = np.array([_lorenz_leading(r) for r in rho[steady]])
    # A complex pair turns the tangent vector within its plane: the growth over a
    # window T is exact up to the log of the eigenvectors' condition number, O(1/T).
    np.testing.assert_allclose(lam[steady], expected, atol=5e-3)
    assert np.all(lam[rho > 24.8] > 0.5)
    # The runs' own observables see the model's state only (not the tangent).
    assert res.values["end"].shape == (64, 3)
    own = {"end": obs["end"], "zmax": obs["zmax"]}
    plain = ds.scan(ds.models.Lorenz(), {"rho": rho[steady]}, (0.0, 250.0),
                    observables=own, **opts)  # fmt: skip
    np.testing.assert_allclose(res.values["end"][steady], plain.values["end"],
                               atol=1e-4)  # fmt: skip
    np.testing.assert_allclose(res.values["zmax"][steady], plain.values["zmax"],
                               atol=1e-4)  # fmt: skip


def test_lorenz_chaotic_value_and_periodic_window():
    """ρ = 28: λ₁ = 0.9056 (Sprott, Chaos and Time-Series Analysis, 2003, App. A),
    within the spread of a finite window; in the periodic window at ρ = 100.5 and
    the periodic regime at ρ = 350 the exponent of a cycle is 0 (to the window's
    1/T convergence)."""
    zmax = ds.observables.Max("z", t_from=50.0)
    obs = {"lam": ds.observables.LyapunovExponent(t_from=50.0), "zmax": zmax}
    opts = dict(rtol=1e-8, atol=1e-10, max_steps=1_000_000)
    res = ds.scan(ds.models.Lorenz(), {"rho": [28.0, 100.5, 350.0]}, (0.0, 550.0),
                  observables=obs, **opts)  # fmt: skip
    lam = res.values["lam"]
    assert abs(lam[0] - 0.9056) < 0.03
    assert np.all(np.abs(lam[1:]) < 0.01)
    # On the cycles the runs' own observables agree with a scan without the
    # tangent (whose steps differ) to the tolerance.
    plain = ds.scan(ds.models.Lorenz(), {"rho": [100.5, 350.0]}, (0.0, 550.0),
                    observables={"zmax": zmax}, **opts)  # fmt: skip
    np.testing.assert_allclose(res.values["zmax"][1:], plain.values["zmax"],
                               rtol=1e-6)  # fmt: skip


def test_henon_plane_equals_benettin_and_published_value():
    """A plane of the Hénon map's (a, b) in one scan: the exponents equal the
    Benettin QR method of `lyapunov_spectrum` (the same growth, computed another
    way) point by point, chaotic and periodic points alike, orbits that escape NaN
    in both; at (1.4, 0.3) λ₁ = 0.41922 (Sprott 2003, App. A)."""
    henon = ds.models.Henon()
    a, b = np.linspace(1.0, 1.4, 9), np.linspace(0.1, 0.3, 5)
    obs = {"lam": ds.observables.LyapunovExponent(t_from=200)}
    res = ds.scan(henon, {"a": a, "b": b}, (0, 3000), observables=obs)
    qr = ds.analysis.lyapunov_spectrum(henon, n_exponents=1, params={"a": a, "b": b},
                                       t_transient=200, t_total=2800)  # fmt: skip
    np.testing.assert_allclose(res.reshape(res.values["lam"]), qr.exponents[..., 0],
                               rtol=1e-9, atol=1e-12)  # fmt: skip
    assert np.any(res.values["lam"] > 0.2) and np.any(res.values["lam"] < -0.05)
    long = ds.scan(henon, {"a": [1.4]}, (0, 200_000), observables=obs)
    assert abs(long.values["lam"][0] - 0.41922) < 3e-3


class _NoisyDecay(AbstractSDEModel):
    k: float = param(1.0)
    state_names = ("x",)
    noise_shape = (1,)

    def vector_field(self, t, y, args):
        return -self.k * y

    def diffusion(self, t, y, args):
        return 0.1 * jnp.eye(1)

    def initial_state(self):
        return jnp.ones(1)


def test_rejects_state_and_stochastic_models():
    with pytest.raises(ValueError, match="whole state"):
        ds.observables.LyapunovExponent(state="x")
    with pytest.raises(ValueError, match="deterministic"):
        ds.scan(_NoisyDecay(), {"k": [1.0, 2.0]}, (0.0, 1.0),
                observables={"lam": ds.observables.LyapunovExponent()})  # fmt: skip


def test_section_and_functions_see_the_model_state():
    """With the tangent dynamics carried, a Section's rows and a function of
    samples still hold the model's own components."""
    obs = {
        "lam": ds.observables.LyapunovExponent(t_from=10.0),
        "cross": ds.observables.Section("z", value=27.0, max_crossings=4),
        "width": lambda ts, ys: ys.shape[-1] * jnp.ones(()),
    }
    res = ds.scan(ds.models.Lorenz(), {"rho": [28.0, 20.0]}, (0.0, 20.0),
                  observables=obs)  # fmt: skip
    assert res.values["cross"].shape == (2, 4, 4)  # time + (x, y, z)
    np.testing.assert_array_equal(res.values["width"], [3.0, 3.0])
    rows = res.values["cross"][0]
    np.testing.assert_allclose(rows[:, 3], 27.0, atol=1e-4)  # (rtol 1e-6)


class _Logistic(ds.AbstractMap):
    r: float = param(2.0)
    state_names = ("x",)

    def step(self, n, y, args):
        return self.r * y * (1 - y)

    def initial_state(self):
        return jnp.full(1, 0.3)


def test_maps_superstable_points_windows_and_single_precision():
    """The logistic map: at r = 2 from its superstable fixed point x = 1/2
    (f'(1/2) = 0 exactly) the tangent is mapped to zero at every iterate: the run
    stays finite (its other observables too), each iterate adds log of the smallest
    normal number. At r = 3.5
    (period 4) λ = ln|Πf'(xᵢ)|/4 over the cycle (closed form from the cycle's
    points). A window from a non-integer t_from starts at the next iterate; single
    precision gives the double-precision exponent to float32 accuracy."""
    lam = ds.observables.LyapunovExponent
    obs = {"lam": lam(t_from=100), "end": ds.observables.FinalState()}
    res = ds.scan(_Logistic(), {"r": [2.0, 3.5]}, (0, 2000), observables=obs,
                  y0=[0.5])  # fmt: skip
    assert res.ok
    assert res.values["end"][0, 0] == 0.5
    np.testing.assert_allclose(res.values["lam"][0], np.log(np.finfo(float).tiny))
    # The period-4 cycle of r = 3.5, iterated from the run's end.
    x, slope = res.values["end"][1, 0], 1.0
    for _ in range(4):
        slope *= 3.5 * (1 - 2 * x)
        x = 3.5 * x * (1 - x)
    np.testing.assert_allclose(res.values["lam"][1], np.log(abs(slope)) / 4,
                               rtol=1e-6)  # fmt: skip
    both = {"a": lam(t_from=99.5), "b": lam(t_from=100)}
    half = ds.scan(_Logistic(), {"r": [3.9]}, (0, 2000), observables=both)
    assert half.values["a"][0] == half.values["b"][0]
    henon = ds.models.Henon()
    one = {"lam": lam(t_from=100)}
    double = ds.scan(henon, {"a": [1.4]}, (0, 1000), observables=one)
    single = ds.scan(henon, {"a": [1.4]}, (0, 1000), observables=one,
                     precision="single")  # fmt: skip
    assert single.values["lam"].dtype == np.float32
    # (chaos amplifies round-off: agreement to the finite window's spread)
    assert abs(single.values["lam"][0] - double.values["lam"][0]) < 0.05
    flow = ds.scan(ds.models.Lorenz(), {"rho": [10.0]}, (0.0, 100.0),
                   observables=one | {"lam": lam(t_from=20.0)},
                   precision="single", rtol=1e-5, atol=1e-7)  # fmt: skip
    np.testing.assert_allclose(flow.values["lam"][0], _lorenz_leading(10.0),
                               atol=2e-2)  # fmt: skip
