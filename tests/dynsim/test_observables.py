"""Observables are exact to the solver's accuracy: extrema, peaks, periods, crossings
and means are located within steps from the dense output, independent of `samples`.
References are closed forms or SciPy's DOP853 at rtol = 1e-12 with event location."""

from typing import ClassVar

import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

import dynsim as ds
from dynsim.models import param

OBS = ds.observables


def _selkov_reference(alpha, mu, zeta, t_from, t1):
    """(max − min)/2 of v over [t_from, t1] for one Sel'kov cell from its default
    start, by SciPy DOP853 (rtol = atol = 1e-12) with the extrema located as events
    (dv/dt = 0) on its dense output."""

    def f(t, y):
        v, w = y
        p = alpha * w + w * v * v
        return [p - v, zeta * (mu - p)]

    v_eq = mu
    y0 = [1.1 * v_eq, mu / (alpha + v_eq**2)]  # Selkov.initial_state()
    sol = solve_ivp(
        f,
        (0.0, t1),
        y0,
        method="DOP853",
        rtol=1e-12,
        atol=1e-12,
        events=lambda t, y: f(t, y)[0],
        dense_output=True,
    )
    te, ye = sol.t_events[0], sol.y_events[0]
    values = list(ye[te >= t_from, 0]) + [sol.sol(t_from)[0], sol.y[0, -1]]
    return 0.5 * (max(values) - min(values))


@pytest.fixture(scope="module")
def selkov_grid():
    alphas = np.linspace(0.02, 0.7, 6)
    mus = np.linspace(0.4, 2.0, 6)
    t_from, t1 = 300.0, 400.0
    zeta = float(ds.models.Selkov().zeta)
    mesh_a, mesh_m = np.meshgrid(alphas, mus, indexing="ij")
    ref = np.array(
        [
            _selkov_reference(a, m, zeta, t_from, t1)
            for a, m in zip(mesh_a.ravel(), mesh_m.ravel(), strict=True)
        ]
    )
    return alphas, mus, t_from, t1, ref


@pytest.mark.parametrize("samples", [1000, 2])
def test_amplitude_over_a_grid_equals_dense_reference(selkov_grid, samples):
    # Every point within 1e-4 relative of the dense reference (1e-8 absolute where
    # the amplitude is below 1e-4: the points that settle on the steady state),
    # whatever `samples` is. The solve's own tolerances are tight so that what is
    # tested is the reduction, not the solve.
    alphas, mus, t_from, t1, ref = selkov_grid
    res = ds.scan(
        ds.models.Selkov(),
        {"alpha": alphas, "mu": mus},
        (0.0, t1),
        observables={"amp": OBS.Amplitude("v", t_from=t_from)},
        samples=samples,
        rtol=1e-10,
        atol=1e-12,
    )
    amp = res.values["amp"]
    err = np.abs(amp - ref)
    small = ref < 1e-4
    assert np.all(err[~small] <= 1e-4 * ref[~small])
    assert np.all(err[small] <= 1e-8)
    assert (~small).sum() >= 10  # the grid holds real oscillations


def test_fast_oscillation_amplitude_is_not_undersampled():
    # One cell at α = 0.06, μ = 1.0255: relaxation oscillations with sharp peaks.
    # Sampled at 1000 points of [600, 800] the amplitude came out as 4.744.
    ref = _selkov_reference(0.06, 1.0255, 0.15, 600.0, 800.0)
    assert ref == pytest.approx(7.831, abs=1e-3)
    res = ds.scan(
        ds.models.Selkov(),
        {"alpha": [0.06], "mu": [1.0255]},
        (0.0, 800.0),
        observables={"amp": OBS.Amplitude("v", t_from=600.0)},
        rtol=1e-8,
        atol=1e-10,
    )
    assert res.values["amp"][0] == pytest.approx(ref, rel=1e-5)


def test_hopf_normal_form_cycle_closed_forms():
    # r' = μ r − r³, θ' = ω: the cycle x = √μ cos(ω t + φ) once the transient is
    # gone; peaks √μ, period 2π/ω, mean 0, 2 crossings of 0 per period, and of a
    # level 0.999 √μ too (both within ~1 % of a period around each peak, i.e.
    # inside one step: only found by refining within steps).
    mus = np.array([0.25, 1.0, 2.25])
    omega = 2.0
    t_from, t1 = 150.0, 200.0
    level = 0.999 * float(np.sqrt(mus[0]))
    res = ds.scan(
        ds.models.HopfNormalForm(omega=omega),
        {"mu": mus},
        (0.0, t1),
        observables={
            "max": OBS.Max("x", t_from=t_from),
            "min": OBS.Min("x", t_from=t_from),
            "peaks": OBS.Peaks("x", t_from=t_from, max_peaks=8),
            "period": OBS.Period("x", t_from=t_from),
            "zeros": OBS.SignChanges("x", t_from=t_from),
            "near_top": OBS.SignChanges("x", t_from=t_from, level=level),
        },
        samples=2,
        rtol=1e-10,
        atol=1e-12,
    )
    r = np.sqrt(mus)
    assert np.allclose(res.values["max"], r, rtol=1e-7)
    assert np.allclose(res.values["min"], -r, rtol=1e-7)
    assert np.allclose(res.values["peaks"], r[:, None], rtol=1e-7)
    assert np.allclose(res.values["period"], 2 * np.pi / omega, rtol=1e-7)
    # Crossing counts from the phase θ(t) = θ(t_from) + ω (t − t_from) (b = 0).
    traj = ds.simulate(
        ds.models.HopfNormalForm(omega=omega, mu=mus[0]),
        (0.0, t_from),
        rtol=1e-10,
        atol=1e-12,
    )
    x, y = np.asarray(traj.ys[-1])
    lo = np.arctan2(y, x)
    hi = lo + omega * (t1 - t_from)
    # Zeros of cos θ: θ = π/2 + kπ; crossings of cos θ = 0.999: θ = ±δ + 2kπ.
    zeros = np.floor((hi - np.pi / 2) / np.pi) - np.floor((lo - np.pi / 2) / np.pi)
    assert res.values["zeros"][0] == zeros
    delta = np.arccos(0.999)
    near = sum(
        np.floor((hi - c) / (2 * np.pi)) - np.floor((lo - c) / (2 * np.pi))
        for c in (delta, -delta)
    )
    assert near >= 14
    assert res.values["near_top"][0] == near


def test_mean_is_the_time_average_of_the_dense_output():
    # x = √μ cos(ω t + φ) on the cycle: the mean over [a, b] is
    # √μ (sin(ω b + φ) − sin(ω a + φ)) / (ω (b − a)), with φ from the solution.
    model = ds.models.HopfNormalForm(omega=1.3, mu=0.25)
    a, b = 100.0, 112.3
    res = ds.scan(
        model,
        {"mu": [0.25]},
        (0.0, b),
        observables={"mean": OBS.Mean("x", t_from=a)},
        samples=2,
        rtol=1e-11,
        atol=1e-13,
    )
    traj = ds.simulate(model, (0.0, b), saveat=np.array([a]), rtol=1e-11, atol=1e-13)
    x, y = np.asarray(traj.ys[0])
    phase = np.arctan2(y, x) - 1.3 * a
    exact = 0.5 * (np.sin(1.3 * b + phase) - np.sin(1.3 * a + phase)) / (1.3 * (b - a))
    assert res.values["mean"][0] == pytest.approx(exact, abs=1e-9)


class Logistic(ds.AbstractMap):
    """x_{n+1} = r x_n (1 − x_n)."""

    r: float = param(3.2)
    state_names: ClassVar[tuple[str, ...]] = ("x",)

    def step(self, n, y, args):
        return self.r * y * (1 - y)

    def initial_state(self):
        return jnp.array([0.3])


def test_map_observables_see_every_iterate():
    # r = 3.2: the period-2 orbit x± = (r + 1 ± √((r − 3)(r + 1))) / (2r)
    # (Strogatz §10.3). Every iterate counts, not a subsample.
    r = 3.2
    root = np.sqrt((r - 3) * (r + 1))
    hi, lo = (r + 1 + root) / (2 * r), (r + 1 - root) / (2 * r)
    res = ds.scan(
        Logistic(),
        {"r": [r]},
        (0, 2000),
        observables={
            "max": OBS.Max("x", t_from=1000),
            "min": OBS.Min("x", t_from=1000),
            "peaks": OBS.Peaks("x", t_from=1000, max_peaks=4),
            "mean": OBS.Mean("x", t_from=1001),
            "period": OBS.Period("x", t_from=1000),
        },
        samples=2,
    )
    assert res.values["max"][0] == pytest.approx(hi, abs=1e-12)
    assert res.values["min"][0] == pytest.approx(lo, abs=1e-12)
    assert np.allclose(res.values["peaks"][0], hi, atol=1e-12)
    # Iterates 1001 … 2000: 500 of each.
    assert res.values["mean"][0] == pytest.approx(0.5 * (hi + lo), abs=1e-12)
    assert res.values["period"][0] == pytest.approx(2.0, abs=1e-12)


def test_peaks_and_period_need_one_component():
    with pytest.raises(ValueError, match="one state component"):
        ds.scan(
            ds.models.Lorenz(),
            {"rho": [28.0]},
            (0.0, 1.0),
            observables={"p": OBS.Peaks()},
        )
