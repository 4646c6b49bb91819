"""The unrolled explicit RK solvers reproduce diffrax's own to round-off, and in
single precision sum their steps with compensation."""

import diffrax as dfx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dynsim as ds
from dynsim._precision import to_single
from dynsim.models import HopfNormalForm, Lorenz
from dynsim.solvers._unrolled import (
    UnrolledDopri5,
    UnrolledDopri8,
    UnrolledTsit5,
    compensated,
)


@pytest.mark.parametrize(
    "ours, theirs",
    [
        (UnrolledTsit5(), dfx.Tsit5()),
        (UnrolledDopri5(), dfx.Dopri5()),
        (UnrolledDopri8(), dfx.Dopri8()),
    ],
)
def test_same_steps_same_solution_same_dense_output(ours, theirs):
    model = Lorenz()
    term = dfx.ODETerm(lambda t, y, args: model.vector_field(t, y, args))
    kwargs = dict(
        t0=0.0,
        t1=3.0,
        dt0=None,
        y0=jnp.array([1.0, 0.0, 0.0]),
        stepsize_controller=dfx.PIDController(rtol=1e-8, atol=1e-8),
        saveat=dfx.SaveAt(ts=jnp.linspace(0.0, 3.0, 37), dense=True),
    )
    a = dfx.diffeqsolve(term, ours, **kwargs)
    b = dfx.diffeqsolve(term, theirs, **kwargs)
    assert int(a.stats["num_steps"]) == int(b.stats["num_steps"])
    assert int(a.stats["num_rejected_steps"]) == int(b.stats["num_rejected_steps"])
    assert np.allclose(np.asarray(a.ys), np.asarray(b.ys), rtol=1e-11, atol=1e-11)
    t = jnp.array(1.2345)
    assert np.allclose(
        np.asarray(a.evaluate(t)), np.asarray(b.evaluate(t)), rtol=1e-11, atol=1e-11
    )


def test_jump_recomputes_first_stage():
    # A vector field with a discontinuity at t = 1, declared as a jump: the stored
    # last stage must not be reused across it.
    term = dfx.ODETerm(lambda t, y, args: jnp.where(t < 1.0, 1.0, -2.0) * jnp.ones(1))
    kwargs = dict(
        t0=0.0,
        t1=2.0,
        dt0=0.1,
        y0=jnp.zeros(1),
        stepsize_controller=dfx.PIDController(rtol=1e-8, atol=1e-8, jump_ts=[1.0]),
    )
    sol = dfx.diffeqsolve(term, UnrolledTsit5(), **kwargs)
    assert float(sol.ys[-1, 0]) == pytest.approx(1.0 - 2.0, abs=1e-10)


def test_single_precision_steps_sum_with_compensation():
    # x' = -ω y, y' = ω x from (1, 0): x = cos ωt, y = sin ωt (the closed form, at ω
    # rounded to float32, the ω the solves see). In 20 000 fixed steps of 1e-3
    # Tsit5's truncation error is ~1e-14 (the float64 solve below), so a float32
    # solve's error is round-off. Summed plainly (diffrax's own Tsit5) the state's
    # rounding errors add up step after step; summed with compensation (ours, on
    # both of dynsim's paths) only the increments' own rounding remains.
    omega = np.linspace(1.0, 3.0, 64, dtype=np.float32)
    t1, w = 20.0, omega.astype(np.float64)
    exact = np.stack([np.cos(w * t1), np.sin(w * t1)], axis=-1)
    term = dfx.ODETerm(lambda t, y, w: jnp.stack([-w * y[1], w * y[0]]))

    def solve(solver, dtype):
        def one(w):
            return dfx.diffeqsolve(
                term, solver, jnp.asarray(0.0, dtype), jnp.asarray(t1, dtype),
                jnp.asarray(1e-3, dtype), jnp.array([1.0, 0.0], dtype), w,
                max_steps=20_001,
            ).ys[-1]  # fmt: skip

        out = jax.jit(jax.vmap(one))(jnp.asarray(omega, dtype))
        return np.max(np.abs(np.asarray(out, np.float64) - exact))

    rotation = HopfNormalForm(mu=0.0, a=0.0)
    scan = ds.scan(
        rotation, {"omega": omega}, (0.0, t1), y0=np.array([1.0, 0.0]),
        adaptive=False, dt0=1e-3, precision="single", executor="ensemble",
        progress=False,
    )  # fmt: skip
    assert scan.ys.dtype == np.float32
    executor = np.max(np.abs(scan.ys[:, -1] - exact))
    ours, plain = solve(UnrolledTsit5(), jnp.float32), solve(dfx.Tsit5(), jnp.float32)
    assert solve(UnrolledTsit5(), jnp.float64) < 1e-12  # (truncation: negligible)
    assert ours < 2e-6 and executor < 2e-6  # ≈ 15 float32 epsilons
    assert plain > 4 * max(ours, executor)
    # Double precision sums plainly: its solver state is the last stage alone.
    y64 = jnp.zeros(2)
    assert compensated(jnp.zeros(2, jnp.float32)) and not compensated(y64)
    assert jax.tree.structure(UnrolledTsit5().init(term, 0.0, 1.0, y64, 1.0)) == (
        jax.tree.structure(y64)
    )


def test_single_precision_carried_stage_is_that_of_the_new_state():
    # FSAL: the last stage of a step is f at the new state, carried over as the next
    # step's first. With compensated sums it must be evaluated at the compensated
    # y1 (not at the plain sum, an ulp away), so that reusing it (the generic path)
    # and evaluating it afresh at the step's start (the ensemble executor) agree.
    model = to_single(Lorenz())
    term = dfx.ODETerm(lambda t, y, args: model.vector_field(t, y, args))
    solver, dt = UnrolledTsit5(), jnp.float32(1e-3)
    t, y = jnp.float32(0.0), jnp.array([1.0, 1.0, 1.0], jnp.float32)
    state = solver.init(term, t, t + dt, y, None)
    # (Compiled, as every solve runs them: a step, and f alone.)
    step = jax.jit(
        lambda t, y, state: solver.step(term, t, t + dt, y, None, state, False)
    )
    f = jax.jit(lambda t, y: term.vf(t, y, None))
    for _ in range(300):
        y, _, _, state, _ = step(t, y, state)
        t = t + dt
        assert np.array_equal(state[0], f(t, y))
    assert np.any(state[1] != 0)  # (the sums did lose bits)
