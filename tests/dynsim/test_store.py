"""Streamed, resumable scans: chunks go to shard files, a killed scan resumes where
it stopped, and the finished run equals an uninterrupted one bitwise."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import h5py
import jax.random as jr
import numpy as np
import pytest

import dynsim as ds
from dynsim._store import parts_folder

# An SDE scan in 3 chunks of 4 points (the job below builds the same one).
JOB = """
import sys
import jax.random as jr
import numpy as np
import dynsim as ds

def scan(**kw):
    model = ds.models.OrnsteinUhlenbeck(theta=1.0, sigma=1.0)
    observables = {"mean": ds.observables.Mean(), "last": ds.observables.FinalState()}
    kw = dict(dt0=0.01, key=jr.key(3), chunk_size=4, progress=False) | kw
    return ds.scan(
        model,
        {"theta": np.linspace(0.5, 2.0, 12)},
        (0.0, 2.0),
        observables=observables,
        **kw,
    )

if __name__ == "__main__":
    scan(store=sys.argv[1], name="ou")
"""


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    path = tmp_path_factory.mktemp("job") / "store_job.py"
    path.write_text(textwrap.dedent(JOB))
    namespace: dict = {"__name__": "store_job"}
    exec(compile(path.read_text(), str(path), "exec"), namespace)  # noqa: S102
    return path, namespace["scan"]


@pytest.fixture(scope="module")
def reference(job):
    return job[1]()  # in memory, no store


def _same(a, b):
    assert a.axes == b.axes and a.shape == b.shape
    for k in a.values:
        assert np.array_equal(a.values[k], b.values[k]), k
    assert np.array_equal(a.status, b.status)
    for k in a.stats:
        assert np.array_equal(a.stats[k], b.stats[k]), k


def _earlier(path):
    traj = ds.simulate(ds.models.Lorenz(), (0.0, 1.0), saveat=5)
    ds.io.save(traj, path, "earlier")
    return traj


def test_a_streamed_scan_is_the_in_memory_scan(job, reference, tmp_path):
    path = tmp_path / "out.h5"
    result = job[1](store=path, name="ou")
    _same(result, reference)
    _same(ds.io.load(path, "ou"), reference)
    assert not parts_folder(path, "ou").exists()
    # A finished run is never silently replaced.
    with pytest.raises(ValueError, match="already holds a run 'ou'"):
        job[1](store=path, name="ou")
    _same(job[1](store=path, name="ou", overwrite=True), reference)


@pytest.mark.slow
@pytest.mark.parametrize(
    "fault", ["shard-written:1", "shard-partial:2", "save", "random"]
)
def test_a_killed_scan_resumes_to_the_same_result(job, reference, tmp_path, fault):
    path = tmp_path / "out.h5"
    earlier = _earlier(path)
    before = path.read_bytes()
    env = dict(os.environ, DYNSIM_FAULT="" if fault == "random" else fault)
    cmd = [sys.executable, str(job[0]), str(path)]
    if fault == "random":
        proc = subprocess.Popen(cmd, env=env)
        time.sleep(np.random.default_rng().uniform(0.5, 6.0))
        proc.send_signal(signal.SIGKILL)
        code = proc.wait()  # 0 if it finished first: then there is nothing to resume
    else:
        code = subprocess.run(cmd, env=env).returncode
        assert code == -signal.SIGKILL
    folder = parts_folder(path, "ou")
    # Whenever the kill came, the file is readable with its earlier run intact, and
    # holds either no trace of the scan (byte for byte as before) or all of it.
    saved = "ou" in ds.io.runs(path)
    assert saved or path.read_bytes() == before
    assert saved == (code == 0) or fault == "random"
    finished = {p.name for p in folder.glob("chunk-*.npz")}
    if fault == "shard-written:1":
        assert finished == {"chunk-00000000.npz"}  # chunk 1 written, not recorded
    if fault == "shard-partial:2":
        assert finished == {"chunk-00000000.npz", "chunk-00000001.npz"}
    if fault == "save":
        assert len(finished) == 3
    if not saved or folder.exists():
        _same(job[1](store=path, name="ou"), reference)  # resume, or clean up
    _same(ds.io.load(path, "ou"), reference)
    assert np.array_equal(ds.io.load(path, "earlier").ys, earlier.ys)
    assert not folder.exists()
    with h5py.File(path) as f:
        assert sorted(f) == ["earlier", "ou"]


def test_a_restart_with_other_arguments_is_refused(job, tmp_path, monkeypatch):
    import dynsim._store as store

    path = tmp_path / "out.h5"
    real = store.ScanStore.write

    def stop_after_first(self, c, out):
        real(self, c, out)
        raise KeyboardInterrupt

    monkeypatch.setattr(store.ScanStore, "write", stop_after_first)
    with pytest.raises(KeyboardInterrupt):
        job[1](store=path, name="ou")
    monkeypatch.setattr(store.ScanStore, "write", real)
    with pytest.raises(
        ValueError, match=r"solver\.rtol: 1e-06 in the store, 1e-08 now"
    ):
        job[1](store=path, name="ou", rtol=1e-8)
    with pytest.raises(ValueError, match="seed"):
        job[1](store=path, name="ou", key=jr.key(4))
    assert len(list(parts_folder(path, "ou").glob("chunk-*.npz"))) == 1
    again = job[1](store=path, name="ou", rtol=1e-8, overwrite=True)
    assert again.ok and ds.io.runs(path) == {"ou": "scan"}


def _compiled_kernels() -> int:
    import jax

    import dynsim._scan_kernel

    program = dynsim._scan_kernel.compiled_program(True, tuple(jax.local_devices()))
    return program._cache_size()


@pytest.mark.slow
def test_a_scan_on_a_two_worker_cluster_is_the_same_scan(job, reference, tmp_path):
    distributed = pytest.importorskip("distributed")
    from dynsim._executor import client_for

    client, cluster = client_for("local:2")
    try:
        assert len(client.scheduler_info()["workers"]) == 2
        _same(job[1](client=client), reference)
        path = tmp_path / "out.h5"
        _same(job[1](client=client, store=path, name="ou"), reference)
        _same(ds.io.load(path, "ou"), reference)
        # Each worker compiled the chunk kernel once, for both scans' 6 tasks.
        sizes = client.run(_compiled_kernels)
        assert sorted(sizes.values()) == [1, 1], sizes
    finally:
        client.close()
        cluster.close()
    assert distributed.__version__


@pytest.mark.slow
def test_a_chunk_that_kills_its_workers_becomes_failed_runs(
    job, reference, monkeypatch
):
    pytest.importorskip("distributed")
    import dask

    from dynsim._executor import client_for

    # Every worker that starts chunk 1 dies: Dask retries it on a fresh worker, then
    # gives up; the scan finishes with chunk 1's runs FAILED and the rest intact.
    monkeypatch.setenv("DYNSIM_FAULT", "chunk:1")
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        client, cluster = client_for("local:2")
        try:
            result = job[1](client=client)
        finally:
            client.close()
            cluster.close()
    assert np.array_equal(result.status[4:8], [ds.Status.FAILED] * 4)
    assert np.all(np.isnan(result.values["mean"][4:8]))
    keep = np.r_[0:4, 8:12]
    assert np.array_equal(result.values["mean"][keep], reference.values["mean"][keep])
    assert np.array_equal(result.status[keep], reference.status[keep])
    assert not result.ok and "4 of 12 failed" in result.message


def test_results_do_not_depend_on_the_chunk_size(job, reference, tmp_path):
    # Keys derive from the point (and realisation) index, and the compiled kernel
    # is never one lane wide: one chunk, three and twelve give the same bits.
    for size in (12, 1):
        _same(job[1](chunk_size=size), reference)
    _same(job[1](chunk_size=1, store=tmp_path / "one.h5", name="ou"), reference)


SINGLE_JOB = """
import sys
import numpy as np
import dynsim as ds

def scan(**kw):
    return ds.scan(
        ds.models.Lorenz(),
        {"rho": np.linspace(0.0, 21.0, 24)},
        (0.0, 1.0),
        rtol=1e-5,
        atol=1e-5,
        precision="single",
        chunk_size=8,
        progress=False,
        **kw,
    )

if __name__ == "__main__":
    scan(store=sys.argv[1], name="s")
"""


def test_a_resumed_single_precision_scan_keeps_its_check(tmp_path):
    # Each chunk's float64 check travels with its results: killed after its second
    # chunk was written, then resumed, the stored scan reports the in-memory scan's
    # achieved error over all three chunks' checks (8 runs each).
    script = tmp_path / "single_job.py"
    script.write_text(textwrap.dedent(SINGLE_JOB))
    path = tmp_path / "single.h5"
    env = dict(os.environ, DYNSIM_FAULT="shard-written:1")
    code = subprocess.run([sys.executable, str(script), str(path)], env=env).returncode
    assert code == -signal.SIGKILL
    namespace: dict = {"__name__": "single_job"}
    exec(compile(script.read_text(), str(script), "exec"), namespace)  # noqa: S102
    resumed = namespace["scan"](store=path, name="s")
    memory = namespace["scan"]().info.solver_settings
    stored = ds.io.load(path, "s").info.solver_settings
    assert memory["achieved_error_runs"] == 24
    for settings in (resumed.info.solver_settings, stored):
        assert settings["achieved_error_runs"] == 24
        assert settings["achieved_error"] == memory["achieved_error"]
    # (rtol = atol = 1e-5 in float32: an error of that order, not float32's 1e-7
    # nor a broken comparison's O(1))
    assert 1e-7 < memory["achieved_error"] < 1e-3
