"""Figures agree with the data they draw: checked on the plotted coordinates and
labels, not on the PNG."""

import dataclasses

import numpy as np
import pytest

import dynsim as ds
from dynsim.analysis import continuation
from dynsim.models import SelkovLargeD

CELLS = [(0.5, 0.0), (-0.5, 0.0), (0.0, 0.0)]


@pytest.fixture(scope="module")
def lobes():
    model = SelkovLargeD(centers=CELLS, D=1.0, tau=0.55)
    grid = {"D": np.geomspace(0.2, 10, 8), "tau": np.linspace(0.1, 1.2, 9)}
    return ds.analysis.selkov.phase_diagram(
        model, grid, method="jacobian", progress=False
    )


def _vertices(artist) -> np.ndarray:
    paths = artist.get_paths()
    return np.concatenate([p.vertices for p in paths if len(p.vertices)])


def test_shaded_lobe_is_bounded_by_its_own_zero_growth_contour(lobes):
    assert (lobes.mode > 0).any() and (lobes.mode == 0).any()
    fig = ds.plot.phase_diagram(lobes)
    ax = fig.axes[0]
    filled = [c for c in ax.collections if getattr(c, "filled", False)]
    lines = [c for c in ax.collections if getattr(c, "filled", None) is False]
    assert filled and lines
    shade = np.concatenate([_vertices(c) for c in filled])
    # In data coordinates: every point of the Re λ = 0 contour is a vertex of the
    # shaded region's boundary (the same crossings, not cell edges).
    for x, y in _vertices(lines[0]):
        d = np.min(np.hypot(np.log(shade[:, 0] / x), shade[:, 1] - y))
        assert d < 1e-9
    # The log D axis (1.7 decades) is labelled at more than its two decades.
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    visible = [v for v in ax.get_xticks() if lobes.x.min() <= v <= lobes.x.max()]
    assert len(visible) >= 4 and len(labels) >= 4


def test_a_count_axis_is_drawn_as_cells(lobes):
    # An axis of counts (m cells) is not interpolated across: one bar per count,
    # spanning where Re λ > 0 along tau, its ends where Re λ crosses 0 linearly
    # between neighbouring tau values of that count.
    m = np.arange(1.0, 9.0)
    counts = dataclasses.replace(lobes, x_name="m", x=m)
    ax = ds.plot.phase_diagram(counts).axes[0]
    assert not [c for c in ax.collections if getattr(c, "filled", None) is not None]
    bars = [p for p in ax.patches if p.get_width() == pytest.approx(0.8)]
    assert bars
    tau = counts.y
    for bar in bars:
        k = int(round(bar.get_x() + 0.4)) - 1
        assert m[k] == pytest.approx(bar.get_x() + 0.4)
        g = counts.growth[k]
        for end in (bar.get_y(), bar.get_y() + bar.get_height()):
            if end in (tau[0], tau[-1]):
                continue
            j = np.searchsorted(tau, end)
            if counts.mode[k, j - 1] and counts.mode[k, j]:
                continue  # where the in-phase bar meets the anti-phase one
            w = (end - tau[j - 1]) / (tau[j] - tau[j - 1])
            assert g[j - 1] + w * (g[j] - g[j - 1]) == pytest.approx(0, abs=1e-12)
    ticks = [v for v in ax.get_xticks() if m.min() <= v <= m.max()]
    assert ticks and np.allclose(ticks, np.round(ticks))


def test_stability_style_changes_at_the_located_bifurcation():
    origin = continuation(
        ds.models.Lorenz(), "rho", (0.5, 30.0), y0=[0, 0, 0], progress=False
    )
    (pf,) = origin.points
    ax = ds.plot.bifurcation_diagram(origin, state="x").axes[0]
    solid, dashed = ax.get_lines()[:2]
    assert solid.get_linestyle() == "-" and dashed.get_linestyle() == "--"
    assert solid.get_xdata()[-1] == pytest.approx(pf.value, abs=1e-12)
    assert dashed.get_xdata()[0] == pytest.approx(pf.value, abs=1e-12)


def test_ews_panel_names_its_series_and_quotes_the_median():
    rng = np.random.default_rng(0)
    series = rng.standard_normal((5, 400)).cumsum(1)
    res = ds.analysis.ews(series, window=0.25, bandwidth=0.2)
    fig = ds.plot.ews_panel(res, series=2)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    median = np.median(res.kendall_tau["variance"])
    assert any(f"median {median:+.2f} over 5 series" in t for t in texts), texts
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert "series 3 of 5" in labels
