"""A streamed scan's memory does not grow with its number of points."""

import subprocess
import sys
import textwrap

import pytest

CONFIG = """
[run]
name = "decay"
task = "scan"
figures = false

[model]
name = "Brusselator"

[solver]
name = "tsit5"

[time]
t_span = [0.0, 0.01]

[scan]
chunk_size = 65536
params.a = {{ start = 0.5, stop = 2.0, num = {a} }}
params.b = {{ start = 1.0, stop = 3.0, num = {b} }}
observables.last = {{ kind = "final" }}
"""

# Peak RSS of `dynsim run` (the scan streamed into the file, nothing read back).
JOB = """
import resource, sys
from dynsim.cli import main
code = main(["run", sys.argv[1], "--output", sys.argv[2]])
print(code, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def _peak(tmp_path, a: int, b: int) -> int:
    cfg = tmp_path / f"decay_{a * b}.toml"
    cfg.write_text(CONFIG.format(a=a, b=b))
    out = tmp_path / f"decay_{a * b}.h5"
    run = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(JOB), str(cfg), str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    code, kib = map(int, run.stdout.split()[-2:])
    assert code == 0, run.stdout + run.stderr
    return kib * 1024


@pytest.mark.slow
def test_peak_memory_is_bounded_from_1e5_to_1e7_points(tmp_path):
    import h5py

    small = _peak(tmp_path, 100, 1000)
    large = _peak(tmp_path, 1000, 10_000)
    assert large - small < 100 * 2**20, (small / 2**20, large / 2**20)
    with h5py.File(tmp_path / "decay_10000000.h5") as f:
        assert f["decay/status"].shape == (10_000_000,)
        assert f["decay/gridded/last"].shape == (1000, 10_000, 2)
