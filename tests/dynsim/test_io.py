"""HDF5 round trips, provenance, format checks and atomic writes."""

import dataclasses
import json
import shutil
from pathlib import Path
from typing import ClassVar

import h5py
import jax.random as jr
import numpy as np
import pytest
from matplotlib.figure import Figure

import dynsim as ds
import dynsim.io._hdf5 as hdf5


@pytest.fixture
def traj():
    return ds.simulate(ds.models.Lorenz(rho=20.0), (0.0, 2.0), saveat=21)


@pytest.fixture
def scan_result():
    return ds.scan(
        ds.models.Selkov(),
        {"alpha": [0.3, 0.9], "mu": [1.0, 1.5, 2.0]},
        (0.0, 50.0),
        observables={
            "amp": ds.observables.Amplitude("v", t_from=25.0),
            "last": ds.observables.FinalState(),
        },
    )


def test_trajectory_round_trip(tmp_path, traj):
    path = tmp_path / "out.h5"
    ds.io.save(traj, path, name="run1")
    back = ds.io.load(path, name="run1")
    assert isinstance(back, ds.Trajectory)
    for a, b in [(traj.ts, back.ts), (traj.ys, back.ys), (traj.status, back.status)]:
        assert np.array_equal(np.asarray(a), np.asarray(b))
    assert back.info == traj.info
    assert back.info.params["params"]["rho"] == 20.0
    assert {k: int(v) for k, v in back.stats.items()} == {
        k: int(v) for k, v in traj.stats.items()
    }


def test_scan_round_trip_and_provenance(tmp_path, scan_result):
    path = tmp_path / "scan.h5"
    ds.io.save(scan_result, path, name="s")
    back = ds.io.load(path)  # the only run
    assert isinstance(back, ds.ScanResult)
    assert back.axes == scan_result.axes and back.shape == scan_result.shape
    for k in scan_result.params:
        assert np.array_equal(back.params[k], scan_result.params[k])
    for k in scan_result.values:
        assert np.array_equal(back.values[k], scan_result.values[k])
    assert np.array_equal(back.status, scan_result.status)
    assert back.info == scan_result.info
    attrs = ds.io.attributes(path, "s")
    assert attrs["kind"] == "scan" and attrs["model"] == "dynsim.models.Selkov"
    assert attrs["solver"]["name"] == "tsit5" and attrs["solver"]["rtol"] == 1e-6
    assert set(attrs["versions"]) >= {"dynsim", "jax", "diffrax", "equinox", "numpy"}
    with h5py.File(path) as f:
        assert f.attrs["format"] == "dynsim" and f.attrs["format_version"] == 2
        assert "created" in f.attrs and "dynsim_version" in f.attrs
        assert json.loads(f["s/status"].attrs["axes"]) == ["point"]
        assert json.loads(f["s/observables/last"].attrs["axes"]) == ["point", "state"]


def test_sde_seed_recorded(tmp_path):
    model = ds.models.OrnsteinUhlenbeck()
    traj = ds.simulate(model, (0.0, 1.0), dt0=0.1, key=jr.key(123))
    ds.io.save(traj, tmp_path / "sde.h5")
    assert ds.io.load(tmp_path / "sde.h5").info.seed == traj.info.seed is not None


def test_several_runs_and_overwrite(tmp_path, traj, scan_result):
    path = tmp_path / "many.h5"
    ds.io.save(traj, path, name="a")
    ds.io.save(scan_result, path, name="b")
    assert ds.io.runs(path) == {"a": "trajectory", "b": "scan"}
    with pytest.raises(ValueError, match="already holds a run 'a'"):
        ds.io.save(scan_result, path, name="a")
    ds.io.save(scan_result, path, name="a", overwrite=True)
    assert isinstance(ds.io.load(path, "a"), ds.ScanResult)
    with pytest.raises(KeyError, match="holds 2 runs"):
        ds.io.load(path)
    with pytest.raises(KeyError, match="no run 'zz'"):
        ds.io.load(path, "zz")


def test_wrong_or_missing_format_is_rejected(tmp_path):
    missing = tmp_path / "plain.h5"
    with h5py.File(missing, "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(ds.io.FormatError, match="no 'format' attribute"):
        ds.io.load(missing)
    wrong = tmp_path / "other.h5"
    with h5py.File(wrong, "w") as f:
        f.attrs["format"] = "pde-storage"
    with pytest.raises(ds.io.FormatError, match="'pde-storage'"):
        ds.io.load(wrong)
    future = tmp_path / "future.h5"
    with h5py.File(future, "w") as f:
        f.attrs["format"] = "dynsim"
        f.attrs["format_version"] = 99
    with pytest.raises(ds.io.FormatError, match="version 99"):
        ds.io.load(future)
    text = tmp_path / "notes.h5"
    text.write_text("not hdf5")
    with pytest.raises(ds.io.FormatError, match="cannot be read as HDF5"):
        ds.io.load(text)
    with pytest.raises(ds.io.FormatError):
        ds.io.save(ds.simulate(ds.models.Lorenz(), (0.0, 0.1)), missing, "r")


@pytest.mark.parametrize("size_limit", [hdf5._COPY_LIMIT, 0])
def test_interrupted_write_leaves_earlier_runs_intact(
    tmp_path, traj, scan_result, monkeypatch, size_limit
):
    # Both write paths: scratch copy of the file (small files) and scratch group.
    monkeypatch.setattr(hdf5, "_COPY_LIMIT", size_limit)
    path = tmp_path / "safe.h5"
    ds.io.save(traj, path, name="first")
    before = path.read_bytes() if size_limit else None

    def crash(group, result):
        group.create_dataset("partial", data=np.arange(10))
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(hdf5, "write_result", crash)
    for name in ("second", "first"):
        with pytest.raises(KeyboardInterrupt):
            ds.io.save(scan_result, path, name=name, overwrite=True)
    if before is not None:
        assert path.read_bytes() == before
    assert ds.io.runs(path) == {"first": "trajectory"}
    assert np.array_equal(np.asarray(ds.io.load(path, "first").ys), np.asarray(traj.ys))
    assert not list(tmp_path.glob("*.tmp"))
    with h5py.File(path) as f:
        assert list(f) == ["first"]  # no scratch group left behind


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_new_files_get_the_permissions_of_the_umask(tmp_path, traj, umask):
    import os

    old = os.umask(umask)
    try:
        ds.io.save(traj, tmp_path / "out.h5", name="run")
    finally:
        os.umask(old)
    assert (tmp_path / "out.h5").stat().st_mode & 0o777 == 0o666 & ~umask


def test_scratch_left_by_a_killed_save_is_removed(tmp_path, traj):
    import subprocess
    import sys

    # A scratch copy whose writer is gone (a finished process's pid), one whose
    # writer still runs (ours), and an unfinished scratch group inside the file.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    path = tmp_path / "out.h5"
    ds.io.save(traj, path, name="first")
    stale = tmp_path / f"out.h5.{dead.pid}.k1ll3d.tmp"
    stale.write_bytes(b"\0" * 4096)
    live = tmp_path / f"out.h5.{__import__('os').getpid()}.busy.tmp"
    live.write_bytes(b"")
    with h5py.File(path, "a") as f:
        f.create_group(hdf5._SCRATCH + "first-dead")
    ds.io.save(traj, path, name="second")
    assert not stale.exists() and live.exists()
    with h5py.File(path, "r") as f:
        assert sorted(f) == ["first", "second"]


def _flip_bit(path, dataset: str) -> None:
    with h5py.File(path, "r") as f:
        d = f[dataset]
        offset = d.id.get_offset()
        if offset is None:  # chunked storage
            offset = d.id.get_chunk_info(0).byte_offset
    raw = bytearray(path.read_bytes())
    raw[offset + 2] ^= 0x08
    path.write_bytes(bytes(raw))


def test_a_flipped_bit_is_detected_not_loaded(tmp_path, scan_result):
    path = tmp_path / "out.h5"
    ds.io.save(scan_result, path, name="scan")
    _flip_bit(path, "scan/observables/amp")
    with pytest.raises(ds.io.DamagedFileError, match="/scan/observables/amp"):
        ds.io.load(path, "scan")


def test_damaged_metadata_gives_one_line_naming_the_file(tmp_path, scan_result):
    from dynsim.cli import main

    path = tmp_path / "out.h5"
    ds.io.save(scan_result, path, name="scan")
    raw = bytearray(path.read_bytes())
    at = raw.find(b"model_params")
    raw[at - 40 : at - 32] = b"\xff" * 8
    path.write_bytes(bytes(raw))
    with pytest.raises(ds.io.DamagedFileError, match=r"out\.h5:scan: the file is"):
        ds.io.load(path, "scan")
    assert main(["inspect", str(path)]) == 2


def test_delete_removes_runs_and_keeps_the_others(tmp_path, traj):
    path = tmp_path / "out.h5"
    for name in ("a", "b", "c"):
        ds.io.save(traj, path, name=name)
    ds.io.delete(path, ["a", "c"])
    assert ds.io.runs(path) == {"b": "trajectory"}
    assert np.array_equal(np.asarray(ds.io.load(path, "b").ys), np.asarray(traj.ys))
    with pytest.raises(KeyError, match="no run"):
        ds.io.delete(path, ["a"])


V1 = Path(__file__).parents[1] / "data" / "format_v1.h5"


def test_files_of_format_version_1_still_load(tmp_path):
    # format_v1.h5 was written by dynsim 0.1.0 before the result protocol
    # (tests/data/make_format_v1.py); every run in it loads as its result type.
    kinds = ds.io.runs(V1)
    assert set(kinds.values()) == {
        "trajectory",
        "scan",
        "branch",
        "cycle_branch",
        "curve",
        "lyapunov",
        "ews",
        "phase_diagram",
        "ramp",
    }
    traj = ds.io.load(V1, "trajectory")
    assert isinstance(traj, ds.Trajectory) and traj.ok and traj.ys.shape == (11, 3)
    scan = ds.io.load(V1, "scan")
    assert scan.ok and scan.values["x_max"].shape == (2,) and scan.axes == ("rho",)
    # Lorenz: Hopf of C± at ρ = σ(σ + β + 3)/(σ − β − 1) (Strogatz §9.2).
    (hopf,) = ds.io.load(V1, "branch_hopf").special("hopf")
    assert hopf.value == pytest.approx(10 * (13 + 8 / 3) / (9 - 8 / 3), rel=1e-6)
    # Version-1 continuation codes map onto the one status family.
    assert ds.io.load(V1, "branch").status == ds.Status.SPAN_REACHED
    for name in kinds:
        result = ds.io.load(V1, name)
        assert isinstance(result, ds.AbstractResult) and result.kind == kinds[name]
        # The protocol: a one-line repr, read-only arrays, a status per point.
        assert "\n" not in repr(result) and isinstance(result.ok, bool)
        assert np.shape(result.ok_mask) == np.shape(result.status)
        for field, value in result.to_numpy().items():
            arrays = value.values() if isinstance(value, dict) else [value]
            for a in arrays:
                if isinstance(getattr(result, field), np.ndarray):
                    assert not a.flags.writeable, (name, field)
        with pytest.raises((AttributeError, dataclasses.FrozenInstanceError)):
            result.status = 0
    # A run added to a version-1 file is of version 2; the old runs still load.
    path = tmp_path / "old.h5"
    shutil.copy(V1, path)
    ds.io.save(traj, path, "again")
    with h5py.File(path) as f:
        assert f.attrs["format_version"] == 2
    assert np.array_equal(ds.io.load(path, "again").ys, traj.ys)
    assert np.array_equal(
        ds.io.load(path, "scan").values["x_max"], scan.values["x_max"]
    )


@dataclasses.dataclass(frozen=True, eq=False)
class Toy(ds.AbstractResult):
    """A result type defined outside dynsim: one class, nothing registered."""

    x: np.ndarray
    y: np.ndarray
    label: str
    settings: dict
    status: int = 0

    kind: ClassVar[str] = "toy"
    dims: ClassVar = {"x": ("sample",), "y": ("sample",)}
    codecs: ClassVar = {"settings": (dict, dict)}

    @property
    def message(self) -> str:
        return self.status_message

    def figures(self, **options):
        fig = Figure()
        fig.add_subplot().plot(self.x, self.y, label=self.label)
        return [("curve", fig)]


def test_a_new_result_type_is_saved_loaded_and_drawn(tmp_path):
    toy = Toy(np.linspace(0, 1, 5), np.arange(5.0) ** 2, "squares", {"a": [1, 2]})
    path = tmp_path / "toy.h5"
    ds.io.save(toy, path, "t")
    back = ds.io.load(path, "t")
    assert isinstance(back, Toy) and back.label == "squares" and back.ok
    assert np.array_equal(back.y, toy.y) and back.settings == {"a": [1, 2]}
    assert ds.io.runs(path) == {"t": "toy"}
    with h5py.File(path) as f:
        assert json.loads(f["t/x"].attrs["axes"]) == ["sample"]
    (png,) = ds.plot.save_figures(back, tmp_path, "toy")
    assert png.name == "toy_curve.png" and png.stat().st_size > 0
    (line,) = back.figures()[0][1].axes[0].get_lines()
    assert np.array_equal(line.get_ydata(), toy.y) and line.get_label() == "squares"
    # A file naming a kind no class has is refused, not imported.
    with h5py.File(path, "a") as f:
        f["t"].attrs["kind"] = "os.system"
    with pytest.raises(ds.io.FormatError, match="unknown result kind 'os.system'"):
        ds.io.load(path, "t")


def test_a_grid_scan_is_readable_without_dynsim(tmp_path, scan_result):
    xr = pytest.importorskip("xarray")  # a test dependency ([dev])
    path = tmp_path / "scan.h5"
    ds.io.save(scan_result, path, "s")
    with xr.open_dataset(
        path, group="s/gridded", engine="h5netcdf", phony_dims="sort"
    ) as grid:
        assert grid["amp"].dims == ("alpha", "mu")
        assert np.array_equal(grid["alpha"], [0.3, 0.9])
        assert np.array_equal(grid["mu"], [1.0, 1.5, 2.0])
        back = ds.io.load(path, "s")
        assert np.array_equal(grid["amp"], back.reshape(back.values["amp"]))
        assert np.array_equal(grid["status"], back.reshape(back.status))
        # Componentwise observables keep their own dimension.
        assert grid["last"].dims == ("alpha", "mu", "last_dim0")
        assert np.array_equal(grid["last"], back.reshape(back.values["last"]))
        assert grid["num_steps"].shape == (2, 3)
    # An ensemble axis becomes a dimension of its own.
    model = ds.models.OrnsteinUhlenbeck(theta=1.0, sigma=1.0)
    ens = ds.scan(
        model, {"theta": [1.0, 2.0]}, (0.0, 1.0), realisations=3, dt0=0.05,
        observables={"x": ds.observables.FinalState()}, progress=False,
    )  # fmt: skip
    ds.io.save(ens, path, "e")
    with xr.open_dataset(
        path, group="e/gridded", engine="h5netcdf", phony_dims="sort"
    ) as grid:
        assert grid["x"].dims == ("theta", "realisation", "x_dim0")
        assert np.array_equal(grid["x"], ens.values["x"])


def test_results_keep_their_own_read_only_arrays_and_copy_others():
    # A result freezes its arrays: an array it alone holds (read-only, owning its
    # data, as `ScanPlan.assemble` makes them) is kept as it is; any other is
    # copied, so that changing the caller's array never changes the result.
    from dynsim._protocol import frozen

    own = np.arange(4.0)
    own.flags.writeable = False
    assert frozen(own) is own
    mine = np.arange(4.0)
    kept = frozen(mine)
    mine[0] = 99.0
    assert kept[0] == 0.0 and not kept.flags.writeable
    view = own[1:]  # (read-only, but a view of another array's data)
    assert frozen(view) is not view and np.array_equal(frozen(view), view)
