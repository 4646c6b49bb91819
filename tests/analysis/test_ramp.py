"""Ramped-parameter experiments: critical slowing down before a fold and a Hopf
point, the CLI task, storage."""

import jax
import numpy as np
import pytest

import dynsim as ds
from dynsim.analysis import ramp_experiment
from dynsim.cli import main
from dynsim.models import HopfNormalForm, MayHarvesting
from tests.helpers import drawn_lines, has_line


def may_fold() -> float:
    # x' = x(1 − x/10) − h x²/(1 + x²): on the equilibria h(x) = (1 − x/10)(1 + x²)/x
    # = 1/x + x − 1/10 − x²/10, whose maximum (h'(x) = 0 ⇔ x³ − 5x² + 5 = 0, the
    # upper root) is the fold of the high-biomass state.
    x = max(np.roots([1.0, -5.0, 0.0, 5.0]).real)
    return 1 / x + x - 0.1 - x**2 / 10


@pytest.fixture(scope="module")
def may():
    return ramp_experiment(
        MayHarvesting(),
        "h",
        1.0,
        3.0,
        (0.0, 1000.0),
        sigma=0.1,
        realisations=16,
        state="x",
        key=jax.random.key(1),
        indicators=["variance", "ac1"],
    )


def test_may_ramp_shows_critical_slowing_down(may):
    # The fold located by continuation is the closed form's; up to it, variance and
    # lag-1 autocorrelation trend upward in (nearly) every run, and not in the
    # null runs with h held at 1.
    assert may.bifurcation == "fold" and may.transition == pytest.approx(
        may_fold(), abs=1e-6
    )
    assert may.t_transition == pytest.approx(1000 * (may_fold() - 1.0) / 2.0)
    assert may.ews.times[-1] <= may.t_transition
    assert may.values[-1] == pytest.approx(may_fold(), abs=2e-3)
    for name in ("variance", "ac1"):
        ramp, null = may.ews.kendall_tau[name], may.null.kendall_tau[name]
        assert ramp.shape == null.shape == (16,)
        assert np.median(ramp) > 0.5, name
        assert np.median(null) < 0.3, name
        assert np.mean(ramp > null) > 0.8


def test_hopf_ramp_variance_rises():
    # The noisy Hopf normal form, μ from −1 towards its Hopf point μ = 0.
    r = ramp_experiment(
        HopfNormalForm(mu=-1.0),
        "mu",
        -1.0,
        0.5,
        (0.0, 600.0),
        sigma=0.05,
        realisations=8,
        saveat=1201,
        null=False,
        indicators=["variance"],
    )
    assert r.bifurcation == "hopf" and abs(r.transition) < 1e-8 and r.null is None
    assert np.median(r.ews.kendall_tau["variance"]) > 0.5


def test_storage_figures_and_bad_input(may, tmp_path):
    path = tmp_path / "ramp.h5"
    ds.io.save(may, path, "may")
    back = ds.io.load(path, "may")
    assert back.transition == may.transition and back.bifurcation == "fold"
    assert np.array_equal(back.values, may.values)
    assert np.array_equal(back.ews.indicators["ac1"], may.ews.indicators["ac1"], True)
    assert np.array_equal(
        back.null.kendall_tau["variance"], may.null.kendall_tau["variance"]
    )
    paths = ds.plot.save_figures(back, tmp_path, "may")
    assert [p.name for p in paths] == ["may_ews.png", "may_kendall.png"]
    panel, taus = (fig for _, fig in back.figures())
    assert has_line(panel, back.ews.indicators["ac1"][0])
    drawn_taus = [ly for _, ly, label in drawn_lines(taus) if label == "ramp"]
    assert np.allclose(drawn_taus[0], back.ews.kendall_tau["variance"])
    with pytest.raises(ValueError, match="start != stop"):
        ramp_experiment(MayHarvesting(), "h", 1.0, 1.0)
    with pytest.raises(ValueError, match="unknown state 'y'"):
        ramp_experiment(MayHarvesting(), "h", 1.0, 2.0, state="y")
    with pytest.raises(ValueError, match="hh"):
        ramp_experiment(MayHarvesting(), "hh", 1.0, 2.0)


def test_cli_ramp_task(tmp_path):
    cfg = tmp_path / "ramp.toml"
    cfg.write_text(
        f"""
[run]
name = "may"
output = "{tmp_path / "ramp.h5"}"

[model]
name = "MayHarvesting"

[time]
t_span = [0.0, 400.0]
saveat = 401

[ramp]
param = "h"
span = [1.0, 3.0]
realisations = 4
transition = 2.5
detrend = "lowess"
indicators = ["variance", "ac1"]
"""
    )
    assert main(["run", str(cfg)]) == 0
    back = ds.io.load(tmp_path / "ramp.h5", "may")
    assert back.bifurcation == "given" and back.transition == 2.5
    assert back.ews.detrend == "lowess" and back.ews.trend.shape == (4, 301)
    assert (tmp_path / "may_ews.png").exists()
    bad = cfg.read_text().replace('detrend = "lowess"', 'detrend = "loess"')
    cfg.write_text(bad)
    assert main(["run", str(cfg)]) == 2
