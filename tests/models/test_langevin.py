"""Underdamped Langevin oscillators against their closed forms (docs/models.md §2)."""

import jax
import numpy as np
import pytest

import dynsim as ds
from dynsim.models import LangevinOscillators


def test_energy_conserved_without_damping_or_noise():
    # γ = 0 switches off friction and noise (√(2γT) = 0): H = ½|v|² + Φ(z) is a
    # constant of motion, kept to the solver's tolerance (ALIGN, adaptive), with an
    # anharmonic ring.
    model = LangevinOscillators(
        n=6, topology="ring", gamma=0.0, temperature=1.0, quartic=0.3
    )
    drifts = {}
    for tol in (1e-4, 1e-6):
        traj = ds.simulate(
            model, (0.0, 20.0), saveat=41, solver="align", adaptive=True,
            dt0=0.01, rtol=tol, atol=tol, max_steps=10**6,
        )  # fmt: skip
        energy = np.asarray(model.energy(traj.ys))
        drifts[tol] = np.abs(energy - energy[0]).max()
    assert drifts[1e-6] < 1e-5
    assert drifts[1e-6] < drifts[1e-4] / 10


@pytest.mark.parametrize("topology", ["chain", "ring"])
def test_normal_modes(topology):
    # S = ω² I + k L has the eigenvalues ω² + 4k sin²(jπ/2n) on a free chain and
    # ω² + 4k sin²(jπ/n) on a ring (the graph Laplacians' spectra); started along an
    # eigenvector v_j at rest, the undamped linear chain follows z(t) = cos(ω_j t) v_j.
    n, omega, k = 5, 1.2, 0.7
    model = LangevinOscillators(
        n=n, omega=omega, coupling=k, gamma=0.0, temperature=1.0, topology=topology
    )
    j = np.arange(n)
    arg = j * np.pi / (2 * n) if topology == "chain" else j * np.pi / n
    expected = np.sort(omega**2 + 4 * k * np.sin(arg) ** 2)
    lam, vecs = np.linalg.eigh(np.asarray(model.stiffness()))
    assert np.allclose(lam, expected, atol=1e-12)
    ts = np.linspace(0.0, 10.0, 21)
    for mode in (0, n - 1):
        y0 = np.concatenate([vecs[:, mode], np.zeros(n)])
        traj = ds.simulate(
            model, (0.0, 10.0), y0=y0, saveat=ts, solver="align", dt0=0.002
        )
        z, _ = model.split(traj.ys)
        exact = np.cos(np.sqrt(expected[mode]) * ts)[:, None] * vecs[:, mode]
        assert np.abs(np.asarray(z) - exact).max() < 1e-4


@pytest.mark.parametrize("solver,dt0", [("align", 0.05), ("sra", 0.05)])
def test_stationary_covariances(solver, dt0):
    # The stationary law ∝ exp(−(½|v|² + ½ zᵀSz)/T): Cov v = T I and Cov z = T S⁻¹
    # (coupled chain). 1000 independent realisations at t = 30 (≫ 1/γ); every entry
    # within 4 standard errors of the sample covariance, √((Σᵢᵢ Σⱼⱼ + Σᵢⱼ²)/N),
    # plus 2 % for the discretisation bias at this step.
    n, temp, runs = 3, 0.5, 1000
    model = LangevinOscillators(n=n, coupling=0.5, gamma=1.0, temperature=temp)
    res = ds.scan(
        model, {"temperature": np.full(runs, temp)}, (0.0, 30.0),
        solver=solver, dt0=dt0, key=jax.random.key(3),
    )  # fmt: skip
    assert np.all(np.asarray(res.status) == 0)
    y = np.asarray(res.ys).reshape(runs, 2 * n)
    exact = np.zeros((2 * n, 2 * n))
    exact[:n, :n] = temp * np.linalg.inv(np.asarray(model.stiffness()))
    exact[n:, n:] = temp * np.eye(n)
    sample = np.cov(y, rowvar=False)
    d = np.diag(exact)
    se = np.sqrt((np.outer(d, d) + exact**2) / runs)
    assert np.all(np.abs(sample - exact) < 4 * se + 0.02 * temp)


def test_driven_damped_oscillator_amplitude():
    # One oscillator, no noise (T = 0), driven by F cos(Ωt): the steady state has
    # the amplitude F / √((ω² − Ω²)² + γ²Ω²).
    f, big_omega, omega, gamma = 0.3, 1.5, 1.0, 1.0
    model = LangevinOscillators(
        n=1, omega=omega, gamma=gamma, temperature=0.0,
        input_drive=lambda t: f * jax.numpy.cos(big_omega * t)[None],
    )  # fmt: skip
    ts = np.linspace(35.0, 45.0, 2001)
    traj = ds.simulate(
        model, (0.0, 45.0), saveat=ts, solver="sra", adaptive=True, dt0=0.01,
        rtol=1e-7, atol=1e-7, max_steps=10**6,
    )  # fmt: skip
    z = np.asarray(traj.ys)[:, 0]
    exact = f / np.sqrt((omega**2 - big_omega**2) ** 2 + (gamma * big_omega) ** 2)
    assert abs(0.5 * (z.max() - z.min()) - exact) < 1e-3 * exact


def test_same_key_same_path():
    model = LangevinOscillators(n=2, gamma=0.5, temperature=0.2)
    run = lambda k: (
        ds.simulate(  # noqa: E731
            model,
            (0.0, 5.0),
            saveat=11,
            solver="quicsort",
            dt0=0.05,
            key=jax.random.key(k),
        ).ys
    )
    assert np.array_equal(run(1), run(1))
    assert np.abs(np.asarray(run(1)) - np.asarray(run(2))).max() > 1e-3


def test_bad_input():
    with pytest.raises(ValueError, match="unknown topology"):
        LangevinOscillators(topology="torus")
    with pytest.raises(ValueError, match="omega must be"):
        LangevinOscillators(n=3, omega=np.ones(4))
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        LangevinOscillators(temperature=-1.0)
    with pytest.raises(ValueError, match="temperature > 0"):
        ds.simulate(LangevinOscillators(temperature=0.0), solver="align", dt0=0.1)
    driven = LangevinOscillators(n=1, input_drive=lambda t: np.ones(1))
    with pytest.raises(ValueError, match="input drive"):
        ds.simulate(driven, solver="quicsort", dt0=0.1)
    with pytest.raises(ValueError, match="cannot solve a LANGEVIN"):
        ds.simulate(LangevinOscillators(), solver="tsit5", dt0=0.1)
    with pytest.raises(ValueError, match="cannot solve a SDE"):
        ds.simulate(ds.models.OrnsteinUhlenbeck(), solver="align", dt0=0.1)
