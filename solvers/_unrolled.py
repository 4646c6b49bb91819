"""Explicit Runge–Kutta solvers with their stages unrolled into straight-line code.

diffrax's general Runge–Kutta implementation runs the stages of a step in a loop
(`eqxi.while_loop`), which serves implicit, IMEX and SDE methods and reverse-mode
autodiff with one code path. For explicit methods on ODEs the stage loop is pure
overhead on the CPU, where XLA pays a dispatch cost per loop iteration and cannot
fuse across iterations: with the stages unrolled at trace time the whole step is one
fused computation. Same tableau, same error estimate, same dense output (diffrax's
interpolation formulas, evaluated with elementwise multiply-adds instead of a batched
contraction over the stages), so results agree with diffrax's solvers to round-off.

In single precision a step adds its increment to the state with compensated
summation (Kahan 1965; for Runge–Kutta steps e.g. Hairer, Lubich & Wanner,
*Geometric Numerical Integration*, 2nd ed., §VIII.5): the low bits that rounding
`y + Δy` loses are carried in the solver's state and added to the next increment.
Without it the state's round-off grows with every step (≈ 2e-5 after a thousand
steps of a Lorenz orbit in float32, as large as the error a 1e-6 tolerance
allows); with it, about a tenth of that. Double precision keeps the plain sum:
its round-off is far below any tolerance a solve can ask for.
"""

from collections.abc import Callable
from typing import Any, ClassVar

import diffrax as dfx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
from equinox import AbstractClassVar


def _lincomb(coeffs, ks):
    """Σ c_j k_j over the nonzero coefficients (PyTree-wise)."""
    terms = [(float(c), k) for c, k in zip(coeffs, ks, strict=False) if c != 0.0]
    if not terms:
        return jtu.tree_map(jnp.zeros_like, ks[0])

    def combine(*leaves):
        out = terms[0][0] * leaves[0]
        for (c, _), leaf in zip(terms[1:], leaves[1:], strict=True):
            out = out + c * leaf
        return out

    return jtu.tree_map(combine, *(k for _, k in terms))


def compensated(y: Any) -> bool:
    """Whether a step of state `y` sums with compensation (module doc): where any
    of its floating-point numbers is narrower than float64 (then all of them are)."""
    return any(
        jnp.finfo(x.dtype).bits < 64
        for x in jtu.tree_leaves(y)
        if jnp.issubdtype(x.dtype, jnp.inexact)
    )


def compensated_add(y, increment, lost):
    """`y + increment` with compensated summation: `(sum, lost)`, where `lost` (in
    and out) is what rounding the sums has lost so far, negated (Kahan); with
    `lost` None, the plain sum (and None)."""
    if lost is None:
        return jtu.tree_map(jnp.add, y, increment), None
    d = jtu.tree_map(jnp.subtract, increment, lost)
    total = jtu.tree_map(jnp.add, y, d)
    lost = jtu.tree_map(lambda t, y, d: (t - y) - d, total, y, d)
    return total, lost


class AbstractUnrolledERK(dfx.AbstractAdaptiveSolver):
    """An explicit Runge–Kutta method for ODEs with unrolled stages.

    Subclasses name the diffrax solver whose tableau, order and interpolation they
    reuse, as the class variable `reference`.
    """

    reference: AbstractClassVar[type[dfx.AbstractERK]]
    term_structure: ClassVar = dfx.AbstractTerm
    interpolation_cls: AbstractClassVar[Callable[..., Any]]

    def order(self, terms):
        return self.reference().order(terms)

    def func(self, terms, t0, y0, args):
        return terms.vf(t0, y0, args)

    def init(self, terms, t0, t1, y0, args):
        # Evaluated once here; every later step reuses the last stage (FSAL). In
        # single precision the state also holds the sums' lost bits (module doc).
        stage = terms.vf(t0, y0, args)
        if compensated(y0):
            return stage, jtu.tree_map(lambda x: jnp.zeros(jnp.shape(x), x.dtype), y0)
        return stage

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        tab = self.reference.tableau
        dt = terms.contr(t0, t1)
        lost = None
        if compensated(y0):
            solver_state, lost = solver_state
        # After a jump in the vector field the stored last stage is stale.
        f0 = jax.lax.cond(
            made_jump,
            lambda: terms.vf(t0, y0, args),
            lambda: solver_state,
        )
        ks = [terms.prod(f0, dt)]
        f = f0
        y1 = None
        for i, (c, a_row) in enumerate(zip(tab.c, tab.a_lower, strict=True)):
            if lost is not None and tab.fsal and i == len(tab.c) - 1:
                # The last stage of an FSAL pair is evaluated at the new state (its
                # row of `a` is `b_sol`): at the compensated sum, so that the stage
                # carried to the next step is f(t1, y1), as a fresh one would be.
                y1, lost = compensated_add(y0, _lincomb(tab.b_sol, ks), lost)
                yi = y1
            else:
                yi = jtu.tree_map(jnp.add, y0, _lincomb(a_row, ks))
            f = terms.vf(t0 + c * dt, yi, args)
            ks.append(terms.prod(f, dt))
        if y1 is None:
            y1, lost = compensated_add(y0, _lincomb(tab.b_sol, ks), lost)
        y_error = _lincomb(tab.b_error, ks)
        k = jtu.tree_map(lambda *x: jnp.stack(x), *ks)
        if tab.fsal:
            f1 = f
        else:
            f1 = terms.vf(t1, y1, args)
        dense_info = dict(y0=y0, y1=y1, k=k)
        state = f1 if lost is None else (f1, lost)
        return y1, y_error, dense_info, state, dfx.RESULTS.successful


def explicit_runge_kutta(solver: dfx.AbstractSolver) -> bool:
    """Whether `solver` is an explicit Runge–Kutta method (diffrax's, or unrolled)."""
    return isinstance(solver, (dfx.AbstractERK, AbstractUnrolledERK))


def _weighted_sum(weights, k):
    """Σ_j w_j k_j over the stage axis, as elementwise multiply-adds: on a CPU a
    batched contraction over seven stages is far slower than seven fused FMAs."""

    def one(leaf):
        out = weights[0] * leaf[0]
        for j in range(1, len(weights)):
            out = out + weights[j] * leaf[j]
        return out

    return jtu.tree_map(one, k)


def _fraction(t0, t, t1):
    """(t − t0)/(t1 − t0), and 0 on a step of zero length (with a safe gradient)."""
    empty = t1 == t0
    return jnp.where(empty, 0.0, (t - t0) / jnp.where(empty, 1.0, t1 - t0))


class _Tsit5Interpolation(dfx.AbstractLocalInterpolation):
    """Tsit5's dense output (Tsitouras 2011, the 4th-order continuous extension,
    coefficients as in diffrax), evaluated with elementwise multiply-adds."""

    t0: Any
    t1: Any
    y0: Any
    k: Any

    def __init__(self, *, t0, t1, y0, y1, k):
        del y1
        self.t0, self.t1, self.y0, self.k = t0, t1, y0, k

    def evaluate(self, t0, t1=None, left=True):
        del left
        if t1 is not None:
            return jtu.tree_map(jnp.subtract, self.evaluate(t1), self.evaluate(t0))
        t = _fraction(self.t0, t0, self.t1)
        t2 = t * t
        b = [
            -1.0530884977290216
            * t
            * (t - 1.3299890189751412)
            * (t2 - 1.4364028541716351 * t + 0.7139816917074209),
            0.1017 * t2 * (t2 - 2.1966568338249754 * t + 1.2949852507374631),
            2.490627285651252793
            * t2
            * (t2 - 2.38535645472061657 * t + 1.57803468208092486),
            -16.54810288924490272
            * (t - 1.21712927295533244)
            * (t - 0.61620406037800089)
            * t2,
            47.37952196281928122
            * (t - 1.203071208372362603)
            * (t - 0.658047292653547382)
            * t2,
            -34.87065786149660974 * (t - 1.2) * (t - 0.666666666666666667) * t2,
            2.5 * (t - 1) * (t - 0.6) * t2,
        ]
        return jtu.tree_map(jnp.add, self.y0, _weighted_sum(b, self.k))


class _Dopri5Interpolation(dfx.AbstractLocalInterpolation):
    """Dopri5's dense output (Shampine 1986's fourth-order polynomial through the
    step's ends, end slopes and a midpoint, as in diffrax), with the midpoint formed
    by elementwise multiply-adds."""

    t0: Any
    t1: Any
    coeffs: Any

    def __init__(self, *, t0, t1, y0, y1, k):
        c_mid = [float(c) for c in dfx.Dopri5.interpolation_cls.c_mid]

        def calculate(y0_, y1_, k_):
            ymid = y0_ + _weighted_sum(c_mid, k_)
            f0, f1 = k_[0], k_[-1]
            a = 2 * (f1 - f0) - 8 * (y1_ + y0_) + 16 * ymid
            b = 5 * f0 - 3 * f1 + 18 * y0_ + 14 * y1_ - 32 * ymid
            c = f1 - 4 * f0 - 11 * y0_ - 5 * y1_ + 16 * ymid
            return (a, b, c, f0, y0_)

        self.t0, self.t1 = t0, t1
        self.coeffs = jtu.tree_map(calculate, y0, y1, k)

    def evaluate(self, t0, t1=None, left=True):
        del left
        if t1 is not None:
            return jtu.tree_map(jnp.subtract, self.evaluate(t1), self.evaluate(t0))
        t = _fraction(self.t0, t0, self.t1)
        return jtu.tree_map(
            lambda a, b, c, d, e: (((a * t + b) * t + c) * t + d) * t + e,
            *self._leaves(),
        )

    def _leaves(self):
        structure = jtu.tree_structure(self.coeffs, is_leaf=_is_quintuple)
        parts = jtu.tree_leaves(self.coeffs, is_leaf=_is_quintuple)
        return [jtu.tree_unflatten(structure, [p[i] for p in parts]) for i in range(5)]


def _is_quintuple(x) -> bool:
    return isinstance(x, tuple) and len(x) == 5


class UnrolledTsit5(AbstractUnrolledERK):
    """Tsitouras' 5(4) pair (Tsitouras 2011) with unrolled stages; see module doc."""

    reference: ClassVar = dfx.Tsit5
    interpolation_cls: ClassVar = _Tsit5Interpolation


class UnrolledDopri5(AbstractUnrolledERK):
    """Dormand–Prince 5(4) (Dormand & Prince 1980) with unrolled stages."""

    reference: ClassVar = dfx.Dopri5
    interpolation_cls: ClassVar = _Dopri5Interpolation


class UnrolledDopri8(AbstractUnrolledERK):
    """Dormand–Prince 8(5,3) (Prince & Dormand 1981; Hairer, Nørsett & Wanner's
    DOP853) with unrolled stages; its dense output is diffrax's."""

    reference: ClassVar = dfx.Dopri8
    interpolation_cls: ClassVar = dfx.Dopri8.interpolation_cls
