"""Observables: reductions of a trajectory computed inside a scan, so that a scan of a
million points returns a million small numbers instead of a million trajectories.

Every observable sees the trajectory sampled on a uniform grid of `samples` times
(`dynsim.scan(..., samples=...)`) over `[t_from, t1]`; the window starts at its
`t_from` (default: t0), so that transients can be dropped. Reductions are pure
functions of `(ts, ys, in_window)`: they run under `vmap` on the device.
"""

import abc
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

StateSelector = str | int | None


class AbstractObservable(eqx.Module):
    """A reduction of a sampled trajectory.

    - `state`: which state component (a name from `model.state_names` or a flat
      index), or None for all of them.
    - `t_from`: start of the time window (None: the start of the solve).

    Subclasses implement `reduce(ts, ys, in_window)` where `ts` is `(samples,)`, `ys`
    is `(samples,)` for one component or `(samples, states)` for all, and `in_window`
    is `(samples,)` bool. The result has shape `()` or `(states,)`.
    """

    state: eqx.AbstractVar[StateSelector]
    t_from: eqx.AbstractVar[float | None]

    @abc.abstractmethod
    def reduce(
        self,
        ts: Float[Array, " samples"],
        ys: Array,
        in_window: Bool[Array, " samples"],
    ) -> Array:
        """The observable's value."""


def _mask(ys: Array, in_window: Array, fill: float) -> Array:
    w = in_window.reshape(in_window.shape + (1,) * (ys.ndim - 1))
    return jnp.where(w, ys, fill)


class FinalState(AbstractObservable):
    """The state at t1."""

    state: StateSelector = eqx.field(default=None, static=True)
    t_from: float | None = eqx.field(default=None, static=True)

    def reduce(self, ts, ys, in_window):
        return ys[-1]


class Mean(AbstractObservable):
    """The time average over the window (trapezoidal rule on the sample grid)."""

    state: StateSelector = eqx.field(default=None, static=True)
    t_from: float | None = eqx.field(default=None, static=True)

    def reduce(self, ts, ys, in_window):
        seg = in_window[1:] & in_window[:-1]
        dt = jnp.where(seg, jnp.diff(ts), 0.0)
        mid = 0.5 * (ys[1:] + ys[:-1])
        dt = dt.reshape(dt.shape + (1,) * (ys.ndim - 1))
        return jnp.sum(mid * dt, axis=0) / jnp.sum(dt, axis=0)


class Max(AbstractObservable):
    """The maximum over the window."""

    state: StateSelector = eqx.field(default=None, static=True)
    t_from: float | None = eqx.field(default=None, static=True)

    def reduce(self, ts, ys, in_window):
        return jnp.max(_mask(ys, in_window, -jnp.inf), axis=0)


class Min(AbstractObservable):
    """The minimum over the window."""

    state: StateSelector = eqx.field(default=None, static=True)
    t_from: float | None = eqx.field(default=None, static=True)

    def reduce(self, ts, ys, in_window):
        return jnp.min(_mask(ys, in_window, jnp.inf), axis=0)


class Amplitude(AbstractObservable):
    """Half the peak-to-peak range, (max − min)/2, over the window: the oscillation
    amplitude once a transient is dropped (≈ 0 at a stable steady state)."""

    state: StateSelector = eqx.field(default=None, static=True)
    t_from: float | None = eqx.field(default=None, static=True)

    def reduce(self, ts, ys, in_window):
        hi = jnp.max(_mask(ys, in_window, -jnp.inf), axis=0)
        lo = jnp.min(_mask(ys, in_window, jnp.inf), axis=0)
        return 0.5 * (hi - lo)


class SignChanges(AbstractObservable):
    """How many times y − level changes sign within the window (on the sample grid;
    exact zeros are counted with the sign of the next nonzero sample)."""

    state: StateSelector = eqx.field(default=None, static=True)
    t_from: float | None = eqx.field(default=None, static=True)
    level: float = eqx.field(default=0.0, static=True)

    def reduce(self, ts, ys, in_window):
        s = jnp.sign(ys - self.level)
        seg = in_window[1:] & in_window[:-1]
        seg = seg.reshape(seg.shape + (1,) * (ys.ndim - 1))
        flips = (s[1:] * s[:-1] < 0) & seg
        return jnp.sum(flips, axis=0)


class Function(AbstractObservable):
    """Any function `fn(ts, ys) -> array` as an observable. It sees every sample
    (from the earliest window start of the scan's observables to t1); `ys` is
    `(samples, states)`, or `(samples,)` when `state` selects one component."""

    fn: Callable[[Array, Array], Array] = eqx.field(static=True)
    state: StateSelector = eqx.field(default=None, static=True)
    t_from: float | None = eqx.field(default=None, static=True)

    def reduce(self, ts, ys, in_window):
        return self.fn(ts, ys)


class Peaks(AbstractObservable):
    """The last `max_peaks` local maxima of one component within the window (in
    time order, NaN-padded in front): the points of an orbit diagram. Each maximum
    is refined by the parabola through its three samples."""

    state: StateSelector = eqx.field(default=None, static=True)
    t_from: float | None = eqx.field(default=None, static=True)
    max_peaks: int = eqx.field(default=64, static=True)

    def reduce(self, ts, ys, in_window):
        if ys.ndim != 1:
            raise ValueError("the 'peaks' observable needs one state component")
        left, mid, right = ys[:-2], ys[1:-1], ys[2:]
        ok = in_window[:-2] & in_window[1:-1] & in_window[2:]
        is_peak = (mid > left) & (mid >= right) & ok
        curv = left - 2 * mid + right
        safe = jnp.where(curv < 0, curv, -1.0)
        value = mid - (right - left) ** 2 / (8 * safe)
        position = jnp.where(is_peak, jnp.arange(mid.size), -1)
        k = min(self.max_peaks, mid.size)
        last, _ = jax.lax.top_k(position, k)
        last = last[::-1]
        out = jnp.where(last >= 0, value[jnp.maximum(last, 0)], jnp.nan)
        return jnp.concatenate([jnp.full(self.max_peaks - k, jnp.nan), out])


class Period(AbstractObservable):
    """The mean time between upward crossings of the window mean by one component
    (crossing times interpolated linearly); NaN without two crossings."""

    state: StateSelector = eqx.field(default=None, static=True)
    t_from: float | None = eqx.field(default=None, static=True)

    def reduce(self, ts, ys, in_window):
        if ys.ndim != 1:
            raise ValueError("the 'period' observable needs one state component")
        mean = jnp.sum(jnp.where(in_window, ys, 0.0)) / jnp.sum(in_window)
        x = ys - mean
        up = (x[:-1] < 0) & (x[1:] >= 0) & in_window[:-1] & in_window[1:]
        frac = -x[:-1] / jnp.where(up, x[1:] - x[:-1], 1.0)
        t_cross = ts[:-1] + frac * (ts[1:] - ts[:-1])
        n = jnp.sum(up)
        first = jnp.min(jnp.where(up, t_cross, jnp.inf))
        last = jnp.max(jnp.where(up, t_cross, -jnp.inf))
        return jnp.where(n >= 2, (last - first) / jnp.maximum(n - 1, 1), jnp.nan)


_BY_NAME: dict[str, type[AbstractObservable]] = {
    "final": FinalState,
    "mean": Mean,
    "max": Max,
    "min": Min,
    "amplitude": Amplitude,
    "sign_changes": SignChanges,
    "peaks": Peaks,
    "period": Period,
}

OBSERVABLE_KINDS: tuple[str, ...] = tuple(_BY_NAME)


def observable(kind: str, **options) -> AbstractObservable:
    """An observable by kind name (the names configs use): one of `OBSERVABLE_KINDS`.

    **Raises:** `ValueError` for an unknown kind or option.
    """
    if kind not in _BY_NAME:
        raise ValueError(
            f"unknown observable kind {kind!r}; known kinds: {', '.join(_BY_NAME)}"
        )
    try:
        return _BY_NAME[kind](**options)
    except TypeError as e:
        raise ValueError(f"observable {kind!r}: {e}") from None
