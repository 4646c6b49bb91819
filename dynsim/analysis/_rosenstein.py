"""The largest Lyapunov exponent of measured series: Rosenstein, Collins & De Luca,
"A practical method for calculating largest Lyapunov exponents from small data
sets", Physica D 65 (1993) 117–134.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._custom_types import Series
from .._protocol import checked
from .._results import RunInfo
from ._lyapunov import LyapunovSpectrum
from ._series import as_series


def delay_embed(x: Any, dim: int, lag: int) -> np.ndarray:
    """The delay vectors (x_i, x_{i+lag}, …, x_{i+(dim−1)lag}) of each row:
    (…, n − (dim − 1)·lag, dim)."""
    x = np.asarray(x, float)
    m = x.shape[-1] - (dim - 1) * lag
    if m < 2:
        raise ValueError(
            f"a series of {x.shape[-1]} points is too short for dim = {dim}, "
            f"lag = {lag}"
        )
    idx = np.arange(m)[:, None] + lag * np.arange(dim)[None, :]
    return x[..., idx]


def _autocorrelation_lag(x: np.ndarray) -> int:
    """The first lag where the autocorrelation drops below 1 − 1/e (Rosenstein's
    choice)."""
    d = x - x.mean()
    ac = np.fft.irfft(np.abs(np.fft.rfft(d, 2 * d.size)) ** 2)[: d.size]
    below = np.flatnonzero(ac / ac[0] < 1.0 - 1.0 / np.e)
    return int(below[0]) if below.size else 1


def _mean_period(x: np.ndarray) -> int:
    """The reciprocal of the power spectrum's mean frequency, in samples
    (Rosenstein's temporal separation of neighbours)."""
    p = np.abs(np.fft.rfft(x - x.mean())) ** 2
    f = np.fft.rfftfreq(x.size)
    mean_f = np.sum(f[1:] * p[1:]) / np.sum(p[1:])
    return int(np.ceil(1.0 / mean_f))


def _divergence(vectors, horizon, min_separation, blocks):
    """Mean log distance of each reference point's nearest neighbour pair after
    0 … horizon steps, per block of reference points: (blocks, horizon + 1)."""
    m = vectors.shape[0]
    count = m - horizon  # points whose future stays inside the series
    ref = jnp.arange(count)

    def nearest(i):
        d = jnp.sum((vectors[:count] - vectors[i]) ** 2, axis=1)
        d = jnp.where(jnp.abs(ref - i) > min_separation, d, jnp.inf)
        d = jnp.where(d > 0, d, jnp.inf)  # repeated points carry no divergence
        return jnp.argmin(d), jnp.min(d)

    j, dmin = jax.lax.map(nearest, ref, batch_size=256)
    valid = jnp.isfinite(dmin)
    steps = jnp.arange(horizon + 1)
    a = vectors[ref[:, None] + steps[None, :]]
    b = vectors[j[:, None] + steps[None, :]]
    logd = jnp.log(jnp.linalg.norm(a - b, axis=-1))  # (count, horizon + 1)
    ok = valid[:, None] & jnp.isfinite(logd)
    block = (ref * blocks) // count
    onehot = (block[:, None] == jnp.arange(blocks)[None, :]) & True
    num = jnp.einsum("ib,ik->bk", onehot, jnp.where(ok, logd, 0.0))
    den = jnp.einsum("ib,ik->bk", onehot, ok.astype(logd.dtype))
    return num, den


_divergence_jit = jax.jit(_divergence, static_argnums=(1, 2, 3))


def rosenstein(
    series: Series,
    *,
    dt: float = 1.0,
    dim: int = 3,
    lag: int | None = None,
    min_separation: int | None = None,
    horizon: int = 20,
    fit: Sequence[float] | None = None,
    blocks: int = 10,
    throw: bool = False,
) -> LyapunovSpectrum:
    """The largest Lyapunov exponent of a scalar series (n,) or of each of many
    (series, n; `lag` and `min_separation` estimated on the first), sampled every
    `dt`, by Rosenstein's method: delay-embed in `dim`
    dimensions with `lag` samples (default: where the autocorrelation first drops
    below 1 − 1/e), pair each point with its nearest neighbour at least
    `min_separation` samples apart in time (default: the mean period, the
    reciprocal of the spectrum's mean frequency), follow both for `horizon`
    samples, and fit a line to the mean log distance ⟨ln d(t)⟩ over `fit` = (t0,
    t1) (default the whole horizon; choose the linear part of the curve).

    `throw=True` raises `RuntimeError` (with the `message`) instead of returning a
    result that is not `ok`.

    **Returns:** a `LyapunovSpectrum` with one exponent, per unit of `dt`, natural
    log; `running` holds ⟨ln d(t)⟩ at `times` = 0, dt, …, horizon·dt (the curve to
    check the fit range on), `stderr` the spread of the slope over `blocks`
    groups of reference points / √blocks, `fit_range` the fitted interval.

    **Raises:** `ValueError` for NaNs, non-positive sizes, a series too short for
    the embedding and horizon, or a fit range outside the horizon.
    """
    x, single = as_series(series, 16)
    if dim < 1 or horizon < 1 or not dt > 0 or blocks < 2:
        raise ValueError("dim, horizon must be >= 1, blocks >= 2 and dt > 0")
    lag = _autocorrelation_lag(x[0]) if lag is None else int(lag)
    sep = _mean_period(x[0]) if min_separation is None else int(min_separation)
    if lag < 1 or sep < 0:
        raise ValueError(f"lag must be >= 1 and min_separation >= 0, got {lag}, {sep}")
    times = dt * np.arange(horizon + 1)
    t0, t1 = (0.0, times[-1]) if fit is None else map(float, fit)
    use = (times >= t0 - 1e-12 * dt) & (times <= t1 + 1e-12 * dt)
    if use.sum() < 2:
        raise ValueError(
            f"fit = ({t0}, {t1}) holds fewer than 2 of the times 0 … {times[-1]}"
        )
    vectors = delay_embed(x, dim, lag)
    if vectors.shape[1] - horizon < 2 * (sep + 1) + blocks:
        raise ValueError(
            f"{x.shape[1]} points are too few for dim = {dim}, lag = {lag}, "
            f"horizon = {horizon} and min_separation = {sep}"
        )
    curves, slopes = [], []
    for v in vectors:
        num, den = map(
            np.asarray, _divergence_jit(jnp.asarray(v), horizon, sep, blocks)
        )
        with np.errstate(invalid="ignore", divide="ignore"):  # no pairs: NaN
            curves.append(num.sum(0) / den.sum(0))
            per_block = num / den
        slopes.append(
            [np.polyfit(times[use], c[use], 1)[0] for c in (curves[-1], *per_block)]
        )
    slopes = np.asarray(slopes)
    exponents = slopes[:, :1]
    stderr = slopes[:, 1:].std(1, ddof=1, keepdims=True) / np.sqrt(blocks)
    running = np.asarray(curves)[:, :, None]
    if single:
        exponents, stderr, running = exponents[0], stderr[0], running[0]
    info = RunInfo(
        model="",
        model_params="{}",
        state_names=(),
        solver=json.dumps(
            {
                "name": "rosenstein",
                "dt": dt,
                "dim": dim,
                "lag": lag,
                "min_separation": sep,
                "horizon": horizon,
                "fit": [t0, t1],
            }
        ),
    )
    return checked(
        LyapunovSpectrum(
            exponents,
            stderr,
            running,
            times,
            {} if single else {"series": np.arange(x.shape[0], dtype=float)},
            "rosenstein",
            info,
            units="per unit of dt, natural logarithm",
            fit_range=(t0, t1),
        ),
        throw,
    )
