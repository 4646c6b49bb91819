"""Poincaré sections as a running observable: the crossings of a hyperplane
y[state] = value, located inside the solver loop on each step's dense interpolant and
written into a fixed-size record (no per-trajectory buffer of `max_steps` states), so
that a scan of a million trajectories returns each one's first crossings.
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp

from dynsim.solvers import Record

from ._observables import (
    AbstractRunningObservable,
    StateSelector,
    _optional_float,
)

#: Newton steps on a bracket's cubic from the linear guess: the cubic is nearly
#: linear across a bracket that a step's error control accepts, so a few steps
#: reach round-off.
NEWTON_STEPS = 6


def _hermite_root(a, b, da, db):
    """The root in [0, 1] of the cubic Hermite polynomial with values a, b and
    slopes da, db (per unit of the bracket) at 0 and 1, by Newton's method from the
    linear guess, kept in the bracket."""
    s = jnp.clip(a / jnp.where(a != b, a - b, 1.0), 0.0, 1.0)
    for _ in range(NEWTON_STEPS):
        s2, s3 = s * s, s * s * s
        p = ((2 * s3 - 3 * s2 + 1) * a + (s3 - 2 * s2 + s) * da
             + (-2 * s3 + 3 * s2) * b + (s3 - s2) * db)  # fmt: skip
        dp = ((6 * s2 - 6 * s) * a + (3 * s2 - 4 * s + 1) * da
              + (-6 * s2 + 6 * s) * b + (3 * s2 - 2 * s) * db)  # fmt: skip
        s = jnp.clip(s - p / jnp.where(dp != 0, dp, 1.0), 0.0, 1.0)
    return s


def _direction(d: int) -> int:
    d = int(d)
    if d not in (-1, 0, 1):
        raise ValueError(f"direction must be +1, -1 or 0 (both), got {d}")
    return d


class Section(AbstractRunningObservable):
    """The first `max_crossings` crossings of the hyperplane y[`state`] = `value`
    within the window, in `direction` (+1: y[state] increasing through `value`, −1:
    decreasing, 0: both).

    Each step's interpolant is sampled (`dynsim.solvers.SAMPLES_PER_STEP` brackets
    per step, values and slopes); a bracket whose ends lie on the two sides holds a
    crossing, located as the root of the cubic Hermite polynomial of the bracket's
    values and slopes (Newton's method, kept in the bracket), which differs from the
    interpolant by O(h⁴) on a bracket of length h: below the solve's own error, as
    for `Peaks`. The whole state there is the interpolant's.

    **Value:** `(max_crossings, 1 + states)`: per crossing, its time and then the
    state, in time order; rows past the last crossing are NaN. For maps the segment
    between two iterates is a straight line.
    """

    state: StateSelector = eqx.field(default=None, static=True)
    value: float = eqx.field(default=0.0, static=True, converter=float)
    direction: int = eqx.field(default=1, static=True, converter=_direction)
    max_crossings: int = eqx.field(default=64, static=True)
    t_from: float | None = eqx.field(
        default=None, static=True, converter=_optional_float
    )

    componentwise: ClassVar[bool] = False
    needs_state: ClassVar[bool] = True
    #: `init` sees the whole state (its rows hold every component).
    whole_state: ClassVar[bool] = True

    def __check_init__(self):
        if self.max_crossings < 1:
            raise ValueError(f"max_crossings must be >= 1, got {self.max_crossings}")

    def numbers(self, selected, state_size):
        return self.max_crossings * (1 + state_size)

    def init(self, t0, y0, discrete):
        rows = jnp.full((self.max_crossings, 1 + y0.size), jnp.nan, y0.dtype)
        return dict(rows=Record(rows), count=jnp.asarray(0, jnp.int32))

    def update(self, carry, segment, samples, select):
        s = samples
        g, dg = s.ys[:, 0] - self.value, s.ds[:, 0]
        rows, count = carry["rows"], carry["count"]
        for i in range(s.ts.shape[0] - 1):
            a, b = g[i], g[i + 1]
            up, down = (a < 0) & (b >= 0), (a > 0) & (b <= 0)
            hit = {1: up, -1: down, 0: up | down}[self.direction]
            hit = hit & s.valid[i] & s.valid[i + 1]
            ta, tb = s.ts[i], s.ts[i + 1]
            if segment.discrete:  # a straight line between the iterates
                frac = jnp.clip(a / jnp.where(a != b, a - b, 1.0), 0.0, 1.0)
            else:
                h = tb - ta
                frac = _hermite_root(a, b, dg[i] * h, dg[i + 1] * h)
            t = ta + frac * (tb - ta)
            slot = jnp.where(hit & (count < self.max_crossings), count,
                             self.max_crossings)  # fmt: skip
            rows = rows.write(slot, jnp.concatenate([t[None], segment.evaluate(t)]))
            count = count + hit.astype(jnp.int32)
        return dict(rows=rows, count=count)

    def finish(self, carry):
        return carry["rows"].data
