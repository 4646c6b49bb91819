"""SDE solves: statistics against closed forms, and reproducible Brownian paths."""

import jax.random as jr
import numpy as np

import dynsim as ds


def test_ornstein_uhlenbeck_mean_and_variance():
    # Closed form: E X(t) = m + (x0 - m) e^{-θt}, Var X(t) = σ²/(2θ)(1 - e^{-2θt}).
    theta, m, sigma, t, n = 1.5, 0.5, 0.8, 1.0, 4000
    model = ds.models.OrnsteinUhlenbeck(theta=theta, mean=m, sigma=sigma, n=n)
    traj = ds.simulate(model, (0.0, t), dt0=1e-2, key=jr.key(42))
    x = np.asarray(traj.ys[-1])
    mean = m + (1.0 - m) * np.exp(-theta * t)
    var = sigma**2 / (2 * theta) * (1 - np.exp(-2 * theta * t))
    # Tolerances: 4 standard errors of the sample mean and sample variance
    # (Var of s² = 2σ⁴/(n-1) for Gaussian samples); Euler–Maruyama's weak bias at
    # dt = 1e-2 is O(θ dt) ≈ 1 % of the variance, a third of one standard error.
    assert abs(x.mean() - mean) < 4 * np.sqrt(var / n)
    assert abs(x.var(ddof=1) - var) < 4 * var * np.sqrt(2 / (n - 1))


def test_same_key_same_path_other_key_other_path():
    model = ds.models.AdditiveNoise(ds.models.Lorenz(), sigma=1.0)
    a = ds.simulate(model, (0.0, 2.0), dt0=1e-3, saveat=50, key=jr.key(1))
    b = ds.simulate(model, (0.0, 2.0), dt0=1e-3, saveat=50, key=jr.key(1))
    c = ds.simulate(model, (0.0, 2.0), dt0=1e-3, saveat=50, key=jr.key(2))
    assert np.array_equal(np.asarray(a.ys), np.asarray(b.ys))
    assert not np.allclose(np.asarray(a.ys[-1]), np.asarray(c.ys[-1]))


def test_brownian_path_independent_of_solver_steps():
    # The same key is the same Brownian path: for additive noise on y' = 0 the solution
    # is σ W(t), whatever the step size.
    model = ds.models.OrnsteinUhlenbeck(theta=0.0, sigma=1.0, n=4)
    y = [
        np.asarray(ds.simulate(model, (0.0, 1.0), dt0=dt, key=jr.key(7)).ys[-1])
        for dt in (1e-2, 1e-3)
    ]
    assert np.allclose(y[0], y[1], atol=1e-6)


def test_sra_strong_convergence_on_additive_noise():
    # Pathwise (strong) convergence on one Brownian path, against SRA1 at dt/64 on
    # the same path: SRA1 has strong order 1.5 for additive noise (Rößler 2010), so
    # an 8x smaller step cuts the error by ~8^1.5 ≈ 23; order <= 1 would give <= 8.
    model = ds.models.AdditiveNoise(ds.models.VanDerPol(mu=1.0), sigma=0.5)

    def end(solver, dt):
        traj = ds.simulate(model, (0.0, 2.0), solver=solver, dt0=dt, key=jr.key(3))
        return np.asarray(traj.ys[-1])

    ref = end("sra", 0.1 / 64)
    err_sra = np.abs(end("sra", 0.1) - ref).max()
    err_sra8 = np.abs(end("sra", 0.1 / 8) - ref).max()
    assert err_sra8 < err_sra / 8
