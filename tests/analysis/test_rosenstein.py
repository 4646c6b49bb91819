"""Rosenstein's largest exponent from series, against the model-based values."""

import numpy as np
import pytest

import dynsim as ds
from dynsim.analysis import delay_embed, rosenstein
from tests.helpers import has_line


def test_lorenz_series():
    # x(t) of Lorenz (10, 28, 8/3) sampled every 0.05 for 1 000 time units; the
    # largest exponent 0.9056 (Sprott, Chaos and Time-Series Analysis, 2003; the QR
    # spectrum in test_lyapunov.py). Fitted on the linear part, t ∈ [0.5, 2.5].
    r = ds.simulate(ds.models.Lorenz(), (0, 1020), saveat=np.arange(20, 1020, 0.05))
    x = np.asarray(r.ys)[:, 0]
    lam = rosenstein(x, dt=0.05, dim=5, lag=2, horizon=60, fit=(0.5, 2.5))
    assert lam.method == "rosenstein" and lam.exponents.shape == (1,)
    assert abs(lam.exponents[0] - 0.9056) < 0.05
    assert 0 < lam.stderr[0] < 0.05
    assert lam.running.shape == (61, 1) and lam.times[-1] == pytest.approx(3.0)


def test_henon_series():
    # x_n of the Hénon map (1.4, 0.3): λ₁ = 0.4192 per iterate (Sprott 2003).
    r = ds.simulate(ds.models.Henon(), (0, 5100), saveat=5100)
    x = np.asarray(r.ys)[100:, 0]
    lam = rosenstein(x, dim=2, lag=1, horizon=10, fit=(1, 6))
    assert abs(lam.exponents[0] - 0.4192) < 0.02


def test_regular_series_have_zero_exponent_and_batches():
    # A periodic and a quasi-periodic signal: nearby states stay nearby, λ ≈ 0.
    t = np.arange(0, 400, 0.05)
    x = np.stack([np.sin(t), np.sin(1.3 * t) + 0.5 * np.sin(0.7 * t)])
    lam = rosenstein(x, dt=0.05, dim=3, horizon=100, fit=(0, 5))
    assert lam.exponents.shape == (2, 1) and lam.running.shape == (2, 101, 1)
    assert np.all(np.abs(lam.exponents) < 0.03)


def test_delay_embedding_and_bad_input(tmp_path):
    v = delay_embed(np.arange(10.0), 3, 2)
    assert v.shape == (6, 3) and np.array_equal(v[1], [1.0, 3.0, 5.0])
    with pytest.raises(ValueError, match="NaN"):
        rosenstein(np.array([1.0, np.nan] * 20))
    with pytest.raises(ValueError, match="n >= 16"):
        rosenstein(np.arange(5.0))
    with pytest.raises(ValueError, match="too few"):
        rosenstein(np.sin(np.arange(40.0)), dim=3, lag=1, horizon=30)
    with pytest.raises(ValueError, match="fewer than 2 of the times"):
        rosenstein(np.sin(np.arange(400.0)), horizon=10, fit=(20.0, 30.0))
    lam = rosenstein(np.sin(np.arange(0, 200, 0.1)), dt=0.1, horizon=20)
    ds.io.save(lam, tmp_path / "r.h5", "series")
    back = ds.io.load(tmp_path / "r.h5", "series")
    assert back.fit_range == lam.fit_range and back.method == "rosenstein"
    assert np.array_equal(back.running, lam.running)
    (png,) = ds.plot.save_figures(back, tmp_path, "series")
    assert png.name == "series_lyapunov.png"
    assert has_line(back.figures()[0][1], back.running[:, 0], back.times)
