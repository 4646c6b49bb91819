"""Explicit Runge–Kutta solvers with their stages unrolled into straight-line code.

diffrax's general Runge–Kutta implementation runs the stages of a step in a loop
(`eqxi.while_loop`), which serves implicit, IMEX and SDE methods and reverse-mode
autodiff with one code path. For explicit methods on ODEs the stage loop is pure
overhead on the CPU, where XLA pays a dispatch cost per loop iteration and cannot
fuse across iterations: with the stages unrolled at trace time the whole step is one
fused computation. Same tableau, same error estimate, same dense output (diffrax's own
interpolation classes), so results agree with diffrax's solvers to round-off.
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
        # Evaluated once here; every later step reuses the last stage (FSAL).
        return terms.vf(t0, y0, args)

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        tab = self.reference.tableau
        dt = terms.contr(t0, t1)
        # After a jump in the vector field the stored last stage is stale.
        f0 = jax.lax.cond(
            made_jump,
            lambda: terms.vf(t0, y0, args),
            lambda: solver_state,
        )
        ks = [terms.prod(f0, dt)]
        f = f0
        for c, a_row in zip(tab.c, tab.a_lower, strict=True):
            yi = jtu.tree_map(jnp.add, y0, _lincomb(a_row, ks))
            f = terms.vf(t0 + c * dt, yi, args)
            ks.append(terms.prod(f, dt))
        y1 = jtu.tree_map(jnp.add, y0, _lincomb(tab.b_sol, ks))
        y_error = _lincomb(tab.b_error, ks)
        k = jtu.tree_map(lambda *x: jnp.stack(x), *ks)
        if tab.fsal:
            f1 = f
        else:
            f1 = terms.vf(t1, y1, args)
        dense_info = dict(y0=y0, y1=y1, k=k)
        return y1, y_error, dense_info, f1, dfx.RESULTS.successful


class UnrolledTsit5(AbstractUnrolledERK):
    """Tsitouras' 5(4) pair (Tsitouras 2011) with unrolled stages; see module doc."""

    reference: ClassVar = dfx.Tsit5
    interpolation_cls: ClassVar = dfx.Tsit5.interpolation_cls


class UnrolledDopri5(AbstractUnrolledERK):
    """Dormand–Prince 5(4) (Dormand & Prince 1980) with unrolled stages."""

    reference: ClassVar = dfx.Dopri5
    interpolation_cls: ClassVar = dfx.Dopri5.interpolation_cls
