"""Early-warning signals of critical slowing down, for many series at once (JAX).

Conventions (every one is also written into the result and its HDF5 attributes):

- **Detrending**: the *bandwidth* is a fraction of the series length (or a number
  of points if > 1). `detrend="gaussian"`: a Gaussian kernel defined as in R's
  `ksmooth` and ewstools, its quartiles at ±0.25·bandwidth, i.e. σ =
  (0.25/0.675)·bandwidth points, truncated at 4σ, the series reflected at its ends
  (scipy.ndimage's "reflect"). `detrend="lowess"`: Cleveland's robust LOWESS
  against the index on int(bandwidth) nearest points, tricube weights, 3
  bisquare robustness iterations (statsmodels' `lowess(frac, it=3, delta=0)`, which
  ewstools calls). `detrend=None` uses the raw series. Residuals = series − trend.
- **Rolling window**: a fraction of the series length (int(fraction·n) points) or a
  number of points if > 1; the indicator at index i uses points i − w + 1 … i (a
  trailing window, as pandas' `rolling`), NaN for the first w − 1 indices.
- **variance**, **std**: of the residuals, with ddof = 1 (unbiased).
- **cv**: std of the residuals / mean of the *series* in the window (ewstools).
- **skew**: the adjusted Fisher–Pearson coefficient G₁ (pandas, ewstools), the
  sign kept (not the absolute skewness some packages report).
- **kurtosis**: the *excess* kurtosis G₂ (bias-adjusted; 0 for a Gaussian), as
  pandas and ewstools; R's earlywarnings reports the raw moment ratio instead.
- **ac{k}**: the lag-k autocorrelation in the window, the Pearson correlation of
  x[k:] with x[:-k] (each with its own mean and norm: pandas' `autocorr`, ewstools).
  R's earlywarnings fits an AR(1) by OLS instead.
- **smax**, **low_freq_ratio**: from the Welch power spectrum of the residuals in
  the window (Hann segments of `segment` points, half overlapping, each segment's
  mean removed, two-sided, scaled as a power spectrum: scipy.signal.welch as
  ewstools' `compute_spectrum` calls it). smax: its largest value (ewstools'
  `smax`, which evaluates every 20th window only; dynsim every window).
  low_freq_ratio: the fraction of the power at |f| ≤ low_band · f_Nyquist (a
  reddening indicator; not in ewstools).
- **Kendall τ**: τ-b between each indicator and time over its non-NaN indices.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats

from dynsim.solvers import Status

from .._custom_types import Key, Series
from .._protocol import AbstractResult, checked, freeze_fields
from ._detrend import trend as _trend
from ._rolling import kendall_tau_time, rolling_moments
from ._series import as_series
from ._spectrum import spectral_indicators

MOMENTS = ("variance", "std", "cv", "skew", "kurtosis")
SPECTRAL = ("smax", "low_freq_ratio")
CONVENTIONS = {
    "detrend gaussian": "Gaussian kernel, sigma = (0.25/0.675) * bandwidth points, "
    "truncated at 4 sigma, reflected ends",
    "detrend lowess": "robust LOWESS against the index, int(bandwidth) nearest "
    "points, tricube weights, 3 bisquare iterations (statsmodels)",
    "window": "trailing, int(fraction * n) points, NaN before it is full",
    "variance": "residuals, ddof = 1",
    "std": "residuals, ddof = 1",
    "cv": "std of residuals / mean of the series",
    "skew": "adjusted Fisher-Pearson G1, signed",
    "kurtosis": "excess kurtosis G2 (bias-adjusted)",
    "ac": "Pearson correlation of x[k:] and x[:-k] in the window",
    "smax": "max of the two-sided Welch power spectrum (Hann segments, half "
    "overlap, constant detrend, scaling 'spectrum')",
    "low_freq_ratio": "fraction of the Welch power at |f| <= low_band * f_Nyquist",
    "kendall_tau": "tau-b against time over non-NaN indices",
}


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class EWSResult(AbstractResult):
    """Indicators of many series: `indicators[name]` is (series, time) with NaN
    where the window is not full; `kendall_tau[name]` (series,); `trend`,
    `residuals` (series, time); `window` (points), `bandwidth` (points);
    `conventions`: how each statistic is defined; `p_value[name]` (series,): the
    fraction of surrogates with a τ at least as large (when computed); `times`
    (time,): the sample times (default the index); `detrend`: the method."""

    indicators: Mapping[str, np.ndarray]
    kendall_tau: Mapping[str, np.ndarray]
    trend: np.ndarray
    residuals: np.ndarray
    window: int
    bandwidth: float | None
    conventions: Mapping[str, str]
    p_value: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)
    times: np.ndarray | None = None
    detrend: str | None = "gaussian"
    status: np.ndarray | None = None

    kind: ClassVar[str] = "ews"
    dims: ClassVar = {
        "indicators": ("series", "time"),
        "kendall_tau": ("series",),
        "trend": ("series", "time"),
        "residuals": ("series", "time"),
        "p_value": ("series",),
        "times": ("time",),
        "status": ("series",),
    }
    codecs: ClassVar = {"conventions": (dict, dict)}

    def __post_init__(self):
        if self.status is None:
            # Per series: usable where its trend is finite and every indicator has
            # a trend of its own (Kendall τ is NaN for a constant or NaN indicator,
            # e.g. every moment of a constant series).
            trend = np.atleast_2d(self.trend)
            finite = np.all(np.isfinite(trend), axis=-1)
            for tau in self.kendall_tau.values():
                finite &= np.isfinite(np.atleast_1d(tau))
            code = np.where(finite, int(Status.SUCCESS), int(Status.NONFINITE))
            object.__setattr__(self, "status", code.astype(np.int32))
        freeze_fields(self)

    @property
    def message(self) -> str:
        return self.status_message

    def figures(self, **options):
        from ..plot import ews_panel

        return [("ews", ews_panel(self))]

    def __repr__(self) -> str:
        n, t = self.trend.shape
        taus = ", ".join(
            f"{k}: τ={np.nanmean(v):+.2f}" for k, v in self.kendall_tau.items()
        )
        return f"EWSResult({n} series x {t} points, window {self.window}; {taus})"


def _points(value: float, n: int, what: str) -> float:
    if not value > 0:
        raise ValueError(f"{what} must be > 0, got {value}")
    return value * n if value <= 1 else float(value)


def _moments(res, state, w: int, lags: Sequence[int], spectral: tuple | None):
    """Every indicator of the trailing windows of `w` points, NaN-padded to
    (series, n); `spectral`: (segment, low_band) or None to skip the spectra."""
    out = rolling_moments(res, state, w, lags)
    pad = jnp.full(res.shape[:1] + (w - 1,), jnp.nan)
    out = {k: jnp.concatenate([pad, v], axis=1) for k, v in out.items()}
    if spectral is not None:
        out.update(spectral_indicators(res, w, *spectral))
    return out


_moments_jit = jax.jit(_moments, static_argnums=(2, 3, 4))


def _chunked_moments(res, state, w, lags, spectral) -> dict[str, np.ndarray]:
    """`_moments` over chunks of series (the spectra of all at once can be GBs)."""
    seg = 1 if spectral is None else min(spectral[0], w)
    per = max(1, int(4e7 // (res.shape[1] * (seg + 16))))
    parts = [
        _moments_jit(res[i : i + per], state[i : i + per], w, lags, spectral)
        for i in range(0, res.shape[0], per)
    ]
    return {k: np.concatenate([np.asarray(p[k]) for p in parts]) for k in parts[0]}


def kendall_tau(values: Any, times: Any = None, *, method: str = "auto") -> np.ndarray:
    """Kendall's τ-b of each row of `values` (series, n) against `times` (default
    0 … n−1; distinct), over its finite entries (`scipy.stats.kendalltau`'s τ-b),
    in O(n log n) per row.

    `method`: "jax" (merge-sort inversion counts, batched: fast on accelerators),
    "scipy" (`scipy.stats.kendalltau` row by row: faster on CPUs, where XLA's sort
    is an order of magnitude slower than NumPy's) or "auto": "scipy" when JAX's
    default backend is the CPU, else "jax". Both give the same τ-b.

    **Raises:** `ValueError` for times of the wrong size or with repeated values,
    an unknown method.
    """
    if method == "auto":
        method = "scipy" if jax.default_backend() == "cpu" else "jax"
    if method not in ("jax", "scipy"):
        raise ValueError(f"unknown method {method!r}; use 'auto', 'jax' or 'scipy'")
    v = np.atleast_2d(np.asarray(values, float))
    if times is not None:
        t = np.asarray(times, float)
        if t.shape != v.shape[1:]:
            raise ValueError(f"times must have {v.shape[1]} values, got {t.shape}")
        order = np.argsort(t, kind="stable")
        if np.any(np.diff(t[order]) == 0):
            raise ValueError("times must be distinct")
        v = v[:, order]
    if method == "scipy":
        return np.array([_scipy_tau(row) for row in v])
    per = max(1, int(2e7 // v.shape[1]))
    return np.concatenate(
        [
            np.asarray(kendall_tau_time(jnp.asarray(v[i : i + per])))
            for i in range(0, v.shape[0], per)
        ]
    )


def _scipy_tau(row: np.ndarray) -> float:
    ok = np.isfinite(row)
    if ok.sum() < 2:
        return float("nan")
    return float(scipy.stats.kendalltau(np.flatnonzero(ok), row[ok])[0])


def ews(
    series: Series,
    *,
    window: float = 0.25,
    detrend: str | None = "gaussian",
    bandwidth: float = 0.2,
    lags: Sequence[int] = (1,),
    indicators: Sequence[str] | None = None,
    times: Any = None,
    segment: int = 40,
    low_band: float = 0.1,
    surrogates: int = 0,
    surrogate_kind: str = "ar1",
    key: Key | None = None,
    tau_method: str = "auto",
    throw: bool = False,
) -> EWSResult:
    """Early-warning indicators of one series (n,) or many (series, n) at once.

    **Arguments:** `window`: rolling window, a fraction of n (≤ 1) or a number of
    points; `detrend`: "gaussian", "lowess" or None; `bandwidth`: of the Gaussian
    kernel or the LOWESS span, a fraction of n or points; `lags`: for the
    autocorrelations `ac{lag}`; `indicators`: a subset of variance, std, cv, skew,
    kurtosis, ac{lag}, smax, low_freq_ratio (default all); `times`: the sample
    times, evenly spaced (default the index; Kendall τ is taken against them);
    `segment`, `low_band`: Welch segment length (points) and the low band of
    `low_freq_ratio` (a fraction of the Nyquist frequency); `surrogates`: how many
    surrogate series (`surrogate_kind` "ar1": an AR(1) with the residuals' lag-1
    autocorrelation and variance; "phase": phase-randomised residuals) to compare
    each τ with (p-value: the fraction at least as large); `key`: their PRNG key;
    `tau_method`: how Kendall τ is computed (`kendall_tau`'s `method`).
    Conventions: the module docstring and `EWSResult.conventions`.

    `throw=True` raises `RuntimeError` (with the `message`) instead of returning a
    result that is not `ok`.

    **Returns:** an `EWSResult`.

    **Raises:** `ValueError` for NaNs in the series, a window of fewer than 4
    points or longer than the series, unevenly spaced or mis-sized `times`, an
    unknown detrending / indicator / surrogate.
    """
    x, single = as_series(series, 8)
    n = x.shape[1]
    w = int(_points(window, n, "window"))
    if not 4 <= w <= n:
        raise ValueError(f"the rolling window must hold 4 … {n} points, got {w}")
    if segment < 4:
        raise ValueError(f"segment must hold at least 4 points, got {segment}")
    t_all = np.arange(n, dtype=float) if times is None else np.asarray(times, float)
    if t_all.shape != (n,) or not np.allclose(
        np.diff(t_all), t_all[1] - t_all[0], rtol=1e-6
    ):
        raise ValueError(f"times must be {n} evenly spaced values")
    known = [*MOMENTS, *(f"ac{lag}" for lag in lags), *SPECTRAL]
    names = list(indicators) if indicators is not None else known
    unknown = [k for k in names if k not in known]
    if unknown:
        raise ValueError(f"unknown indicators {unknown}; known: {known}")
    bw = None if detrend is None else _points(bandwidth, n, "bandwidth")
    xj = jnp.asarray(x)
    trend = _trend(xj, detrend, 0.0 if bw is None else bw)
    res = xj - trend
    spectral = (int(segment), float(low_band)) if set(names) & {*SPECTRAL} else None
    values = _chunked_moments(res, xj, w, tuple(lags), spectral)
    out = {k: values[k] for k in names}
    # The first w − 1 indices are NaN in every indicator.
    taus = {
        k: kendall_tau(v[:, w - 1 :], t_all[w - 1 :], method=tau_method)
        for k, v in out.items()
    }
    p_values = {}
    if surrogates:
        p_values = _significance(
            np.asarray(res),
            taus,
            names,
            (w, tuple(lags), spectral),
            t_all,
            surrogates,
            surrogate_kind,
            key,
        )
    if single:
        out = {k: v[0] for k, v in out.items()}
        taus = {k: v[0] for k, v in taus.items()}
        p_values = {k: v[0] for k, v in p_values.items()}
    return checked(
        EWSResult(
            indicators=out,
            kendall_tau=taus,
            trend=np.asarray(trend),
            residuals=np.asarray(res),
            window=w,
            bandwidth=bw,
            conventions=dict(CONVENTIONS),
            p_value=p_values,
            times=t_all,
            detrend=detrend,
        ),
        throw,
    )


def _surrogates(res: np.ndarray, count: int, kind: str, key) -> np.ndarray:
    """(series, count, n) surrogates of the residuals."""
    key = jax.random.key(0) if key is None else key
    s, n = res.shape
    if kind == "ar1":
        r = res - res.mean(1, keepdims=True)
        phi = (r[:, 1:] * r[:, :-1]).sum(1) / (r[:, :-1] ** 2).sum(1)
        sd = r.std(1) * np.sqrt(np.maximum(1 - phi**2, 1e-12))
        noise = np.asarray(jax.random.normal(key, (s, count, n)))

        def one(phi_i, sd_i, e):
            def step(prev, z):
                nxt = phi_i * prev + sd_i * z
                return nxt, nxt

            start = e[:, 0] * sd_i / jnp.sqrt(jnp.maximum(1 - phi_i**2, 1e-12))
            _, path = jax.lax.scan(step, start, e[:, 1:].T)
            return jnp.concatenate([start[:, None], path.T], axis=1)

        return np.asarray(jax.jit(jax.vmap(one))(phi, sd, noise))
    if kind == "phase":
        spec = np.fft.rfft(res, axis=1)
        phases = np.array(
            jax.random.uniform(key, (s, count, spec.shape[1]), maxval=2 * np.pi)
        )
        phases[..., 0] = 0.0
        if n % 2 == 0:
            phases[..., -1] = 0.0
        return np.fft.irfft(spec[:, None, :] * np.exp(1j * phases), n=n, axis=2)
    raise ValueError(f"unknown surrogate kind {kind!r}; use 'ar1' or 'phase'")


def _significance(res, taus, names, settings, times, count, kind, key):
    sur = _surrogates(res, count, kind, key)
    s, c, n = sur.shape
    flat = jnp.asarray(sur.reshape(s * c, n))
    w = settings[0]
    values = _chunked_moments(flat, flat + 1.0, *settings)  # cv: a nonzero mean
    out = {}
    for k in names:
        t_sur = kendall_tau(values[k][:, w - 1 :], times[w - 1 :]).reshape(s, c)
        out[k] = (t_sur >= taus[k][:, None]).mean(1)
    return out
