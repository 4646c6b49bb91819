"""The dynsim command line: configs, errors, outputs."""

import re
import subprocess
import sys
from importlib import resources

import pytest

import dynsim as ds
from dynsim.cli import ConfigError, main, parse_config

SCAN = """
[run]
name = "bru"
task = "scan"

[model]
name = "Brusselator"
params = { a = 1.0 }

[solver]
name = "tsit5"
rtol = 1e-6

[time]
t_span = [0.0, 60.0]

[scan]
samples = 200
chunk_size = 8
params.a = [1.0, 1.5]
params.b = { start = 1.0, stop = 4.0, num = 8 }
observables.amp = { kind = "amplitude", state = "x", t_from = 40.0 }
"""

SIM = """
[run]
name = "lor"
[model]
name = "AdditiveNoise"
params = { sigma = 0.5, base = { name = "Lorenz", rho = 20.0 } }
[solver]
name = "euler"
dt0 = 0.01
[time]
t_span = [0, 2]
saveat = 50
"""


def test_run_scan_config_writes_h5_and_png(tmp_path, capsys):
    cfg = tmp_path / "bru.toml"
    cfg.write_text(SCAN)
    out = tmp_path / "res" / "bru.h5"
    assert main(["run", str(cfg), "--output", str(out)]) == 0
    res = ds.io.load(out, "bru")
    assert res.shape == (2, 8) and res.info.config == SCAN
    # Brusselator Hopf at b = 1 + a²: oscillating exactly beyond it (MODELS.md §6).
    a = res.reshape(res.params["a"])
    b = res.reshape(res.params["b"])
    amp = res.reshape(res.values["amp"])
    far = abs(b - (1 + a**2)) > 0.3
    assert ((amp > 0.05) == (b > 1 + a**2))[far].all()
    assert (tmp_path / "res" / "bru_amp.png").stat().st_size > 10_000
    printed = capsys.readouterr().out
    assert str(out) in printed and "bru_amp.png" in printed


def test_run_simulate_config_nested_model(tmp_path):
    cfg = tmp_path / "lor.toml"
    cfg.write_text(SIM)
    out = tmp_path / "lor.h5"
    assert main(["run", str(cfg), "--output", str(out)]) == 0
    traj = ds.io.load(out)
    assert traj.ys.shape == (50, 3) and traj.info.seed is not None
    assert (tmp_path / "lor_phase.png").exists()
    assert main(["inspect", str(out)]) == 0
    assert main(["plot", str(out), "--out", str(tmp_path / "figs")]) == 0
    assert (tmp_path / "figs" / "lor_timeseries.png").exists()


@pytest.mark.parametrize(
    "edit, message",
    [
        (("[solver]", "[solvr]"), "unknown key 'solvr'.*did you mean 'solver'"),
        (("rtol = 1e-6", "rtoll = 1e-6"), r"unknown key 'rtoll' in \[solver\]"),
        (('name = "tsit5"', 'name = "rk4"'), r"\[solver\] name must be one of"),
        (
            ("params.a = [1.0, 1.5]", "params.aa = [1.0]"),
            "no parameter 'aa'|unknown key 'aa'",
        ),
        (('kind = "amplitude"', 'kind = "amp"'), "unknown observable kind 'amp'"),
        (("num = 8", "num = -1"), "num must be a positive integer"),
        (('name = "Brusselator"', 'name = "Brussel"'), "unknown model 'Brussel'"),
        (
            ("params = { a = 1.0 }", "params = { q = 1.0 }"),
            "unknown key 'q' in .model. params of Brusselator",
        ),
    ],
)
def test_bad_config_one_line_error(tmp_path, capsys, edit, message):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(SCAN.replace(*edit))
    assert main(["run", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dynsim: error:") and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err
    assert re.search(message, err), err


def test_bad_results_file(tmp_path, capsys):
    f = tmp_path / "x.h5"
    f.write_text("nope")
    assert main(["inspect", str(f)]) == 2
    assert "cannot be read as HDF5" in capsys.readouterr().err
    assert main(["inspect", str(tmp_path / "missing.h5")]) == 2


SHIPPED = sorted(
    p.name
    for p in resources.files("dynsim.configs").iterdir()
    if p.name.endswith(".toml")
)


def test_configs_are_shipped():
    assert {
        "demo.toml",
        "lorenz_bifurcation.toml",
        "rossler_orbit_diagram.toml",
    } <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_configs_are_valid(name):
    text = resources.files("dynsim.configs").joinpath(name).read_text()
    cfg = parse_config(text, name)
    cfg.build_model()
    if name == "demo.toml":
        assert cfg.task == "phase_diagram" and cfg.model_name == "SelkovLargeD"
        assert set(cfg.phase_methods) == {"gcep", "jacobian", "simulate"}
    if name == "selkov_single_cell.toml":
        model = cfg.build_model()
        assert "Hopf (closed form)" in model.analytic_curves("alpha", "mu", [1.0])


def test_parse_errors_are_config_errors():
    with pytest.raises(ConfigError, match="not valid TOML"):
        parse_config("[run\n")
    with pytest.raises(ConfigError, match="missing required key 't_span'"):
        parse_config('[model]\nname = "Lorenz"\n[time]\n')


def test_console_script_entry_point(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "dynsim", "--help"], capture_output=True, text=True
    )
    assert proc.returncode == 0 and "demo" in proc.stdout


def test_continuation_config(tmp_path, capsys):
    # The shipped Lorenz config end to end: branches, switching, cycles, figure.
    text = resources.files("dynsim.configs").joinpath("lorenz_bifurcation.toml")
    cfg = tmp_path / "lorenz.toml"
    cfg.write_text(text.read_text())
    out = tmp_path / "lb.h5"
    assert main(["run", str(cfg), "--output", str(out)]) == 0
    runs = ds.io.runs(out)
    assert runs["lorenz_bifurcation_branch"] == "branch"
    assert runs["lorenz_bifurcation_branch1a"] == "branch"
    assert runs["lorenz_bifurcation_cycles1"] == "cycle_branch"
    origin = ds.io.load(out, "lorenz_bifurcation_branch")
    assert [b.kind for b in origin.points] == ["pitchfork"]
    assert (tmp_path / "lorenz_bifurcation_bifurcation.png").stat().st_size > 20_000
    # A second parameter for the Hopf curves needs its span too.
    cfg.write_text(text.read_text() + 'curve_param = "sigma"\n')
    assert main(["run", str(cfg)]) == 2
    assert "curve_param and curve_span go together" in capsys.readouterr().err
    cfg.write_text(text.read_text().replace('param = "rho"', 'param = "rhoo"'))
    assert main(["run", str(cfg), "--output", str(out)]) == 2
    assert "no parameter 'rhoo'" in capsys.readouterr().err
