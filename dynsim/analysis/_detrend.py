"""Trends of evenly sampled series, many at once: a Gaussian kernel and LOWESS.

Both take the bandwidth / span in points and return (series, n) trends.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.signal import fftconvolve


def gaussian_trend(x: jax.Array, sigma: float) -> jax.Array:
    """The Gaussian-kernel smooth of each row: standard deviation `sigma` points,
    truncated at 4σ, the series reflected at its ends (scipy.ndimage's "reflect")."""
    radius = int(4.0 * sigma + 0.5)
    k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    k = jnp.asarray(k / k.sum())
    padded = jnp.pad(x, ((0, 0), (radius, radius)), mode="symmetric")
    # By FFT: the kernel spans thousands of points on long series.
    return jax.vmap(lambda row: fftconvolve(row, k, mode="valid"))(padded)


def lowess_trend(x: jax.Array, span: int, iterations: int = 3) -> jax.Array:
    """Cleveland's (1979) robust LOWESS of each row against its index, as
    statsmodels' `lowess(frac=span / n, it=iterations, delta=0)`.

    Each point is fitted by a weighted linear regression on its `span` nearest
    neighbours (a window of `span` consecutive points, shifted inwards at the ends)
    with tricube weights (1 − (d/radius)³)³, radius the distance to the farthest
    point of the window; then `iterations` times again with each point's weight
    multiplied by the bisquare of its residual / (6 · median |residual|).
    """
    n = x.shape[1]
    k = int(min(max(span, 2), n))
    i = np.arange(n)
    left = np.clip(np.ceil(i - k / 2.0).astype(int), 0, n - k)
    idx = left[:, None] + np.arange(k)[None, :]  # (n, k) neighbours
    radius = np.maximum(i - left, left + k - 1 - i).astype(float)
    dist = np.abs(idx - i[:, None]) / radius[:, None]
    tricube = np.clip(1.0 - dist**3, 0.0, None) ** 3
    # Work in coordinates centred on each fitted point (exact for integer abscissae).
    offset = (idx - i[:, None]).astype(float)
    tricube, offset, idx = jnp.asarray(tricube), jnp.asarray(offset), jnp.asarray(idx)

    def fit(y, robust):
        w = tricube * robust[idx]
        ok = jnp.sum(w > 1e-12, axis=1) >= 2
        w = w / jnp.sum(w, axis=1, keepdims=True)
        mean = jnp.sum(w * offset, axis=1, keepdims=True)
        var = jnp.maximum(
            jnp.sum(w * (offset - mean) ** 2, axis=1, keepdims=True), 1e-12
        )
        p = w * (1.0 + (0.0 - mean) * (offset - mean) / var)
        return jnp.where(ok, jnp.sum(p * y[idx], axis=1), y)

    def one(y):
        def robust_step(robust, _):
            trend = fit(y, robust)
            r = jnp.abs(y - trend)
            med = jnp.median(r)
            u = jnp.where(med == 0, (r > 0).astype(y.dtype), r / (6.0 * med))
            return (1.0 - jnp.minimum(u, 1.0) ** 2) ** 2, None

        robust, _ = jax.lax.scan(robust_step, jnp.ones_like(y), None, length=iterations)
        return fit(y, robust)

    return jax.lax.map(one, x)


_lowess_jit = jax.jit(lowess_trend, static_argnums=(1, 2))


def trend(x: jax.Array, method: str | None, bandwidth: float) -> jax.Array:
    """The trend of each row by `method` ("gaussian", "lowess" or None: zero) with
    `bandwidth` in points (the Gaussian kernel's quartile width, the LOWESS span)."""
    if method == "gaussian":
        return gaussian_trend(x, (0.25 / 0.675) * bandwidth)
    if method == "lowess":
        return _lowess_jit(x, int(bandwidth + 1e-10), 3)
    if method is None:
        return jnp.zeros_like(x)
    raise ValueError(f"unknown detrend {method!r}; use 'gaussian', 'lowess' or None")
