"""Values that XLA computes once, or together.

XLA's CPU compiler fuses elementwise operations into loops and, to do so, copies a
cheap producer (additions and multiplications: a Runge–Kutta stage, a sample of the
dense output) into every loop that reads it. For a plain step this is the fastest
code — the stages never leave the registers — but when many loops read the same
values (the dense output sampled by running reductions, saved or tested for an
event) the recomputation multiplies: a step's stages were computed again for every
sample, component and consumer.

XLA does not copy an expensive operation, a division, into several consumers.
`computed_once` divides each value by a one computed from the value itself
(`x / (NaN if x is NaN else 1)`, the identity for every float, infinities
included), which XLA cannot fold away: it computes the values once and keeps them
in memory, bit for bit unchanged.

Outputs that share their producers are the other case: a Runge–Kutta step's new
state, error estimate and stages (its dense output), component by component, all
read the same stages, and XLA's CPU compiler, which has no multi-output loop fusion,
emits one loop per output with every stage copied into it (or, with
`computed_once`, one loop per stage and component). `computed_together` makes them
the outputs of one operation that XLA emits as one loop: a variadic reduction
(`lax.reduce` of several operands) of each value, padded with −∞, under `max` (the
identity for every float: NaN stays NaN, −0 stays −0; integers are padded with their
least value and booleans with False). The producers are fused into that one loop,
where the compiler computes the shared stages once for all outputs. It is written
for one lane's values (vmapped over lanes, every number of a lane is one operand),
and it pays where a lane's arithmetic is on scalars
(`componentwise`): a vector field written as arithmetic on state vectors (`jnp.roll`
of the state, a matrix product) leaves pieces of the step that XLA does not fuse
into the one loop, and without `computed_once` these are copied into every loop
that reads them (Lorenz96 with a running observable: 2.5× slower). The executor's
Lorenz step (E1) went from 57 to 36 ns per lane-step with it, and a step sampled by
a running observable (E2) from 63 to 48 ns. The executor also computes a whole lane
this way where it takes two steps per loop iteration (`_ensemble.py`).

A power of a constant fractional exponent (a step-size controller's
`(1/error) ** (1/5)`) is a call of the C library's `pow` for every number on
XLA's CPU backend, which does not vectorise it: 7–9 ns, a fifth of the
executor's Lorenz step. `cheap_powers` computes such powers as `exp(c · log x)`,
which XLA vectorises (3.4 ns), to a few units in the last place. XLA's `log` of a
float64 is again a call of the C library's, one number at a time (≈ 8 % of E1's
executor at N = 1 024, sampled with `perf`), so for float64 `log64` computes it
with arithmetic that XLA vectorises: fdlibm's algorithm, within an ulp.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.extend.core as jex
import jax.numpy as jnp
import jax.tree_util as jtu
from jaxtyping import Array, PyTree


def computed_once(tree: PyTree[Array]) -> PyTree[Array]:
    """`tree`, the same numbers, computed once by XLA instead of inside every loop
    that reads them (module doc)."""

    def leaf(x):
        x = jnp.asarray(x)
        if not jnp.issubdtype(x.dtype, jnp.inexact):
            return x
        return x / jnp.where(jnp.isnan(x), jnp.nan, 1.0).astype(x.dtype)

    return jtu.tree_map(leaf, tree)


#: The most numbers `computed_together` puts in one loop (per lane).
TOGETHER_MAX = 256


#: Primitives that only move numbers (a componentwise function may apply them to
#: arrays).
_MOVES = frozenset(
    {
        "slice",
        "squeeze",
        "reshape",
        "concatenate",
        "stack",
        "split",
        "transpose",
        "rev",
        "gather",
        "dynamic_slice",
        "broadcast_in_dim",
        "expand_dims",
        "convert_element_type",
        "copy",
        "copy_p",
    }
)


def componentwise(fn, *args) -> bool:
    """Whether `fn(*args)` does its arithmetic on scalars: every operation of its
    trace whose result is an array only moves numbers (slicing, stacking,
    reshaping, converting) — as a vector field written component by component
    does, and one that computes with whole state vectors does not."""

    def scalar(jaxpr) -> bool:
        for eqn in jaxpr.eqns:
            # (Sub-programs: a jit's, a cond's branches, a loop's body.)
            values = [
                w
                for v in eqn.params.values()
                for w in (v if isinstance(v, (tuple, list)) else (v,))
            ]
            subs = [
                v.jaxpr if isinstance(v, jex.ClosedJaxpr) else v
                for v in values
                if isinstance(v, (jex.Jaxpr, jex.ClosedJaxpr))
            ]
            if subs:
                if not all(scalar(sub) for sub in subs):
                    return False
            elif eqn.primitive.name not in _MOVES and any(
                jnp.ndim(v.aval) > 0 for v in eqn.outvars if hasattr(v, "aval")
            ):
                return False
        return True

    return scalar(jax.make_jaxpr(fn)(*args).jaxpr)


def _real(dtype) -> bool:
    """Whether `computed_together` takes numbers of `dtype`: real floats,
    integers and booleans."""
    return _floating(dtype) or jnp.issubdtype(dtype, jnp.integer) or dtype == jnp.bool_


def _numbers(tree: PyTree) -> int:
    return sum(
        math.prod(jnp.shape(x))
        for x in jtu.tree_leaves(tree)
        if _real(jnp.result_type(x))
    )


def fits_together(tree: PyTree) -> bool:
    """Whether `computed_together` computes `tree` (arrays or their shapes) in one
    loop: at most `TOGETHER_MAX` real numbers (floats, integers, booleans)."""
    return 0 < _numbers(tree) <= TOGETHER_MAX


def computed_together(tree: PyTree[Array]) -> PyTree[Array]:
    """`tree`, the same numbers, its real leaves (floats, integers, booleans)
    computed in one loop by XLA (module doc): for one lane's several outputs of the
    same producers, under `jax.vmap` over the lanes. Trees of more than
    `TOGETHER_MAX` real numbers are returned as they are, and so are leaves of
    size 0."""
    if not fits_together(tree):
        return tree
    leaves, treedef = jtu.tree_flatten(tree)
    leaves = [jnp.asarray(x) for x in leaves]
    real = [i for i, x in enumerate(leaves) if _real(x.dtype) and x.size]
    # XLA reduces the floats of one precision together: one reduction per
    # floating-point type, the integers and booleans with the first.
    first = next((leaves[i].dtype for i in real if _floating(leaves[i].dtype)), None)

    def group(dtype):
        return dtype if _floating(dtype) else first

    groups: dict[Any, list[Array]] = {}
    for i in real:
        groups.setdefault(group(leaves[i].dtype), []).extend(jnp.ravel(leaves[i]))
    reduced = {key: iter(_together(numbers)) for key, numbers in groups.items()}
    for i in real:
        numbers = reduced[group(leaves[i].dtype)]
        parts = [next(numbers) for _ in range(math.prod(leaves[i].shape))]
        leaves[i] = jnp.stack(parts).reshape(leaves[i].shape)
    return jtu.tree_unflatten(treedef, leaves)


def _floating(dtype) -> bool:
    return jnp.issubdtype(dtype, jnp.floating)


def _least(dtype) -> Array:
    """The identity of `max` in `dtype`: −∞, the least integer, False."""
    if _floating(dtype):
        return jnp.array(-jnp.inf, dtype)
    if dtype == jnp.bool_:
        return jnp.array(False)
    return jnp.array(jnp.iinfo(dtype).min, dtype)


def _together(numbers: list[Array]) -> tuple[Array, ...]:
    """`numbers` (scalars) as the outputs of one reduction under `max`: one
    operand per number (the operands of a reduction share a shape), padded with
    max's identity to two numbers along a new axis, which the reduction removes."""
    operands = tuple(
        jax.lax.pad(x[None], _least(x.dtype), [(0, 1, 0)]) for x in numbers
    )
    inits = tuple(_least(x.dtype) for x in numbers)

    def largest(a, b):
        return tuple(jnp.maximum(u, v) for u, v in zip(a, b, strict=True))

    return tuple(jax.lax.reduce(operands, inits, largest, (0,)))


# fdlibm's e_log.c (Sun Microsystems, 1993; as in musl): the coefficients of the
# minimax polynomial R(z) ≈ (log((1 + s) / (1 - s)) - 2s) / s, z = s², on
# |s| ≤ 0.1716 (error < 2^-58.45), and log 2 in a high part with 32 trailing zero
# bits (k · _LN2_HI is exact) and the rest.
_LG = (
    6.666666666666735130e-01,
    3.999999999940941908e-01,
    2.857142874366239149e-01,
    2.222219843214978396e-01,
    1.818357216161805012e-01,
    1.531383769920937332e-01,
    1.479819860511658591e-01,
)
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_SMALLEST_NORMAL = 2.2250738585072014e-308


@jax.custom_jvp
def log64(x: Array) -> Array:
    """`log(x)` of a float64 `x`, with arithmetic that XLA vectorises on a CPU
    (module doc), within an ulp of the C library's: fdlibm's algorithm. With
    x = 2^k (1 + f), √½ ≤ 1 + f < √2, and s = f / (2 + f),
    log(1 + f) = f − f²/2 + s (f²/2 + R(s²)) with R a minimax polynomial (`_LG`).
    −∞ at 0, +∞ at +∞, NaN for NaN and negative `x`; derivative 1/x."""
    normal = x >= _SMALLEST_NORMAL
    # (`jnp.frexp` takes every subnormal number for 2^-1075: scaled up first.)
    m, k = jnp.frexp(jnp.where(normal, x, x * 2.0**54))
    k = k - jnp.where(normal, 0, 54)
    low = m < math.sqrt(0.5)
    m = jnp.where(low, 2.0 * m, m)
    k = (k - low.astype(k.dtype)).astype(x.dtype)
    f = m - 1.0
    half_f2 = 0.5 * f * f
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    r = z * (_LG[0] + w * (_LG[2] + w * (_LG[4] + w * _LG[6]))) + w * (
        _LG[1] + w * (_LG[3] + w * _LG[5])
    )
    out = s * (half_f2 + r) + k * _LN2_LO - half_f2 + f + k * _LN2_HI
    out = jnp.where(x == jnp.inf, jnp.inf, out)
    out = jnp.where(x == 0, -jnp.inf, out)
    return jnp.where(x < 0, jnp.nan, out)


@log64.defjvp
def _log64_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    return log64(x), dx / x


def cheap_powers(fn: Callable) -> Callable:
    """`fn`, with every power `x ** c` of a real `x` and a constant exponent `c`
    that is not a multiple of 1/2 computed as `exp(c · log x)` (module doc): the
    same number to a few units in the last place (more where |c log x| is large),
    and the same for 0, +∞, NaN and negative `x` (NaN; at −∞ too, where C's `pow`
    gives ±∞ or 0); its derivative at 0 and +∞ is NaN. Powers with a traced
    exponent, and those XLA rewrites itself (`x ** 2`, `x ** 0.5`, ...), are left
    alone, as is everything inside loops, conditionals and custom derivatives of
    `fn`. Arguments and results are any PyTrees; the arrays among the arguments
    are traced, everything else is passed as it is."""

    @functools.wraps(fn)
    def wrapped(*args):
        dynamic, static = eqx.partition(args, eqx.is_array)
        leaves, treedef = jtu.tree_flatten(dynamic)
        out_static = []

        def flat_fn(*leaves):
            out = fn(*eqx.combine(jtu.tree_unflatten(treedef, leaves), static))
            out_dynamic, rest = eqx.partition(out, eqx.is_array)
            out_static.append(rest)
            return out_dynamic

        closed, out_struct = jax.make_jaxpr(flat_fn, return_shape=True)(*leaves)
        out = _with_cheap_powers(closed.jaxpr, closed.consts, leaves)
        out = jtu.tree_unflatten(jtu.tree_structure(out_struct), out)
        return eqx.combine(out, out_static[0])

    return wrapped


def _with_cheap_powers(jaxpr: jex.Jaxpr, consts: Sequence, args: Sequence) -> list:
    """Evaluate `jaxpr`, with its (and its inner jits') powers rewritten."""
    env: dict[Any, Any] = {}

    def read(v):
        return v.val if isinstance(v, jex.Literal) else env[v]

    env.update(zip(jaxpr.constvars, consts, strict=True))
    env.update(zip(jaxpr.invars, args, strict=True))
    for eqn in jaxpr.eqns:
        values = [read(v) for v in eqn.invars]
        inner = eqn.params.get("jaxpr")
        if eqn.primitive is jax.lax.pow_p and _fractional(eqn.invars):
            x, c = values  # (`c` a Python float: `x`'s dtype and weak type kept)
            log = log64 if x.dtype == jnp.float64 else jnp.log
            out = [jnp.exp(float(c) * log(x))]
        elif eqn.primitive.name in ("jit", "pjit") and isinstance(
            inner, jex.ClosedJaxpr
        ):
            out = _with_cheap_powers(inner.jaxpr, inner.consts, values)
        else:
            # (JAX before 0.7 returns the sub-functions with the parameters.)
            bound = eqn.primitive.get_bind_params(eqn.params)
            subfuns, params = bound if isinstance(bound, tuple) else ((), bound)
            with eqn.ctx.manager:
                out = eqn.primitive.bind(*subfuns, *values, **params)
            if not eqn.primitive.multiple_results:
                out = [out]
        env.update(zip(eqn.outvars, out, strict=True))
    return [read(v) for v in jaxpr.outvars]


def _fractional(invars) -> bool:
    """Whether a `pow`'s operands are a real base and a constant exponent that is
    not a multiple of 1/2."""
    base, exponent = invars
    if not isinstance(exponent, jex.Literal):
        return False
    if not jnp.issubdtype(base.aval.dtype, jnp.floating):
        return False
    c = float(exponent.val)
    return math.isfinite(c) and not float(2 * c).is_integer()
