"""The first scan of a small model: what a new model's first `dynsim.scan` costs
before its first point (tracing and compiling its program), on the ensemble executor
and on the generic path (`executor="vmap"`).

Cases, 16 runs each on one CPU device (a lane for every run: the executor's program is
the loop over steps alone): Lorenz endpoints (ρ ∈ linspace(0, 21, 16), t ∈ [0, 1]),
Sel'kov amplitudes (α ∈ linspace(0.02, 0.2, 16), t ∈ [0, 60], the amplitude of the
first state after t = 30) and Lorenz peaks, maxima and periods (ρ ∈ linspace(20, 30,
16), t ∈ [0, 20], of z after t = 10). Each case and executor runs in a fresh Python
process (compiled programs are kept per process): compile = first call − second call.

Run: `python -m benchmarks.first_scan [--repeats 3]` (the median of the repeats, each
a fresh process).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import numpy as np

from benchmarks._common import machine, table, write_json

CASES = ("lorenz endpoints", "selkov amplitudes", "lorenz peaks, maxima, periods")
EXECUTORS = ("ensemble", "vmap")

_CHILD = """
import json, sys, time
import jax
import numpy as np
import dynsim as ds
from dynsim import observables as O

case, executor = sys.argv[1], sys.argv[2]
jax.jit(lambda x: x + 1)(1.0)  # (JAX's own start-up, not the scan's)
if case == "lorenz endpoints":
    args, kw = (ds.models.Lorenz(), {"rho": np.linspace(0, 21, 16)}, (0.0, 1.0)), {}
elif case == "selkov amplitudes":
    args = (ds.models.Selkov(), {"alpha": np.linspace(0.02, 0.2, 16)}, (0.0, 60.0))
    kw = {"observables": {"amplitude": O.Amplitude(state=0, t_from=30.0)}}
else:
    args = (ds.models.Lorenz(), {"rho": np.linspace(20, 30, 16)}, (0.0, 20.0))
    kw = {"observables": {
        "peaks": O.Peaks(state=2, t_from=10.0),
        "max": O.Max(state=2, t_from=10.0),
        "period": O.Period(state=2, t_from=10.0),
    }}
times = []
for _ in range(2):
    start = time.perf_counter()
    r = ds.scan(*args, progress=False, executor=executor, **kw)
    times.append(time.perf_counter() - start)
print(json.dumps({"first": times[0], "second": times[1],
                  "executor": r.info.solver_settings["executor"],
                  "devices": [d.platform for d in jax.devices()]}))
"""


def one(case: str, executor: str) -> dict:
    """First and second call of `case` on `executor`, in a fresh process on one CPU
    device."""
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    for name in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES"):
        env.pop(name, None)
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, case, executor],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines:
        raise RuntimeError(
            f"{case} on {executor} failed (exit {out.returncode}):\n{out.stderr}"
        )
    result = json.loads(lines[-1])
    if result["executor"] != executor:
        raise RuntimeError(f"{case}: asked for {executor}, ran {result['executor']}")
    if result["devices"] != ["cpu"]:
        raise RuntimeError(f"{case}: ran on {result['devices']}, not one CPU device")
    return result


COLUMNS = [
    ("case", "case", ""),
    ("executor", "executor", ""),
    ("compile_s", "compile (s)", ".2f"),
    ("call_s", "second call (s)", ".4f"),
]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    rows = []
    for case in CASES:
        for executor in EXECUTORS:
            runs = [one(case, executor) for _ in range(args.repeats)]
            rows.append(
                {
                    "case": case,
                    "executor": executor,
                    "compile_s": float(
                        np.median([r["first"] - r["second"] for r in runs])
                    ),
                    "call_s": float(np.median([r["second"] for r in runs])),
                }
            )
            print(table(rows[-1:], COLUMNS), flush=True)
    print(table(rows, COLUMNS))
    # (The cases ran in processes of their own: one CPU device, no XLA_FLAGS.)
    info = dict(machine(), devices=["cpu:0"], xla_flags="")
    path = write_json("first_scan", {"machine": info, "rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
