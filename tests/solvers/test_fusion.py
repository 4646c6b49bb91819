"""`computed_once` and `computed_together` change no number, and
`computed_together` gives XLA's CPU backend one loop for several outputs."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynsim.solvers._fusion import (
    TOGETHER_MAX,
    componentwise,
    computed_once,
    computed_together,
    fits_together,
)

# (No subnormal numbers: XLA's CPU backend flushes them to zero in every
# arithmetic operation, diffrax's included.)
SPECIAL = [np.nan, -np.inf, np.inf, -0.0, 0.0, 1.5, -1024.0]


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32, jnp.float16])
@pytest.mark.parametrize("helper", [computed_once, computed_together])
def test_every_number_comes_back_bit_for_bit(helper, dtype):
    info = jnp.finfo(dtype)
    x = jnp.asarray(SPECIAL + [info.tiny, -info.max], dtype)
    tree = {"a": x, "b": (x[:3] * 2, jnp.arange(4)), "c": x.reshape(3, 3)}
    out = jax.jit(helper)(tree)

    def bits(a):
        a = np.asarray(a)
        return a.view(np.dtype(f"u{a.dtype.itemsize}"))

    for got, want in zip(jax.tree.leaves(out), jax.tree.leaves(tree), strict=True):
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(bits(got), bits(want))


def test_too_many_numbers_pass_through_unchanged():
    big = jnp.ones(TOGETHER_MAX + 1)
    assert not fits_together(big) and fits_together(big[:TOGETHER_MAX])
    assert not fits_together(jnp.arange(3))  # no floating-point numbers
    assert computed_together(big) is big


def _loop_outputs(hlo: str) -> list[int]:
    """The number of arrays each fused loop of a compiled module writes."""
    counts = []
    for line in hlo.splitlines():
        m = re.match(r"\s*(?:ROOT )?%\S+ = (\(.*?\)|\S+) fusion\(", line)
        if m:
            shape = m.group(1)
            counts.append(shape.count("[") if shape.startswith("(") else 1)
    return counts


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="XLA's CPU fusion")
def test_shared_producers_make_one_loop_for_all_outputs():
    # Three outputs of one lane's chain of cheap producers (a stand-in for the
    # stages of a Runge–Kutta step), vmapped over lanes as the executor does: XLA
    # copies the chain into a loop per output, unless they are computed together.
    def outputs(x, together):
        k = x
        for i in range(6):
            k = x + 0.1 * (i + 1) * k * k
        out = (x + k, x - k, 2.0 * k)
        return computed_together(out) if together else out

    x = jnp.linspace(0.0, 1.0, 256)
    apart = jax.jit(jax.vmap(lambda x: outputs(x, False)))
    together = jax.jit(jax.vmap(lambda x: outputs(x, True)))
    assert _loop_outputs(apart.lower(x).compile().as_text()) == [1, 1, 1]
    assert _loop_outputs(together.lower(x).compile().as_text()) == [3]
    for u, v in zip(apart(x), together(x), strict=True):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))


def test_componentwise_tells_scalar_arithmetic_from_vector_arithmetic():
    from dynsim.models import Lorenz, Lorenz96

    def field(model):
        return lambda y: model.vector_field(0.0, y, None)

    assert componentwise(field(Lorenz()), jnp.ones(3))  # x, y, z one by one
    assert not componentwise(field(Lorenz96(n=4)), jnp.ones(4))  # jnp.roll(y)


def test_a_condition_branch_computing_on_vectors_is_seen():
    # (The condition's result is a scalar; its first branch computes on vectors.)
    def f(y):
        return jax.lax.cond(y[0] > 0, lambda y: (2.0 * y)[1], lambda y: y[0], y)

    assert not componentwise(f, jnp.ones(3))


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="XLA's CPU fusion")
def test_the_executor_computes_together_only_componentwise_fields():
    # Lorenz96's jnp.roll of the state ran 2.5x slower in one loop with a running
    # observable: its lanes keep one loop per stage.
    from dynsim._checks import options_for
    from dynsim.models import Lorenz, Lorenz96
    from dynsim.solvers import SaveSpec
    from dynsim.solvers._lanes import LaneProgram

    def program(model):
        options = options_for(model, saveat=SaveSpec(None), kind="ode")
        y0 = model.initial_state()
        return LaneProgram(
            lambda _: (model.problem(), y0), 0.0, 0.0, 1.0, None, options
        )

    assert program(Lorenz()).together
    assert not program(Lorenz96(n=4)).together
