"""Rolling Welch power spectra and the spectral early-warning indicators.

The spectrum of the trailing window ending at each index is scipy.signal's
`welch(window, nperseg=segment, noverlap=segment // 2, window="hann",
detrend="constant", return_onesided=False, scaling="spectrum")` (ewstools'
`compute_spectrum`). Consecutive windows share their segments, so the periodogram
of every segment start is computed once and each window's average is a strided
running sum: every index costs O(segment) instead of O(window).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import scipy.signal


def _segment_periodograms(res: jax.Array, seg: int) -> jax.Array:
    """(series, n − seg + 1, seg) two-sided periodograms of every segment start."""
    win = jnp.asarray(scipy.signal.get_window("hann", seg))
    idx = np.arange(res.shape[1] - seg + 1)[:, None] + np.arange(seg)[None, :]
    segs = res[:, idx]
    segs = segs - segs.mean(-1, keepdims=True)
    spec = jnp.abs(jnp.fft.fft(segs * win, axis=-1)) ** 2
    return spec / jnp.sum(win) ** 2


def rolling_spectra(res: jax.Array, w: int, seg: int) -> jax.Array:
    """(series, n − w + 1, seg) Welch spectra of the trailing windows of `w` points
    (segments of `seg` points, hop seg − seg // 2), over frequencies
    `np.fft.fftfreq(seg)` (cycles per sample)."""
    seg = min(seg, w)
    hop = seg - seg // 2
    count = (w - seg) // hop + 1  # segments per window, as scipy.signal.welch
    p = _segment_periodograms(res, seg)
    s, m, f = p.shape
    # Running sums along each residue class of the segment start modulo hop.
    rows = -(-m // hop)
    p = jnp.pad(p, ((0, 0), (hop, rows * hop - m), (0, 0)))
    c = jnp.cumsum(p.reshape(s, rows + 1, hop, f), axis=1).reshape(s, -1, f)
    starts = np.arange(res.shape[1] - w + 1)
    total = c[:, starts + count * hop] - c[:, starts]
    return total / count


def spectral_indicators(
    res: jax.Array, w: int, seg: int, low_band: float
) -> dict[str, jax.Array]:
    """`smax`: the largest power of each window's spectrum; `low_freq_ratio`: the
    fraction of its power at |f| ≤ low_band · f_Nyquist. NaN before the window is
    full."""
    spec = rolling_spectra(res, w, seg)
    freqs = np.abs(np.fft.fftfreq(spec.shape[-1]))
    low = jnp.asarray(freqs <= low_band * 0.5)
    out = {
        "smax": spec.max(-1),
        "low_freq_ratio": jnp.sum(jnp.where(low, spec, 0.0), -1) / spec.sum(-1),
    }
    pad = jnp.full(res.shape[:1] + (w - 1,), jnp.nan)
    return {k: jnp.concatenate([pad, v], axis=1) for k, v in out.items()}
