"""Brute-force bifurcation diagrams from scans: peaks and periods."""

from importlib import resources

import numpy as np
import pytest

import dynsim as ds
from dynsim.cli import main
from dynsim.observables import Peaks, Period


def distinct_values(rows, tol):
    """How many clusters (gaps > tol) of finite values each row has."""
    out = []
    for row in rows:
        v = np.sort(row[np.isfinite(row)])
        out.append(int(1 + np.sum(np.diff(v) > tol)) if v.size else 0)
    return out


def test_rossler_cascade_from_the_shipped_config(tmp_path):
    # Rössler (a, b) = (0.2, 0.2): period 1 at c = 2.5, period 2 at c = 3.5 and
    # period 4 at c = 4.0 (doublings at c ≈ 2.83, 3.84, 4.12; tests/analysis/
    # test_cycles.py locates the first by continuation).
    text = resources.files("dynsim.configs").joinpath("rossler_orbit_diagram.toml")
    cfg = tmp_path / "r.toml"
    cfg.write_text(
        text.read_text().replace(
            "params.c = { start = 2.5, stop = 6.0, num = 600 }",
            "params.c = [2.5, 3.5, 4.0]",
        )
    )
    out = tmp_path / "r.h5"
    assert main(["run", str(cfg), "--output", str(out)]) == 0
    res = ds.io.load(out)
    peaks = res.values["x_max"]
    assert peaks.shape == (3, 64)
    assert distinct_values(peaks, 1e-3) == [1, 2, 4]
    assert (tmp_path / "rossler_orbit_diagram_x_max.png").exists()
    # One dot per located maximum, at its parameter value.
    (dots,) = ds.plot.orbit_diagram(res, "x_max").axes[0].get_lines()
    c = np.repeat(res.params["c"], peaks.shape[1])
    keep = np.isfinite(peaks.ravel())
    assert np.array_equal(dots.get_xdata(), c[keep])
    assert np.array_equal(dots.get_ydata(), peaks.ravel()[keep])


def test_peaks_and_period_of_a_known_cycle():
    # Hopf normal form, a = −1, b = 0.4, ω = 1: the cycle of μ has radius √μ, so the
    # maxima of x are √μ and the period 2π/(ω + b μ).
    model = ds.models.HopfNormalForm(a=-1.0, b=0.4, omega=1.0)
    mus = np.array([0.04, 0.25, 0.64])
    res = ds.scan(
        model,
        {"mu": mus},
        (0.0, 400.0),
        observables={
            "peaks": Peaks(state="x", t_from=300.0, max_peaks=8),
            "period": Period(state="x", t_from=300.0),
        },
        samples=8000,
        rtol=1e-10,
        atol=1e-12,
    )
    assert np.all(np.isfinite(res.values["peaks"]))
    assert np.allclose(res.values["peaks"], np.sqrt(mus)[:, None], rtol=1e-5)
    assert np.allclose(res.values["period"], 2 * np.pi / (1 + 0.4 * mus), rtol=1e-5)
    # A decaying spiral settles: no sustained peaks above the fixed point.
    rest = ds.scan(
        model,
        {"mu": [-0.5]},
        (0.0, 400.0),
        observables={"peaks": Peaks(state="x", t_from=300.0, max_peaks=4)},
    )
    finite = rest.values["peaks"][np.isfinite(rest.values["peaks"])]
    assert np.all(np.abs(finite) < 1e-6)  # solver noise at atol = 1e-9


def test_peaks_need_one_component():
    with pytest.raises(ValueError, match="one state component"):
        ds.scan(
            ds.models.HopfNormalForm(),
            {"mu": [0.1]},
            (0.0, 10.0),
            observables={"p": Peaks()},
        )
