"""Shared benchmark plumbing: timing by the contract of docs/benchmarks.md, machine
records, and writing results (JSON + PNG) to benchmarks/results/."""

from __future__ import annotations

import datetime
import json
import os
import platform
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import jax

RESULTS = Path(__file__).parent / "results"


def block(x: Any) -> Any:
    """Wait for every JAX array in `x`."""
    return jax.block_until_ready(x)


def timed(fn: Callable[[], Any], repeats: int = 5) -> tuple[float, float, Any]:
    """Run `fn` once (warm-up, includes compilation), then `repeats` times.

    **Returns:** (first-call seconds, minimum repeat seconds, last result). The compile
    time of a JAX arm is reported as first − minimum.
    """
    start = time.perf_counter()
    out = block(fn())
    first = time.perf_counter() - start
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        out = block(fn())
        best = min(best, time.perf_counter() - start)
    return first, best, out


def interleaved(
    arms: dict[str, Callable[[], Any]],
    repeats: int,
    warm: float = 0.0,
    batch: float = 0.0,
) -> tuple[dict[str, float], dict[str, list[float]], dict[str, Any]]:
    """Time several arms in turn: one call of each (compile), then `repeats` rounds
    that time every arm once, so that load drifting during the run favours none.
    With `warm` > 0, each timed sample follows untimed calls of the same arm for at
    least `warm` seconds (one call at least): an arm of a few ms then runs on cores
    that its own calls have kept busy, not in the state the previous arm left them
    (on a virtual machine, a core left idle for 30 ms or more by a single-core arm
    runs the next ≈ 30 ms of a two-device JAX call ≈ 1.4× slower). With `batch` > 0,
    each timed sample is the mean of as many consecutive calls as take about `batch`
    seconds (their number fixed per arm from its second call, one at least): an arm
    of a few ms is then timed over tens of calls, where a single call's time moves
    by ±20 % from one call to the next on a shared machine.

    **Returns:** (first-call seconds, per-round seconds per call, first outputs), by
    arm. Ratios are then taken per round (the median of per-round ratios).
    """
    first, out, calls = {}, {}, {}
    for name, fn in arms.items():
        start = time.perf_counter()
        out[name] = block(fn())
        first[name] = time.perf_counter() - start
        calls[name] = 1
        if batch > 0:
            start = time.perf_counter()
            block(fn())
            calls[name] = max(1, round(batch / (time.perf_counter() - start)))
    times: dict[str, list[float]] = {name: [] for name in arms}
    for _ in range(repeats):
        for name, fn in arms.items():
            if warm > 0:
                until = time.perf_counter() + warm
                block(fn())
                while time.perf_counter() < until:
                    block(fn())
            start = time.perf_counter()
            for _ in range(calls[name]):
                block(fn())
            times[name].append((time.perf_counter() - start) / calls[name])
    return first, times, out


def machine() -> dict[str, Any]:
    """CPU model and its widest vectors, cores, devices, thread settings and
    library versions. (The vectors' width matters to a comparison: dynsim steps its
    lanes a vector at a time, so 512-bit vectors (AVX-512) step twice the lanes of
    256-bit ones (AVX2) per instruction, where a per-trajectory loop of scalar code
    runs as fast with either.)"""
    cpu, flags = platform.processor() or "unknown", None
    try:
        named = False
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and not named:
                cpu, named = line.split(":", 1)[1].strip(), True
            elif line.startswith("flags") and flags is None:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    widths = (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("avx", "AVX"))
    vectors = next((name for flag, name in widths if flag in (flags or ())), "unknown")
    versions = {}
    for pkg in ("dynsim", "jax", "jaxlib", "diffrax", "equinox", "numpy", "scipy"):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            versions[pkg] = "missing"
    return {
        "cpu": cpu,
        "vectors": vectors,
        "cores": os.cpu_count(),
        "devices": [str(d) for d in jax.devices()],
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "python": platform.python_version(),
        "versions": versions,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def write_json(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=float))
    return path


def table(rows: list[dict[str, Any]], columns: list[tuple[str, str, str]]) -> str:
    """A Markdown table: columns are (key, header, format)."""
    head = "| " + " | ".join(h for _, h, _ in columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    body = [
        "| "
        + " | ".join(
            format(r[k], f) if r.get(k) is not None else "–" for k, _, f in columns
        )
        + " |"
        for r in rows
    ]
    return "\n".join([head, rule, *body])
