"""diffeqsolve's rules for one step of a solve, written for one lane of the
ensemble executor: the wrapped term, the clipping of the last step to t1, saving at
given times from a step's dense output, and the sign change of an event condition.
"""

from __future__ import annotations

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
from jaxtyping import Array

from ._fusion import computed_once


class Wrapped(dfx.AbstractTerm):
    """A term wrapped as diffeqsolve wraps every term it is given (for the
    direction of time, here forwards): the same arithmetic, and the same first step
    (diffrax's PID controller selects one only for a bare `ODETerm` and starts
    every wrapped term with a step of 0.01). With `once`, every stage (`prod`) is
    computed once (`computed_once`)."""

    term: dfx.AbstractTerm
    once: bool = eqx.field(default=False, static=True)

    def vf(self, t, y, args):
        return self.term.vf(t, y, args)

    def contr(self, t0, t1, **kwargs):
        return self.term.contr(t0, t1, **kwargs)

    def prod(self, vf, control):
        out = self.term.prod(vf, control)
        return computed_once(out) if self.once else out


def clip_floor(t1: Array) -> Array:
    """`t1` less 100 units in the last place: the time from which diffeqsolve
    ends a step at `t1` (the same number as its 100 repeated
    `equinox.internal.prevbefore`, for any `t1` that is not subnormal, in one step
    of integer arithmetic on the bit patterns — 100 repeated steps make one
    fusion of some 1 700 operations for XLA to compile)."""
    t1 = jnp.asarray(t1)
    tiny = jnp.finfo(t1.dtype).tiny
    itype = {2: jnp.int16, 4: jnp.int32, 8: jnp.int64}[t1.dtype.itemsize]
    lowest = jnp.iinfo(itype).min

    def ordered(x):  # the bit pattern as an integer in the order of the floats
        bits = jax.lax.bitcast_convert_type(x, itype)
        return jnp.where(bits < 0, lowest - bits, bits)

    def unordered(i):
        bits = jnp.where(i < 0, lowest - i, i)
        return jax.lax.bitcast_convert_type(bits.astype(itype), t1.dtype)

    # prevbefore(0) is −tiny (not the largest negative subnormal).
    start = jnp.where(t1 == 0, ordered(-tiny) + 1, ordered(t1))
    return unordered(start - 100)


def clip_to_end(tprev, tnext, t1, t1_clip_floor, keep_step):
    # As diffeqsolve: a next step ending within ~100 ULP of t1 ends at t1.
    clip = tnext > t1_clip_floor
    tclip = jnp.where(keep_step, t1, tprev + 0.5 * (t1 - tprev))
    return jnp.where(clip, tclip, tnext)


def save_in_step(interpolator, ts, keep_step, tnext, index, ys):
    """The states at the save times this accepted step passed, from its dense
    output (as diffeqsolve's `SaveAt(ts=...)`)."""

    def cond(c):
        i, _ = c
        last = ts.shape[0] - 1
        return keep_step & (i <= last) & (ts[jnp.minimum(i, last)] <= tnext)

    def body(c):
        i, ys = c
        y = interpolator.evaluate(ts[i])
        return i + 1, jtu.tree_map(lambda b, v: b.at[i].set(v), ys, y)

    return jax.lax.while_loop(cond, body, (index, ys))


def event_mask(old, new, direction):
    if jnp.issubdtype(jnp.result_type(new), jnp.bool_):
        return jnp.asarray(new)
    if direction is None:
        return jnp.sign(old) != jnp.sign(new)
    if direction:
        return (jnp.sign(old) <= 0) & (jnp.sign(new) > 0)
    return (jnp.sign(old) > 0) & (jnp.sign(new) <= 0)
