"""The unrolled explicit RK solvers reproduce diffrax's own to round-off."""

import diffrax as dfx
import jax.numpy as jnp
import numpy as np
import pytest

from dynsim.models import Lorenz
from dynsim.solvers._unrolled import UnrolledDopri5, UnrolledTsit5


@pytest.mark.parametrize(
    "ours, theirs", [(UnrolledTsit5(), dfx.Tsit5()), (UnrolledDopri5(), dfx.Dopri5())]
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
