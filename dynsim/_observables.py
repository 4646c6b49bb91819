"""Observables: reductions of a trajectory computed inside a scan, so that a scan of a
million points returns a million small numbers instead of a million trajectories.

Every observable except `Function` is a *running* reduction
(`dynsim.solvers.AbstractReduction`): it is updated on every accepted step of the
solve from the solver's dense interpolant, inside the solver loop, and needs no saved
time series. Extrema, peaks, periods and crossings are located within each step
(bracketed by samples of the interpolant and refined by a root finder), so they are
exact to the accuracy of the solve, whatever the step sizes; time averages integrate
the interpolant by Gauss–Legendre quadrature. For maps the trajectory is the iterates
themselves.

An observable's window is `[t_from, t1]` (`t_from` None: the whole solve), so that
transients can be dropped. `Function` wraps any function of a sampled trajectory; it
sees `samples` evenly spaced samples (`dynsim.scan(..., samples=...)`).
"""

import abc
import functools
from collections.abc import Callable
from typing import Any, ClassVar

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PyTree

from dynsim.solvers import (
    QUADRATURE_WEIGHTS,
    Record,
    Segment,
    StepSamples,
    critical_points,
)

StateSelector = str | int | None


def _optional_float(x: Any) -> float | None:
    return None if x is None else float(x)


class AbstractObservable(eqx.Module):
    """What `dynsim.scan` can compute per point instead of returning trajectories.

    - `state`: which state component (a name from `model.state_names` or a flat
      index), or None for all of them.
    - `t_from`: start of the time window (None: the start of the solve).
    """

    state: eqx.AbstractVar[StateSelector]
    t_from: eqx.AbstractVar[float | None]


class AbstractRunningObservable(AbstractObservable):
    """An observable updated step by step during the solve.

    The contract, for the selected components `y` (a 1-D array, one entry per
    component) of a trajectory:

    - `init(t0, y0, discrete)` -> the carry at the start of the solve (`discrete`:
      the trajectory is a map's iterates);
    - `update(carry, segment, samples, select)` -> the carry after one more
      accepted step: `segment` is the step (a `dynsim.solvers.Segment` of the whole
      state), `samples` its `dynsim.solvers.StepSamples` within the window, of the
      selected components only, and `select(y)` picks the components of a whole
      state (`segment.y1`, say);
    - `finish(carry)` -> the value: one entry per selected component when
      `componentwise`.
    """

    #: Whether `finish` returns one value per selected component (a leading axis).
    componentwise: ClassVar[bool] = True
    #: Whether it reads exactly one component (`state` must name it).
    needs_state: ClassVar[bool] = False
    #: Whether `init` sees the whole state rather than the selected components.
    whole_state: ClassVar[bool] = False
    #: Whether the runs must carry their tangent dynamics (`dynsim._tangent`).
    tangent: ClassVar[bool] = False

    def numbers(self, selected: int, state_size: int) -> int:
        """How many numbers the value holds, for `selected` components of a state of
        `state_size` (the memory estimate of a scan)."""
        return selected if self.componentwise else 1

    @property
    def start(self) -> float:
        """The window's start (−inf when the window is the whole solve)."""
        return -np.inf if self.t_from is None else float(self.t_from)

    @abc.abstractmethod
    def init(
        self, t0: Float[Array, ""], y0: Float[Array, " k"], discrete: bool
    ) -> PyTree:
        """The carry before the first step."""

    @abc.abstractmethod
    def update(
        self,
        carry: PyTree,
        segment: Segment,
        samples: StepSamples,
        select: Callable[[Array], Array],
    ) -> PyTree:
        """The carry after one more accepted step."""

    @abc.abstractmethod
    def finish(self, carry: PyTree) -> Array:
        """The observable's value."""


def _in_window(obs: AbstractRunningObservable, t: Array) -> Array:
    return t >= obs.start


def _turns(s: StepSamples) -> tuple[Array, Array, Array]:
    """Every bracketed turning point of the (selected) components in the step:
    times, values and kind (+1 max, −1 min, 0 none), each `(n − 1, k)`."""
    times, kind, values = critical_points(s)
    return times, jnp.where(kind != 0, values, jnp.nan), kind


def _extremes(s: StepSamples, segment: Segment) -> tuple[Array, Array]:
    """The maximum and minimum of each selected component over the step's part in
    the window: the most extreme of its samples and its turning points."""
    # Sample by sample and bracket by bracket (loops that vectorise across
    # trajectories once batched).
    n = s.ts.shape[0]
    his = [jnp.where(s.valid[i], s.ys[i], -jnp.inf) for i in range(n)]
    los = [jnp.where(s.valid[i], s.ys[i], jnp.inf) for i in range(n)]
    if not segment.discrete:
        _, values, kind = _turns(s)
        his += [jnp.where(kind[i] > 0, values[i], -jnp.inf) for i in range(n - 1)]
        los += [jnp.where(kind[i] < 0, values[i], jnp.inf) for i in range(n - 1)]
    return functools.reduce(jnp.maximum, his), functools.reduce(jnp.minimum, los)


class _Extremes(AbstractRunningObservable):
    """Running maximum and minimum of the selected components."""

    def init(self, t0, y0, discrete):
        inside = _in_window(self, t0)
        return (jnp.where(inside, y0, -jnp.inf), jnp.where(inside, y0, jnp.inf))

    def update(self, carry, segment, samples, select):
        hi, lo = _extremes(samples, segment)
        return jnp.maximum(carry[0], hi), jnp.minimum(carry[1], lo)


class FinalState(AbstractRunningObservable):
    """The state at the end of the solve."""

    state: StateSelector = eqx.field(default=None, static=True)
    t_from: float | None = eqx.field(
        default=None, static=True, converter=_optional_float
    )

    def init(self, t0, y0, discrete):
        return y0

    def update(self, carry, segment, samples, select):
        return select(segment.y1)

    def finish(self, carry):
        return carry


class Mean(AbstractRunningObservable):
    """The time average over the window: the integral of the dense output (Simpson's
    rule on each step's samples, whose error is of the order of the step's own local
    error) divided by the window's length. For maps, the mean of the iterates in
    the window."""

    state: StateSelector = eqx.field(default=None, static=True)
    t_from: float | None = eqx.field(
        default=None, static=True, converter=_optional_float
    )

    def init(self, t0, y0, discrete):
        # Flows integrate over time (y0 has no weight); a map's iterates are counted.
        weight = jnp.where(_in_window(self, t0), 1.0, 0.0) if discrete else 0.0
        return (weight * y0, jnp.asarray(weight, y0.dtype))

    def update(self, carry, segment, samples, select):
        total, length = carry
        s = samples
        if segment.discrete:
            fresh = s.fresh[1]
            return (
                total + jnp.where(fresh, s.ys[1], 0.0),
                length + jnp.where(fresh, 1.0, 0.0),
            )
        width = jnp.where(s.valid[0], s.ts[-1] - s.ts[0], 0.0)
        integral = width * sum(
            w * y for w, y in zip(QUADRATURE_WEIGHTS, s.ys, strict=True)
        )
        return total + integral, length + width

    def finish(self, carry):
        total, length = carry
        return total / jnp.where(length > 0, length, jnp.nan)


class Max(_Extremes):
    """The maximum over the window (located within steps: exact to the solve's
    accuracy)."""

    state: StateSelector = eqx.field(default=None, static=True)
    t_from: float | None = eqx.field(
        default=None, static=True, converter=_optional_float
    )

    def finish(self, carry):
        return carry[0]


class Min(_Extremes):
    """The minimum over the window (located within steps)."""

    state: StateSelector = eqx.field(default=None, static=True)
    t_from: float | None = eqx.field(
        default=None, static=True, converter=_optional_float
    )

    def finish(self, carry):
        return carry[1]


class Amplitude(_Extremes):
    """Half the peak-to-peak range, (max − min)/2, over the window: the oscillation
    amplitude once a transient is dropped (≈ 0 at a stable steady state)."""

    state: StateSelector = eqx.field(default=None, static=True)
    t_from: float | None = eqx.field(
        default=None, static=True, converter=_optional_float
    )

    def finish(self, carry):
        hi, lo = carry
        return 0.5 * (hi - lo)


class SignChanges(AbstractRunningObservable):
    """How many times y − level changes sign within the window. Crossings are
    counted on each step's interpolant, its turning points included, so two
    crossings inside one step are both seen; an exact zero counts with the sign of
    the next nonzero value (a touch is not a crossing)."""

    state: StateSelector = eqx.field(default=None, static=True)
    t_from: float | None = eqx.field(
        default=None, static=True, converter=_optional_float
    )
    level: float = eqx.field(default=0.0, static=True, converter=float)

    def init(self, t0, y0, discrete):
        inside = _in_window(self, t0)
        last = jnp.where(inside, jnp.sign(y0 - self.level), 0.0)
        return last, jnp.zeros(y0.shape, jnp.int32)

    def update(self, carry, segment, samples, select):
        last, count = carry
        s = samples
        n = s.ys.shape[0]
        if segment.discrete:
            turn_values = jnp.full((n - 1,) + s.ys.shape[1:], jnp.nan)
        else:
            _, turn_values, _ = _turns(s)
        # The values in time order: each sample, then the turning point (if any)
        # of the sub-interval it opens.
        for i in range(n):
            seq = [(s.ys[i], s.fresh[i])]
            if i < n - 1:
                seq.append((turn_values[i], s.valid[i] & s.valid[i + 1]))
            for value, use in seq:
                sign = jnp.sign(value - self.level)
                sign = jnp.where(use & jnp.isfinite(value), sign, 0.0)
                flip = (sign != 0) & (last != 0) & (sign != last)
                count = count + flip.astype(jnp.int32)
                last = jnp.where(sign != 0, sign, last)
        return last, count

    def finish(self, carry):
        return carry[1]


class _PeakBuffer(AbstractRunningObservable):
    """The last `max_peaks` local maxima of one component (times and values, a ring
    buffer), with the running maximum and minimum."""

    componentwise: ClassVar[bool] = False
    needs_state: ClassVar[bool] = True
    max_peaks: eqx.AbstractVar[int]

    def init(self, t0, y0, discrete):
        m = self.max_peaks
        inside = _in_window(self, t0)
        return dict(
            # (time, value) of each peak, one row each: one write per peak.
            peaks=Record(jnp.full((m, 2), jnp.nan, y0.dtype)),
            count=jnp.asarray(0, jnp.int32),
            last_slope=jnp.asarray(jnp.nan, y0.dtype),
            last_time=jnp.asarray(-jnp.inf, y0.dtype),
            hi=jnp.where(inside, y0[0], -jnp.inf),
            lo=jnp.where(inside, y0[0], jnp.inf),
        )

    def update(self, carry, segment, samples, select):
        s = samples
        # A maximum at the step's first node: the slope turns there (maps: the
        # iterate is above both neighbours; flows: the interpolants meet there);
        # then the maximum of each bracket (a bracket holds one turn at most).
        node = s.valid[0] & (carry["last_slope"] > 0) & (s.ds[0, 0] <= 0)
        cands = [(s.ts[0], s.ys[0, 0], node)]
        if not segment.discrete:
            times, values, kind = _turns(s)
            for i in range(times.shape[0]):
                cands.append((times[i, 0], values[i, 0], kind[i, 0] > 0))
        # A maximum seen from both sides of a node (the two interpolants' slopes
        # there differ by round-off) is one maximum.
        close = 1e-9 * (segment.t1 - segment.t0) + 1e-12 * jnp.abs(segment.t1)
        m = self.max_peaks
        count, last_time = carry["count"], carry["last_time"]
        slots = []
        for t, _, ok in cands:
            ok = ok & (jnp.abs(t - carry["last_time"]) > close)
            slots.append(jnp.where(ok, count % m, m))
            count = count + ok.astype(jnp.int32)
            last_time = jnp.where(ok, jnp.maximum(last_time, t), last_time)
        peaks = carry["peaks"]
        for slot, (t, v, _) in zip(slots, cands, strict=True):
            peaks = peaks.write(slot, jnp.stack([t, v]))
        hi, lo = _extremes(s, segment)
        return dict(
            peaks=peaks,
            count=count,
            last_slope=jnp.where(s.valid[-1], s.ds[-1, 0], carry["last_slope"]),
            last_time=last_time,
            hi=jnp.maximum(carry["hi"], hi[0]),
            lo=jnp.minimum(carry["lo"], lo[0]),
        )

    def _chronological(self, carry) -> tuple[Array, Array]:
        """The buffered peaks' times and values, oldest first, NaN-padded in front."""
        m = self.max_peaks
        count = carry["count"]
        order = (count - m + jnp.arange(m)) % m
        real = jnp.arange(m) >= m - jnp.minimum(count, m)
        rows = carry["peaks"].data[order]
        times = jnp.where(real, rows[:, 0], jnp.nan)
        values = jnp.where(real, rows[:, 1], jnp.nan)
        return times, values


class Peaks(_PeakBuffer):
    """The last `max_peaks` local maxima of one component within the window (in
    time order, NaN-padded in front): the points of an orbit diagram. Each maximum
    is located within its step, where the interpolant's derivative vanishes."""

    state: StateSelector = eqx.field(default=None, static=True)
    t_from: float | None = eqx.field(
        default=None, static=True, converter=_optional_float
    )
    max_peaks: int = eqx.field(default=64, static=True)

    def numbers(self, selected, state_size):
        return self.max_peaks

    def finish(self, carry):
        return self._chronological(carry)[1]


class Period(_PeakBuffer):
    """The oscillation period of one component: the mean time between its
    successive maxima above the window's mid-range (max + min)/2, over the last
    `max_peaks` maxima (each located within its step). Small secondary maxima (of
    mixed-mode oscillations, say) are skipped by the mid-range test; NaN without
    two such maxima."""

    state: StateSelector = eqx.field(default=None, static=True)
    t_from: float | None = eqx.field(
        default=None, static=True, converter=_optional_float
    )
    max_peaks: int = eqx.field(default=64, static=True)

    def finish(self, carry):
        times, values = self._chronological(carry)
        mid = 0.5 * (carry["hi"] + carry["lo"])
        big = jnp.isfinite(values) & (values > mid)
        n = jnp.sum(big)
        first = jnp.min(jnp.where(big, times, jnp.inf))
        last = jnp.max(jnp.where(big, times, -jnp.inf))
        return jnp.where(n >= 2, (last - first) / jnp.maximum(n - 1, 1), jnp.nan)


class Function(AbstractObservable):
    """Any function `fn(ts, ys) -> array` of a sampled trajectory as an observable.
    It sees `samples` evenly spaced samples (from the earliest window start of the
    scan's `Function` observables to t1); `ys` is `(samples, states)`, or
    `(samples,)` when `state` selects one component. Exact reductions need the
    running observables above; a function of samples is only as fine as `samples`."""

    fn: Callable[[Array, Array], Array] = eqx.field(static=True)
    state: StateSelector = eqx.field(default=None, static=True)
    t_from: float | None = eqx.field(
        default=None, static=True, converter=_optional_float
    )
