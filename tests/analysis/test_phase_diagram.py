"""Phase diagrams of the Sel'kov cell–bulk models: three methods that must agree."""

import numpy as np
import pytest

import dynsim as ds
from dynsim.analysis.selkov import IN_PHASE, STABLE, phase_diagram, with_cells
from dynsim.cli import main
from dynsim.models import SelkovLargeD, SelkovWellMixed

THREE = [(0.5, 0.0), (-0.5, 0.0), (0.0, 0.0)]
GRID = {"D": [1.0, 8.0], "tau": [0.2, 0.55, 1.1]}


@pytest.fixture(scope="module")
def diagrams():
    model = SelkovLargeD(centers=THREE)
    return {
        m: phase_diagram(model, GRID, method=m, progress=False)
        for m in ("gcep", "jacobian", "simulate")
    }


def test_methods_agree_on_the_lobe(diagrams):
    # τ = 0.55 lies inside the in-phase lobe, 0.2 and 1.1 outside (paper §4), at
    # D = 1 and D = 8, by the GCEP, the large-D ODE's Jacobian and simulation.
    expected = np.array([[STABLE, IN_PHASE, STABLE]] * 2)
    for d in diagrams.values():
        assert np.array_equal(d.mode, expected), (d.method, d.mode)
    g, j = diagrams["gcep"], diagrams["jacobian"]
    # The large-D ODE approaches the GCEP as D grows (its error is O(1/D)).
    err = np.abs(g.growth - j.growth)
    assert err[1].max() < err[0].max() and err[1].max() < 5e-3
    assert np.all(diagrams["simulate"].amplitude[:, 1] > 0.1)


def test_hdf5_round_trip_and_plot(diagrams, tmp_path):
    path = tmp_path / "pd.h5"
    for name, d in diagrams.items():
        ds.io.save(d, path, name)
    back = ds.io.load(path, "gcep")
    assert np.array_equal(back.mode, diagrams["gcep"].mode)
    assert np.allclose(back.growth, diagrams["gcep"].growth)
    assert back.info == diagrams["gcep"].info and back.method == "gcep"
    fig = ds.plot.phase_diagram(*diagrams.values())
    # The simulated points that oscillate in phase are the ones marked so.
    sim = diagrams["simulate"]
    (marks,) = [
        c
        for c in fig.axes[0].collections
        if c.get_label() == "oscillates, in-phase (simulation)"
    ]
    i, j = np.nonzero(sim.mode == IN_PHASE)
    assert np.array_equal(marks.get_offsets(), np.column_stack([sim.x[i], sim.y[j]]))


def test_phase_diagram_config(tmp_path):
    cfg = tmp_path / "pd.toml"
    cfg.write_text(
        """
[run]
name = "lobe"
[model]
name = "SelkovLargeD"
params = { centers = [[0.5, 0.0], [-0.5, 0.0], [0.0, 0.0]] }
[time]
t_span = [0.0, 300.0]
[phase_diagram]
methods = ["jacobian", "simulate"]
params.D = { start = 1.0, stop = 4.0, num = 2, log = true }
params.tau = [0.3, 0.6]
t_from = 200.0
"""
    )
    out = tmp_path / "lobe.h5"
    assert main(["run", str(cfg), "--output", str(out)]) == 0
    assert set(ds.io.runs(out)) == {"lobe_jacobian", "lobe_simulate"}
    assert (tmp_path / "lobe_phase_diagram.png").exists()
    bad = cfg.read_text().replace('"simulate"]', '"brute"]')
    cfg.write_text(bad)
    assert main(["run", str(cfg)]) == 2


def test_bad_arguments():
    model = SelkovLargeD(centers=THREE)
    with pytest.raises(ValueError, match="unknown method"):
        phase_diagram(model, GRID, method="arnoldi")
    with pytest.raises(ValueError, match="exactly two"):
        phase_diagram(model, {"D": [1.0]})


def test_cell_count_axis_shows_quorum_sensing():
    # Well-mixed limit, identical cells: one or two cells never oscillate, three do
    # between the in-phase Hopf points τ ≈ 0.370 and 0.670 (the Routh–Hurwitz roots
    # of the in-phase cubic, tests/models/test_selkov_wellmixed.py).
    model = SelkovWellMixed(n_cells=1)
    taus = [0.2, 0.5, 1.0]
    expected = np.zeros((3, 3), int)
    expected[2, 1] = IN_PHASE
    for method in ("jacobian", "simulate"):
        d = phase_diagram(model, {"m": [1, 2, 3], "tau": taus}, method=method)
        assert np.array_equal(d.mode, expected), (method, d.mode)
    # Either axis may count cells.
    d = phase_diagram(model, {"tau": taus, "m": [1, 2, 3]}, method="jacobian")
    assert d.x_name == "tau" and np.array_equal(d.mode, expected.T)


def test_cells_on_a_ring():
    model = with_cells(SelkovLargeD(centers=THREE, D=2.0), 4, ring_radius=0.3)
    assert np.allclose(model.centers, [(0.3, 0), (0, 0.3), (-0.3, 0), (0, -0.3)])
    assert float(model.D) == 2.0
    with pytest.raises(ValueError, match="positive integer"):
        with_cells(model, 2.5)
    with pytest.raises(ValueError, match="identical cells"):
        with_cells(SelkovLargeD(centers=THREE, mu=[2.0, 2.1, 2.0]), 2)
    with pytest.raises(ValueError, match="no cells"):
        phase_diagram(ds.models.Lorenz(), {"m": [1, 2], "rho": [1.0]})
