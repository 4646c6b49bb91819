"""The 0–1 test for chaos against the regimes Gottwald & Melbourne (2004, 2009)
classify: the logistic map and the Lorenz system, chaotic and periodic."""

import numpy as np
import pytest

import dynsim as ds
from dynsim.analysis import zero_one_test


def logistic(r: float, n: int = 3000, x: float = 0.3, transient: int = 1000):
    out = np.empty(n + transient)
    for i in range(out.size):
        x = r * x * (1 - x)
        out[i] = x
    return out[transient:]


def lorenz_x(rho: float, n: int = 3000, tau: float = 0.3) -> np.ndarray:
    """x sampled every `tau` (a fraction of the mean period: not oversampled)."""
    ts = 100.0 + tau * np.arange(n)
    sol = ds.simulate(ds.models.Lorenz(rho=rho), (0.0, ts[-1]), saveat=ts,
                      rtol=1e-9, atol=1e-9, max_steps=10**6)  # fmt: skip
    return np.asarray(sol.ys)[:, 0]


def test_chaotic_and_periodic_regimes_in_one_batch():
    # Logistic map: r = 4 chaotic (Lyapunov exponent ln 2), r = 3.5 period 4.
    # Lorenz: ρ = 28 chaotic, ρ = 350 a stable periodic orbit (Sparrow 1982).
    series = np.stack([logistic(4.0), logistic(3.5), lorenz_x(28.0), lorenz_x(350.0)])
    result = zero_one_test(series)
    assert result.ok and result.K.shape == (4,) and result.K_c.shape == (4, 100)
    chaotic_map, periodic_map, chaotic_flow, periodic_flow = result.K
    assert chaotic_map > 0.9 and chaotic_flow > 0.9
    assert abs(periodic_map) < 0.1 and abs(periodic_flow) < 0.1
    assert list(result.chaotic) == [True, False, True, False]
    # One series at a time gives the same K (a scalar).
    alone = zero_one_test(series[0])
    assert np.ndim(alone.K) == 0 and alone.K == pytest.approx(chaotic_map, abs=1e-12)
    # Quasi-periodic φ(j) = cos(j) + cos(√2 j) is regular too.
    j = np.arange(3000)
    assert abs(zero_one_test(np.cos(j) + np.cos(np.sqrt(2) * j)).K) < 0.1


def test_unusable_series(tmp_path):
    result = zero_one_test(np.stack([np.ones(500), logistic(4.0, 500)]))
    assert np.isnan(result.K[0]) and result.K[1] > 0.8
    assert list(result.status) == [int(ds.Status.NONFINITE), int(ds.Status.SUCCESS)]
    assert not result.ok and "constant" in result.message
    with pytest.raises(RuntimeError, match="constant"):
        zero_one_test(np.ones(500), throw=True)
    with pytest.raises(ValueError, match="n >= 100"):
        zero_one_test(np.arange(50.0))
    with pytest.raises(ValueError, match="NaN"):
        zero_one_test(np.full(500, np.nan))
    ds.io.save(result, tmp_path / "k.h5", "k")
    back = ds.io.load(tmp_path / "k.h5", "k")
    assert np.array_equal(back.K, result.K, equal_nan=True)
