"""The dynsim command line: configs, errors, outputs."""

import os
import re
import signal
import subprocess
import sys
from importlib import resources

import numpy as np
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
    # Brusselator Hopf at b = 1 + a²: oscillating exactly beyond it (docs/models.md §6).
    a = res.reshape(res.params["a"])
    b = res.reshape(res.params["b"])
    amp = res.reshape(res.values["amp"])
    far = abs(b - (1 + a**2)) > 0.3
    assert ((amp > 0.05) == (b > 1 + a**2))[far].all()
    assert (tmp_path / "res" / "bru_amp.png").read_bytes()[:4] == b"\x89PNG"
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
    cycles = ds.io.load(out, "lorenz_bifurcation_cycles1")
    assert "collocation" in cycles.info.solver  # the default cycle method
    assert (tmp_path / "lorenz_bifurcation_bifurcation.png").read_bytes()[
        :4
    ] == b"\x89PNG"
    # A second parameter for the Hopf curves needs its span too.
    cfg.write_text(text.read_text() + 'curve_param = "sigma"\n')
    assert main(["run", str(cfg)]) == 2
    assert "curve_param and curve_span go together" in capsys.readouterr().err
    cfg.write_text(text.read_text() + 'cycle_method = "shootin"\n')
    assert main(["run", str(cfg)]) == 2
    assert "'collocation' or 'shooting'" in capsys.readouterr().err
    cfg.write_text(text.read_text().replace('param = "rho"', 'param = "rhoo"'))
    assert main(["run", str(cfg), "--output", str(out)]) == 2
    assert "no parameter 'rhoo'" in capsys.readouterr().err


def _scan_config(tmp_path, text=SCAN, name="bru.toml"):
    cfg = tmp_path / name
    cfg.write_text(text)
    return cfg


def test_a_finished_run_is_refused_unless_overwrite(tmp_path, capsys):
    cfg = _scan_config(tmp_path)
    out = tmp_path / "bru.h5"
    assert main(["run", str(cfg), "--output", str(out)]) == 0
    created = ds.io.attributes(out, "bru")["created"]
    png = tmp_path / "bru_amp.png"
    stamp = png.stat().st_mtime_ns
    capsys.readouterr()
    assert main(["run", str(cfg), "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert "already holds run(s) 'bru'" in err and "--overwrite" in err
    assert ds.io.attributes(out, "bru")["created"] == created
    assert png.stat().st_mtime_ns == stamp
    assert main(["run", str(cfg), "--output", str(out), "--overwrite"]) == 0
    assert ds.io.runs(out) == {"bru": "scan"}


@pytest.mark.parametrize(
    "edit, message",
    [
        (('name = "bru"', 'name = "a/b"'), r"\[run\] name: run name must be"),
        (
            ('task = "scan"', 'task = "scan"\noutput = "/proc/nope/x.h5"'),
            "cannot create the output directory /proc/nope",
        ),
        (
            ("[scan]", '[continuation]\nparam = "b"\nspan = [1.0, 2.0]\n[scan]'),
            r"\[scan\] and \[continuation\] belong to different tasks",
        ),
        (('task = "scan"', 'task = "simulate"'), "task 'simulate' does not use"),
        (("params.a = [1.0, 1.5]", "params.aa = [1.0]"), "no parameter 'aa'"),
    ],
)
def test_everything_is_checked_before_any_compute(
    tmp_path, capsys, monkeypatch, edit, message
):
    import dynsim.cli._run as run_module

    def no_compute(*args, **kwargs):
        raise AssertionError("a task ran before the checks")

    monkeypatch.setattr(
        run_module, "_TASKS", dict.fromkeys(run_module._TASKS, no_compute)
    )
    monkeypatch.chdir(tmp_path)
    cfg = _scan_config(tmp_path, SCAN.replace(*edit))
    assert main(["run", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and re.search(message, err), err


def test_a_grid_too_large_for_memory_is_refused_at_once(tmp_path, capsys):
    huge = SCAN.replace(
        "params.b = { start = 1.0, stop = 4.0, num = 8 }",
        "params.b = { start = 1.0, stop = 4.0, num = 100000 }\n"
        "params.c = { start = 0.0, stop = 1.0, num = 100000 }",
    ).replace('name = "Brusselator"\nparams = { a = 1.0 }', 'name = "Lorenz"')
    huge = huge.replace("params.a = [1.0, 1.5]", "params.rho = [1.0, 1.5]")
    huge = huge.replace("params.b =", "params.sigma =").replace(
        "params.c =", "params.beta ="
    )
    cfg = _scan_config(tmp_path, huge)
    assert main(["run", str(cfg), "--output", str(tmp_path / "h.h5")]) == 2
    err = capsys.readouterr().err
    assert "20,000,000,000 points needs about" in err and "GiB" in err


def test_a_large_scan_states_its_size_before_it_runs(monkeypatch, capsys):
    import dynsim._scan_kernel as kernel_module

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(kernel_module, "compiled_program", lambda *args: stop)
    with pytest.raises(KeyboardInterrupt):
        ds.scan(
            ds.models.Lorenz(),
            {"rho": np.linspace(0, 30, 1000), "sigma": np.linspace(5, 15, 1000)},
            (0.0, 1.0),
            observables={"m": ds.observables.Max("z")},
        )
    err = capsys.readouterr().err
    assert re.search(r"scan: 1,000,000 points in \d+ chunks .* in memory", err), err


FAILING = """
[run]
name = "f"
[model]
name = "Lorenz"
[solver]
max_steps = 50
[time]
t_span = [0.0, 10.0]
"""


def test_exit_codes_tell_scripts_what_happened(tmp_path, capsys, monkeypatch):
    # A failed simulation: written, but no usable result.
    cfg = _scan_config(tmp_path, FAILING, "f.toml")
    assert main(["run", str(cfg), "--output", str(tmp_path / "f.h5")]) == 4
    assert "failed: the simulation" in capsys.readouterr().out
    # Some scan points fail (too few steps for the fast ones): results written.
    partial = SCAN.replace("rtol = 1e-6", "rtol = 1e-6\nmax_steps = 400")
    cfg = _scan_config(tmp_path, partial, "p.toml")
    out = tmp_path / "p.h5"
    assert main(["run", str(cfg), "--output", str(out)]) == 3
    printed = capsys.readouterr().out
    res = ds.io.load(out, "bru")
    assert 0 < res.n_failed < res.n_points
    assert f"failed: {res.n_failed} of 16 points (max_steps=" in printed
    # Interrupted: one line, no traceback.
    import dynsim.cli._run as run_module

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setitem(run_module._TASKS, "scan", interrupted)
    assert main(["run", str(cfg), "--output", str(tmp_path / "i.h5")]) == 130
    assert capsys.readouterr().err == "dynsim: interrupted\n"


def test_inspect_into_a_closed_pipe_is_quiet(tmp_path):
    cfg = _scan_config(tmp_path)
    out = tmp_path / "bru.h5"
    assert main(["run", str(cfg), "--output", str(out), "--no-figures"]) == 0
    proc = subprocess.run(
        f"{sys.executable} -m dynsim inspect {out} | head -c 10",
        shell=True,
        capture_output=True,
        text=True,
    )
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr


def test_plot_says_what_it_cannot_draw(tmp_path, capsys):
    res = ds.scan(
        ds.models.Lorenz(),
        {"rho": [1.0, 2.0], "sigma": [9.0, 10.0], "beta": [2.0, 3.0]},
        (0.0, 1.0),
        observables={"m": ds.observables.Max("z")},
    )
    out = tmp_path / "cube.h5"
    ds.io.save(res, out, name="cube")
    assert main(["plot", str(out)]) == 4
    printed = capsys.readouterr().out
    assert "no figure for run 'cube': a scan over 3 parameters" in printed


def test_plot_redraws_the_figures_run_drew(tmp_path):
    text = resources.files("dynsim.configs").joinpath("lorenz_bifurcation.toml")
    cfg = tmp_path / "lorenz.toml"
    cfg.write_text(text.read_text())
    out = tmp_path / "lb.h5"
    assert main(["run", str(cfg), "--output", str(out)]) == 0
    drawn = sorted(p.name for p in tmp_path.glob("*.png"))
    assert drawn == ["lorenz_bifurcation_bifurcation.png"]
    assert main(["plot", str(out), "--out", str(tmp_path / "again")]) == 0
    assert sorted(p.name for p in (tmp_path / "again").glob("*.png")) == drawn


def test_help_and_version_do_not_import_jax():
    code = (
        "import sys\n"
        "from dynsim.cli import main\n"
        "for argv in (['--help'], ['--version'], ['run', '--help']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "assert 'jax' not in sys.modules, 'jax was imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "exit codes:" in proc.stdout and ds.__version__ in proc.stdout


def test_a_killed_scan_run_resumes_and_a_changed_config_is_refused(tmp_path, capsys):
    # 16 points in chunks of 8: killed after chunk 1 is written, before it is
    # recorded; the same command again computes chunk 1 only.
    cfg = tmp_path / "bru.toml"
    cfg.write_text(SCAN)
    out = tmp_path / "bru.h5"
    cmd = [sys.executable, "-m", "dynsim", "run", str(cfg), "--output", str(out)]
    killed = subprocess.run(
        cmd, env={**os.environ, "DYNSIM_FAULT": "shard-written:1"}, capture_output=True
    )
    assert killed.returncode == -signal.SIGKILL and not out.exists()
    capsys.readouterr()
    assert main(["inspect", str(out)]) == 0
    assert (
        "bru: unfinished scan, 1 of 2 chunks done, 1 pending" in capsys.readouterr().out
    )
    assert main(["run", str(cfg), "--output", str(out)]) == 0
    reference = tmp_path / "ref.h5"
    assert main(["run", str(cfg), "--output", str(reference)]) == 0
    a, b = ds.io.load(out, "bru"), ds.io.load(reference, "bru")
    assert np.array_equal(a.values["amp"], b.values["amp"])
    assert np.array_equal(a.status, b.status)
    # A restart of a killed run with another config is refused, naming the change.
    subprocess.run(
        [*cmd[:-1], str(tmp_path / "other.h5")],
        env={**os.environ, "DYNSIM_FAULT": "shard-written:1"},
        capture_output=True,
    )
    cfg.write_text(SCAN.replace("rtol = 1e-6", "rtol = 1e-7"))
    capsys.readouterr()
    assert main(["run", str(cfg), "--output", str(tmp_path / "other.h5")]) == 2
    assert "solver.rtol: 1e-06 in the store, 1e-07 now" in capsys.readouterr().err


@pytest.mark.slow
def test_a_scan_runs_on_a_local_dask_cluster(tmp_path, capsys):
    pytest.importorskip("distributed")
    cfg = tmp_path / "bru.toml"
    cfg.write_text(SCAN)
    here, there = tmp_path / "here.h5", tmp_path / "there.h5"
    assert main(["run", str(cfg), "--output", str(here), "--no-figures"]) == 0
    cmd = ["run", str(cfg), "--output", str(there), "--no-figures"]
    assert main([*cmd, "--scheduler", "local:2"]) == 0
    assert "on the Dask cluster local:2 (2 workers)" in capsys.readouterr().out
    a, b = ds.io.load(here, "bru"), ds.io.load(there, "bru")
    assert np.array_equal(a.values["amp"], b.values["amp"])
    # Only scans have chunks to send.
    sim = tmp_path / "lor.toml"
    sim.write_text(SIM)
    assert main(["run", str(sim), "--scheduler", "local:2"]) == 2
    assert "a scheduler runs the chunks of scans" in capsys.readouterr().err


def test_a_damaged_output_file_is_reported_and_left_alone(tmp_path, capsys):
    cfg = tmp_path / "bru.toml"
    cfg.write_text(SCAN)
    out = tmp_path / "bru.h5"
    ds.io.save(ds.simulate(ds.models.Lorenz(), (0.0, 1.0), saveat=5), out, "earlier")
    data = out.read_bytes()
    out.write_bytes(data[: len(data) // 2])  # a truncated copy
    for extra in ([], ["--overwrite"]):
        capsys.readouterr()
        assert main(["run", str(cfg), "--output", str(out), *extra]) == 2
        assert str(out) in capsys.readouterr().err
        assert out.read_bytes() == data[: len(data) // 2]


DIAGRAM = """
[run]
name = "pf"

[model]
name = "PitchforkNormalForm"

[bifurcation_diagram]
param = "r"
span = [-1.0, 1.0]
depth = 1
state = "a"
"""


def test_bifurcation_diagram_task(tmp_path, capsys):
    # ȧ = r a − a³ over r ∈ [−1, 1]: the branch a = 0 and, switched onto at the
    # pitchfork r = 0, a = ±√r — three runs streamed into the file with the config,
    # one figure; run again, the finished branches are reloaded.
    cfg = tmp_path / "pf.toml"
    cfg.write_text(DIAGRAM)
    out = tmp_path / "pf.h5"
    assert main(["run", str(cfg), "--output", str(out)]) == 0
    runs = ds.io.runs(out)
    assert sorted(runs) == ["pf_eq1", "pf_eq1.PF1+", "pf_eq1.PF1-"]
    up = ds.io.load(out, "pf_eq1.PF1+")
    assert np.allclose(up.ys[:, 0] ** 2, up.p, atol=1e-8)  # a² = r
    assert "bifurcation_diagram" in ds.io.attributes(out, "pf_eq1")["config"]
    assert (tmp_path / "pf_bifurcation.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["run", str(cfg), "--output", str(out)]) == 0
    assert sorted(ds.io.runs(out)) == sorted(runs)
    cfg.write_text(DIAGRAM.replace('param = "r"\n', ""))
    assert main(["run", str(cfg)]) == 2
    assert "missing required key 'param' in [bifurcation_diagram]" in (
        capsys.readouterr().err
    )
