"""E2 at scale (docs/benchmarks.md): the Lorenz orbit diagram — ρ ∈ [0, 200],
t ∈ [0, 200], the first 100 dropped, the maxima of z recorded (up to 64) — as a scan,
in points per second:

- in this process, versus the chunk size;
- on a Dask `LocalCluster` of 1 and 2 worker processes (one thread each), at one
  chunk size, against the in-process scan at that chunk size (the overhead of the
  Dask path as a ratio).

Every arm is run once to compile (for Dask: once per worker) and then timed over
`--repeats` runs (the minimum). Tolerances rtol = 1e-8, atol = 1e-10, Tsit5.

Run: `python -m benchmarks.scan_scaling [--points 512] [--chunks 32 128 512]
[--dask-chunk 128] [--repeats 3]`.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import dynsim as ds
from benchmarks._common import machine, table, write_json
from dynsim._executor import client_for


def e2(points: int, chunk: int, client=None):
    return ds.scan(
        ds.models.Lorenz(),
        {"rho": np.linspace(0.0, 200.0, points)},
        (0.0, 200.0),
        observables={"z_max": ds.observables.Peaks("z", t_from=100.0, max_peaks=64)},
        rtol=1e-8,
        atol=1e-10,
        chunk_size=chunk,
        progress=False,
        client=client,
    )


def best_of(fn, repeats: int) -> float:
    fn()  # compile
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, default=512)
    parser.add_argument("--chunks", type=int, nargs="+", default=[32, 128, 512])
    parser.add_argument("--dask-chunk", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    a = parser.parse_args()
    n = a.points
    records: list[dict] = []

    def record(arm, chunk, seconds, note=""):
        rate = n / seconds
        records.append(
            dict(arm=arm, chunk=chunk, seconds=seconds, rate=rate, note=note)
        )
        print(f"{arm}, chunk {chunk}: {seconds:.2f} s, {rate:.0f} points/s {note}")

    for chunk in a.chunks:
        record("in process", chunk, best_of(lambda c=chunk: e2(n, c), a.repeats))
    base = [r["seconds"] for r in records if r["chunk"] == a.dask_chunk]
    if not base:
        base = [best_of(lambda: e2(n, a.dask_chunk), a.repeats)]
    for workers in (1, 2):
        client, cluster = client_for(f"local:{workers}")
        try:
            t = best_of(lambda cl=client: e2(n, a.dask_chunk, cl), a.repeats)
        finally:
            client.close()
            cluster.close()
        note = f"{t / base[0]:.2f}× the in-process time at this chunk size"
        record(f"Dask LocalCluster, {workers} worker(s)", a.dask_chunk, t, note)
    columns = [
        ("arm", "arm", "s"),
        ("chunk", "chunk", "d"),
        ("seconds", "time (s)", ".2f"),
        ("rate", "points/s", ".0f"),
        ("note", "note", "s"),
    ]
    print(table(records, columns))
    print(f"\nE2, {n} points; machine: {machine()['cpu']}")
    write_json("scan_scaling", {"points": n, "machine": machine(), "rows": records})


if __name__ == "__main__":
    main()
