"""Early-warning indicators: closed forms, ewstools 2.1.3, SciPy."""

import warnings

import numpy as np
import pytest
from scipy.stats import kendalltau

import dynsim as ds
from dynsim.analysis import ews, kendall_tau
from dynsim.cli import main
from tests.helpers import has_line


def ar1(phi, sigma, n, count, seed=0):
    rng = np.random.default_rng(seed)
    x = np.zeros((count, n))
    x[:, 0] = rng.standard_normal(count) * sigma / np.sqrt(1 - phi**2)
    for t in range(1, n):
        x[:, t] = phi * x[:, t - 1] + sigma * rng.standard_normal(count)
    return x


def test_ar1_autocorrelation_and_variance():
    # x_t = φ x_{t−1} + σ ε_t: lag-1 autocorrelation φ, variance σ²/(1 − φ²).
    # Over the whole series (window = n), 200 series of n = 2000: the mean estimate
    # lies within 4 standard errors (sd of one estimate: √((1 − φ²)/n) for φ̂,
    # var·√(2(1 + φ²)/((1 − φ²) n)) for the variance; minus the known −(1+3φ)/n
    # small-sample bias of φ̂, Kendall 1954).
    phi, sigma, n, count = 0.7, 0.5, 2000, 200
    x = ar1(phi, sigma, n, count)
    r = ews(x, window=1.0, detrend=None)
    ac = r.indicators["ac1"][:, -1]
    var = r.indicators["variance"][:, -1]
    v_true = sigma**2 / (1 - phi**2)
    se_ac = np.sqrt((1 - phi**2) / n) / np.sqrt(count)
    se_var = v_true * np.sqrt(2 * (1 + phi**2) / ((1 - phi**2) * n)) / np.sqrt(count)
    assert abs(ac.mean() - (phi - (1 + 3 * phi) / n)) < 4 * se_ac
    assert abs(var.mean() - v_true) < 4 * se_var
    assert r.indicators["ac1"].shape == (count, n)
    assert np.isnan(r.indicators["ac1"][:, : n - 1]).all()


def test_equal_to_ewstools():
    # ewstools 2.1.3 on the same series and settings (Gaussian detrending with
    # bandwidth 0.2, window 0.25): the same trend, indicators and Kendall τ.
    import ewstools  # a test-only dependency (the dev extra)

    rng = np.random.default_rng(3)
    n = 400
    series = [
        np.cumsum(rng.standard_normal(n)) * 0.1 + np.sin(np.arange(n) / 40) + 5,
        ar1(0.5, 1.0, n, 1, seed=4)[0] + np.linspace(2, 4, n),
        np.exp(0.2 * rng.standard_normal(n)) + 1,
    ]
    ours = ews(np.stack(series), window=0.25, bandwidth=0.2, lags=(1, 2))
    names = {
        "variance": "variance",
        "std": "std",
        "cv": "cv",
        "skew": "skew",
        "kurtosis": "kurtosis",
        "ac1": "ac1",
        "ac2": "ac2",
    }
    for i, x in enumerate(series):
        ts = ewstools.TimeSeries(data=x)
        ts.detrend(method="Gaussian", bandwidth=0.2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ts.compute_var(rolling_window=0.25)
            ts.compute_std(rolling_window=0.25)
            ts.compute_cv(rolling_window=0.25)
            ts.compute_skew(rolling_window=0.25)
            ts.compute_kurt(rolling_window=0.25)
            ts.compute_auto(rolling_window=0.25, lag=1)
            ts.compute_auto(rolling_window=0.25, lag=2)
            ts.compute_ktau()
        assert np.allclose(ts.state["smoothing"].values, ours.trend[i], atol=1e-10)
        for mine, theirs in names.items():
            a, b = ts.ews[theirs].values, ours.indicators[mine][i]
            assert np.array_equal(np.isnan(a), np.isnan(b)), mine
            ok = ~np.isnan(a)
            assert np.allclose(a[ok], b[ok], rtol=1e-8, atol=1e-10), mine
            assert ours.kendall_tau[mine][i] == pytest.approx(ts.ktau[theirs], abs=1e-8)


def test_lowess_and_smax_equal_to_ewstools():
    # ewstools 2.1.3's LOWESS detrending (statsmodels, 3 robustness iterations; an
    # outlier exercises them) and its Smax, which it evaluates every 20th window.
    import ewstools

    rng = np.random.default_rng(3)
    n = 400
    x = np.cumsum(rng.standard_normal(n)) * 0.1 + np.sin(np.arange(n) / 40) + 5
    x[100] += 3.0
    ours = ews(x, window=0.25, detrend="lowess", bandwidth=0.2)
    ts = ewstools.TimeSeries(data=x)
    ts.detrend(method="Lowess", span=0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ts.compute_spectrum(rolling_window=0.25)
        ts.compute_smax()
    assert np.allclose(ts.state["smoothing"].values, ours.trend, rtol=0, atol=1e-10)
    smax = ts.ews_spec["smax"]
    at = smax.index.values.astype(int)
    assert len(at) == 16
    assert np.allclose(ours.indicators["smax"][at], smax.values, rtol=1e-10, atol=0)


def test_low_frequency_ratio_of_white_and_red_noise():
    # White noise (variance σ²), Hann window w of N = 40 points (Σw = N/2,
    # Σw² = 3N/8), each segment's mean removed: the expected periodogram of bin k
    # is σ²(Σw² − N|c_k|²) with c_k = mean(w e^{−2πijk/N}) = 1/2, −1/4, 0 for
    # |k| = 0, 1, ≥ 2, i.e. 1/3, 5/6, 1 of the flat 3N/8 σ². The low band |k| ≤ 2
    # holds 1/3 + 2·5/6 + 2 = 4 of the 39 units of the whole: ratio 4/39.
    # An AR(1) with φ > 0 puts more power at low frequencies, the more the larger φ.
    white = ews(ar1(0.0, 1.0, 4000, 20), window=1.0, detrend=None)
    ratio = white.indicators["low_freq_ratio"][:, -1]
    assert abs(ratio.mean() - 4 / 39) < 4 * ratio.std() / np.sqrt(ratio.size)
    red = [
        ews(ar1(phi, 1.0, 4000, 4), window=1.0, detrend=None)
        .indicators["low_freq_ratio"][:, -1]
        .mean()
        for phi in (0.3, 0.6, 0.9)
    ]
    assert 4 / 39 < red[0] < red[1] < red[2]


def test_kendall_tau_is_scipys_tau_b():
    rng = np.random.default_rng(5)
    v = np.round(rng.standard_normal((4, 60)), 1)  # ties
    v[1, :10] = np.nan
    got = kendall_tau(v, method="jax")
    assert np.allclose(kendall_tau(v, method="scipy"), got, rtol=0, atol=1e-12)
    for row, tau in zip(v, got, strict=True):
        ok = ~np.isnan(row)
        assert tau == pytest.approx(
            kendalltau(np.flatnonzero(ok), row[ok])[0], abs=1e-12
        )
    # Times in any order (the pairs are the same), a long row with ties and NaNs.
    back = kendall_tau(v[:, ::-1], times=np.arange(60.0)[::-1], method="jax")
    assert np.allclose(back, got, rtol=0, atol=1e-12)
    long = np.round(rng.standard_normal((2, 3001)) + np.linspace(0, 1, 3001), 1)
    long[0, 100:140] = np.nan
    assert np.allclose(
        kendall_tau(long, method="jax"), kendall_tau(long, method="scipy"), atol=1e-12
    )
    with pytest.raises(ValueError, match="distinct"):
        kendall_tau(v, times=np.zeros(60))


def test_surrogate_significance_and_bad_input():
    x = ar1(0.6, 1.0, 300, 2, seed=7)
    x[0] += np.linspace(0, 1, 300) * np.concatenate([np.zeros(150), np.ones(150)])
    r = ews(x, window=0.3, detrend=None, surrogates=50, indicators=["variance"])
    assert r.p_value["variance"].shape == (2,)
    assert np.all((0 <= r.p_value["variance"]) & (r.p_value["variance"] <= 1))
    phase = ews(x[0], window=0.3, surrogates=20, surrogate_kind="phase")
    assert 0 <= phase.p_value["ac1"] <= 1
    with pytest.raises(ValueError, match="NaN"):
        ews(np.array([1.0, np.nan] * 10))
    with pytest.raises(ValueError, match="rolling window must hold"):
        ews(np.arange(20.0), window=3)
    with pytest.raises(ValueError, match="unknown indicators"):
        ews(np.arange(20.0), indicators=["variance", "entropy"])
    with pytest.raises(ValueError, match="unknown detrend"):
        ews(np.arange(20.0), detrend="lowes")
    with pytest.raises(ValueError, match="evenly spaced"):
        ews(np.arange(20.0), times=np.arange(20.0) ** 2)


def test_hdf5_round_trip(tmp_path):
    x = ar1(0.6, 1.0, 200, 3, seed=9) + np.linspace(0, 2, 200)
    r = ews(x, window=0.3, bandwidth=0.25, lags=(1, 3), surrogates=10)
    ds.io.save(r, tmp_path / "ews.h5", "ews")
    back = ds.io.load(tmp_path / "ews.h5", "ews")
    assert back.window == r.window and back.bandwidth == r.bandwidth
    assert back.conventions == r.conventions
    for k in r.indicators:
        assert np.array_equal(back.indicators[k], r.indicators[k], equal_nan=True)
        assert np.array_equal(back.kendall_tau[k], r.kendall_tau[k])
        assert np.array_equal(back.p_value[k], r.p_value[k])
    assert np.array_equal(back.trend, r.trend)
    assert main(["inspect", str(tmp_path / "ews.h5")]) == 0
    assert main(["plot", str(tmp_path / "ews.h5"), "--out", str(tmp_path)]) == 0
    assert (tmp_path / "ews_ews.png").exists()
    # The panel draws the loaded numbers: series, trend and each indicator.
    fig = back.figures()[0][1]
    assert has_line(fig, back.trend[0]) and has_line(fig, back.indicators["ac1"][0])
