"""Neural ODE / SDE models and `dynsim.fit` (docs/models.md §3)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from scipy.linalg import expm

import dynsim as ds
from dynsim.models import LatentODE, NeuralODE, NeuralSDE, rollout

A = np.array([[-0.1, 2.0, 0.0], [-2.0, -0.1, 0.3], [0.0, -0.3, -0.5]])


def linear_model(a):
    lin = eqx.nn.Linear(3, 3, use_bias=False, key=jr.key(0))
    return NeuralODE(3, field=eqx.tree_at(lambda m: m.weight, lin, jnp.asarray(a)))


def test_linear_field_is_matrix_exponential():
    model = linear_model(A)
    y0 = np.array([1.0, -0.5, 0.25])
    ts = np.linspace(0.0, 3.0, 13)
    traj = ds.simulate(model, (0.0, 3.0), y0=y0, saveat=ts, rtol=1e-11, atol=1e-13)
    exact = np.stack([expm(A * t) @ y0 for t in ts])
    assert np.abs(np.asarray(traj.ys) - exact).max() < 1e-9


@pytest.mark.parametrize("adjoint", ["recursive", "backsolve"])
def test_gradients_agree_with_expm_and_finite_differences(adjoint):
    # L(A) = c · y(T) with y(T) = expm(A T) y0: the gradient through the solver
    # (each adjoint) against JAX's gradient of expm and central differences.
    y0 = jnp.array([1.0, -0.5, 0.25])
    c = jnp.array([0.3, -1.0, 2.0])
    ts = jnp.array([0.0, 1.5])

    def loss(a):
        ys = rollout(linear_model(a), y0, ts, rtol=1e-10, atol=1e-12, adjoint=adjoint)
        return c @ ys[-1]

    grad = np.asarray(jax.grad(loss)(jnp.asarray(A)))
    exact = np.asarray(jax.grad(lambda a: c @ jax.scipy.linalg.expm(a * 1.5) @ y0)(A))
    assert np.abs(grad - exact).max() < 1e-6
    h, fd = 1e-5, np.zeros_like(A)
    for i in range(3):
        for j in range(3):
            e = np.zeros_like(A)
            e[i, j] = h
            fd[i, j] = (loss(A + e) - loss(A - e)) / (2 * h)
    assert np.abs(grad - fd).max() < 1e-6


def spiral(n, seed, t1=2.0, times=30):
    # The damped linear spiral y' = A y, y ∈ ℝ², solved in closed form.
    a = np.array([[-0.1, 2.0], [-2.0, -0.1]])
    rng = np.random.default_rng(seed)
    y0 = rng.uniform(-1.5, 1.5, (n, 2))
    ts = np.linspace(0.0, t1, times)
    ys = np.stack([[expm(a * t) @ y for t in ts] for y in y0])
    return ts, y0, ys


def test_training_lowers_held_out_error():
    train, test = spiral(64, 0), spiral(32, 1)
    model = NeuralODE(2, width=32, depth=2, key=jr.key(0))
    res = ds.fit(
        model, train, steps=300, learning_rate=1e-2, rtol=1e-4, atol=1e-6,
        validation=test, validate_every=100,
    )  # fmt: skip
    steps, val = res.validation
    assert steps[0] == 0 and steps[-1] == 299
    assert val[-1] < val[0] / 10, val
    assert res.losses[-1] < res.losses[0] / 10
    assert "NeuralODE" in repr(res)


def test_latent_ode_trains():
    ts, _, ys = spiral(32, 2, times=20)
    context = ys[:, :5]
    model = LatentODE(2, 4, hidden=16, width=32, key=jr.key(1))
    res = ds.fit(model, (ts, context, ys), steps=150, learning_rate=1e-2, rtol=1e-4)
    assert res.losses[-1] < res.losses[0] / 3


def test_neural_sde_paths_follow_the_key():
    model = NeuralSDE(2, width=16, noise_scale=0.3, key=jr.key(0))

    def path(k):
        traj = ds.simulate(
            model, (0.0, 2.0), y0=[0.5, -0.5], saveat=21, dt0=0.01, key=jr.key(k)
        )
        return np.asarray(traj.ys)

    assert np.array_equal(path(1), path(1))
    assert np.abs(path(1) - path(2)).max() > 1e-2


def test_fit_bad_input():
    model = NeuralODE(2, width=8, key=jr.key(0))
    ts, y0, ys = spiral(4, 0)
    with pytest.raises(ValueError, match="reverse-mode"):
        ds.fit(model, (ts, y0, ys), adjoint="forward")
    with pytest.raises(ValueError, match="targets y must be"):
        ds.fit(model, (ts, y0, ys[0]))
    with pytest.raises(ValueError, match="batch size"):
        ds.fit(model, (ts, y0[:3], ys))
    with pytest.raises(ValueError, match="times of y"):
        ds.fit(model, (ts[:-1], y0, ys))
    with pytest.raises(ValueError, match="batch_size"):
        ds.fit(model, (ts, y0, ys), batch_size=9)
    with pytest.raises(ValueError, match="needs a key"):
        NeuralODE(2)
