"""Rolling-window statistics and Kendall's τ in O(n) and O(n log n) per series,
batched over many series (JAX).

Window sums come from prefix sums of powers of the series, shifted by the series'
mean first (central moments are shift-invariant; the shift keeps the power sums
from cancelling). Kendall's τ against time counts discordant pairs as inversions by
a bottom-up merge sort (log₂ n passes of batched `searchsorted`).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np


def _window_sums(y: jax.Array, w: int) -> jax.Array:
    """Σ of the trailing `w` values ending at each index ≥ w − 1: (series, n−w+1)."""
    c = jnp.cumsum(y, axis=1)
    c = jnp.pad(c, ((0, 0), (1, 0)))
    return c[:, w:] - c[:, :-w]


def rolling_moments(
    res: jax.Array, state: jax.Array, w: int, lags: Sequence[int]
) -> dict[str, jax.Array]:
    """Variance, std, cv, skew, kurtosis and ac{lag} of the trailing windows of `w`
    points, each (series, n − w + 1) (conventions: `dynsim.analysis._ews`)."""
    y = res - res.mean(axis=1, keepdims=True)
    s1, s2, s3, s4 = (_window_sums(y**p, w) for p in (1, 2, 3, 4))
    mu = s1 / w
    m2 = s2 - w * mu**2  # Σ (x − x̄)²
    m3 = s3 - 3 * mu * s2 + 2 * w * mu**3
    m4 = s4 - 4 * mu * s3 + 6 * mu**2 * s2 - 3 * w * mu**4
    var = m2 / (w - 1)
    std = jnp.sqrt(var)
    # Adjusted Fisher–Pearson G1 and G2 (pandas' rolling skew / kurt).
    g_m2 = m2 / w
    skew = (m3 / w) / g_m2**1.5 * np.sqrt(w * (w - 1)) / (w - 2)
    g2 = (m4 / w) / g_m2**2 - 3.0
    kurt = (w - 1) / ((w - 2) * (w - 3)) * ((w + 1) * g2 + 6.0)
    out = {
        "variance": var,
        "std": std,
        "cv": std / (_window_sums(state, w) / w),
        "skew": skew,
        "kurtosis": kurt,
    }
    for lag in lags:
        # Pairs (y[j], y[j − lag]) for j in the window's last w − lag indices.
        k = w - lag
        a, b = y[:, lag:], y[:, :-lag]
        sa, sb = _window_sums(a, k), _window_sums(b, k)
        saa, sbb, sab = (_window_sums(u, k) for u in (a * a, b * b, a * b))
        cov = sab - sa * sb / k
        va, vb = saa - sa**2 / k, sbb - sb**2 / k
        out[f"ac{lag}"] = cov / jnp.sqrt(va * vb)
    return out


def _inversions(v: jax.Array) -> jax.Array:
    """Σ over pairs i < j of [v_i > v_j] for each row of `v` (length a power of two),
    by bottom-up merging; each pass counts, for every element of a right run, the
    elements of its left run that are larger."""
    s, n = v.shape
    count = jnp.zeros(s, v.dtype)
    size = 1
    while size < n:
        runs = v.reshape(s, n // (2 * size), 2, size)
        left, right = runs[:, :, 0], runs[:, :, 1]
        # For each right element: the left elements ≤ it, by searchsorted.
        below = jax.vmap(jax.vmap(lambda a, b: jnp.searchsorted(a, b, side="right")))(
            left, right
        )
        count = count + jnp.sum(size - below, axis=(1, 2)).astype(v.dtype)
        v = jnp.sort(runs.reshape(s, n // (2 * size), 2 * size), axis=-1).reshape(s, n)
        size *= 2
    return count


@jax.jit
def kendall_tau_time(values: jax.Array) -> jax.Array:
    """Kendall's τ-b of each row against strictly increasing times, over its
    finite entries: (n₀ − n₁ − 2D) / √((n₀ − n₁) n₀), with n₀ the pairs, n₁ the
    pairs tied in value and D the discordant pairs (inversions)."""
    s, n = values.shape
    ok = jnp.isfinite(values)
    count = ok.sum(axis=1).astype(values.dtype)
    # The valid entries first, in time order; the rest become +inf at the end, where
    # they invert nothing.
    order = jnp.argsort(~ok, axis=1, stable=True)
    v = jnp.take_along_axis(jnp.where(ok, values, jnp.inf), order, axis=1)
    size = 1 << max(int(n - 1).bit_length(), 1)
    v = jnp.pad(v, ((0, 0), (0, size - n)), constant_values=jnp.inf)
    discordant = _inversions(v)
    srt = jnp.sort(v, axis=1)
    same = jax.vmap(
        lambda r: jnp.searchsorted(r, r, side="right") - jnp.searchsorted(r, r)
    )(srt)
    finite = jnp.isfinite(srt)
    n1 = jnp.sum(jnp.where(finite, same - 1, 0), axis=1) / 2.0
    n0 = count * (count - 1) / 2.0
    return (n0 - n1 - 2.0 * discordant) / jnp.sqrt((n0 - n1) * n0)
