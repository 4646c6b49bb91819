"""`computed_once` and `computed_together` change no number, and
`computed_together` gives XLA's CPU backend one loop for several outputs;
`cheap_powers` computes `x ** c` as `exp(c · log x)` to a few units in the last
place, a float64 `log` with `log64`, within an ulp."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynsim.solvers import Problem, integrate, solve_options
from dynsim.solvers._fusion import (
    TOGETHER_MAX,
    cheap_powers,
    componentwise,
    computed_once,
    computed_together,
    fits_together,
    log64,
)

# (No subnormal numbers: XLA's CPU backend flushes them to zero in every
# arithmetic operation, diffrax's included.)
SPECIAL = [np.nan, -np.inf, np.inf, -0.0, 0.0, 1.5, -1024.0]


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32, jnp.float16])
@pytest.mark.parametrize("helper", [computed_once, computed_together])
def test_every_number_comes_back_bit_for_bit(helper, dtype):
    info = jnp.finfo(dtype)
    x = jnp.asarray(SPECIAL + [info.tiny, -info.max], dtype)
    other = jnp.float64 if dtype != jnp.float64 else jnp.float32
    tree = {
        "a": x,
        "b": (x[:3] * 2, jnp.arange(-2, 2), jnp.asarray([True, False])),
        "c": x.reshape(3, 3),
        "d": jnp.asarray([0, 255], jnp.uint8),
        "e": jnp.iinfo(jnp.int32).min + jnp.arange(2, dtype=jnp.int32),
        # (Another precision: XLA reduces each precision's floats apart.)
        "f": jnp.asarray(SPECIAL, other),
        # (Leaves without numbers: a run's input of shape (0,).)
        "g": (jnp.zeros((0,), dtype), jnp.zeros((2, 0), jnp.int32)),
    }
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
    assert not fits_together(jnp.ones(3, jnp.complex64))  # no real numbers
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


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
@pytest.mark.parametrize("c", [0.2, -1 / 3, 0.7])
def test_cheap_powers_agree_with_pow(dtype, c):
    info = jnp.finfo(dtype)
    low, high = np.log10(float(info.tiny)), np.log10(float(info.max))
    x = jnp.asarray(np.logspace(low + 1, high - 1, 20001), dtype)
    want = np.asarray(jax.jit(lambda x: x**c)(x), np.float64)
    got = np.asarray(jax.jit(cheap_powers(lambda x: x**c))(x), np.float64)
    assert got.dtype == want.dtype
    # exp(c log x) rounds log x once, and its error grows with |c log x|: within
    # (4 + 2 |c log x|) units in the last place (exact arithmetic: 1 + |c log x|).
    scale = 4 + 2 * np.abs(c * np.log(np.asarray(x, np.float64)))
    ok = np.isfinite(want) & (want > 0)
    assert ok.mean() > 0.9
    error = np.abs(got - want)[ok] / want[ok] / float(info.eps)
    assert np.all(error <= scale[ok]), float(np.max(error / scale[ok]))


def test_cheap_powers_special_values():
    x = jnp.asarray([0.0, -0.0, np.inf, np.nan, -1.0, 1.0])
    got = np.asarray(jax.jit(cheap_powers(lambda x: x**0.2))(x))
    np.testing.assert_array_equal(got, [0.0, 0.0, np.inf, np.nan, np.nan, 1.0])


def test_log64_is_within_an_ulp_of_log():
    # fdlibm's algorithm is within an ulp of the exact logarithm (e_log.c), as is
    # the C library's that XLA calls.
    x = np.concatenate([np.logspace(-307, 308, 40001), np.linspace(0.5, 2.0, 40001)])
    got = np.asarray(jax.jit(log64)(x))
    want = np.log(x)
    exact = want == 0.0  # (x = 1)
    assert np.array_equal(got[exact], want[exact])
    error = np.abs(got - want)[~exact] / np.spacing(np.abs(want[~exact]))
    assert error.max() <= 1.0, float(error.max())
    special = jnp.asarray([0.0, -0.0, np.inf, np.nan, -1.0, -np.inf, 1.0])
    np.testing.assert_array_equal(
        np.asarray(jax.jit(log64)(special)),
        [-np.inf, -np.inf, np.inf, np.nan, np.nan, np.nan, 0.0],
    )
    # Its derivative is log's, 1/x.
    assert float(jax.grad(log64)(2.0)) == 0.5
    grads = jax.vmap(jax.grad(log64))(jnp.asarray([0.25, 4.0]))
    np.testing.assert_array_equal(np.asarray(grads), [4.0, 0.25])


def test_cheap_powers_rewrites_only_constant_fractional_exponents():
    def fn(x, k, flag):
        inner = jax.jit(lambda y: y**0.2)  # (inside a jit too)
        return {"fifth": inner(x), "square": x**2.0, "root": x**0.5}, x**k, flag

    wrapped = cheap_powers(fn)
    jaxpr = str(jax.make_jaxpr(lambda x, k: wrapped(x, k, "kept")[:2])(2.0, 3.0))
    # x**2.0, x**0.5 (which XLA rewrites itself) and x**k keep their pow.
    assert len(re.findall(r"= pow ", jaxpr)) == 3
    assert "exp" in jaxpr and "log" in jaxpr
    out, traced, flag = wrapped(jnp.asarray(2.0), jnp.asarray(3.0), "kept")
    assert flag == "kept"  # (results that are not arrays come back as they are)
    np.testing.assert_allclose(float(out["fifth"]), 2.0**0.2, rtol=1e-15)
    assert float(out["square"]) == 4.0 and float(traced) == 8.0
    batched = jax.vmap(lambda x: wrapped(x, 3.0, None)[0]["fifth"])(jnp.arange(1.0, 4))
    np.testing.assert_allclose(np.asarray(batched), np.arange(1.0, 4) ** 0.2, 1e-15)
    # Arguments that are not arrays (a shape, a string) reach `fn` as they are.
    shape = jax.ShapeDtypeStruct((3,), jnp.float32)
    out = cheap_powers(lambda x, s: jnp.zeros(s.shape, s.dtype) + x**0.2)(2.0, shape)
    assert out.shape == (3,) and out.dtype == jnp.float32


def test_a_solve_whose_args_hold_a_shape():
    # The controller's arguments include the ODE's `args`, which may hold anything.
    problem = Problem("ode", lambda t, y, args: -args["k"] * y)
    args = {"k": jnp.asarray(1.0), "meta": jax.ShapeDtypeStruct((3,), jnp.float64)}
    sol = integrate(problem, jnp.ones(1), 0.0, 1.0, args, options=solve_options("ode"))
    np.testing.assert_allclose(np.asarray(sol.ys)[-1], np.exp(-1.0), rtol=1e-5)
