"""C1 (docs/benchmarks.md): continuation of limit cycles, orthogonal collocation
against single shooting, on the same branches in one run.

- the Rössler cycles (a = b = 0.2) for c ∈ [2.5, 3.0] from a simulated orbit, through
  the period doubling at c ≈ 2.832;
- the Lorenz cycles born at the subcritical Hopf point ρ = 24.7368, followed down to
  ρ = 14.5 (the period grows as the homoclinic orbit at ρ ≈ 13.93 nears).

Reported per arm: time per branch point and per continuation step (every corrector
call of the arclength engine, accepted or not), the branch's points, its largest
trivial-multiplier error, and the located special points; the median of
interleaved repeats, compile time (first call − median) apart.

Run: `python -m benchmarks.continuation [--repeats 3]`.
"""

from __future__ import annotations

import argparse

import numpy as np

import dynsim as ds
from benchmarks._common import interleaved, machine, table, write_json
from dynsim.analysis import (
    _arclength as arc,
    continuation,
    cycle_continuation,
    periodic_orbit_guess,
)

_calls = [0]
_correct = arc.correct


def _counting_correct(*args, **kwargs):
    _calls[0] += 1
    return _correct(*args, **kwargs)


arc.correct = _counting_correct  # counts the corrector calls (steps tried)


def cases() -> dict:
    rossler = ds.models.Rossler(a=0.2, b=0.2, c=2.5)
    x0, period = periodic_orbit_guess(rossler, 200.0, 50.0)
    lorenz = ds.models.Lorenz()
    c = np.sqrt(8 / 3 * 0.5)
    eq = continuation(lorenz, "rho", (1.5, 30.0), y0=[c, c, 0.5], progress=False)
    (hopf,) = eq.special("hopf")
    return {
        "Rössler c ∈ [2.5, 3]": dict(
            model=rossler,
            param="c",
            span=(2.5, 3.0),
            x0=x0,
            period=period,
            ds_max=0.05,
        ),
        "Lorenz ρ from the Hopf point to 14.5": dict(
            model=lorenz, param="rho", span=(14.5, 30.0), hopf=hopf
        ),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    a = parser.parse_args(argv)
    rows = []
    for name, kw in cases().items():
        steps, results = {}, {}

        def arm(method, kw=kw, steps=steps, results=results):
            options = {k: v for k, v in kw.items() if k not in ("model", "param")}

            def run():
                _calls[0] = 0
                out = cycle_continuation(
                    kw["model"], kw["param"], method=method, progress=False, **options
                )
                steps[method], results[method] = _calls[0], out
                return out.p

            return run

        arms = {m: arm(m) for m in ("collocation", "shooting")}
        first, times, _ = interleaved(arms, a.repeats)
        ratio = float(np.median(np.asarray(times["shooting"]) / times["collocation"]))
        for method in arms:
            r, t = results[method], float(np.median(times[method]))
            rows.append(
                {
                    "case": name,
                    "method": method,
                    "time_s": t,
                    "compile_s": max(0.0, first[method] - t),
                    "points": int(r.p.size),
                    "steps": steps[method],
                    "ms_per_point": 1e3 * t / r.p.size,
                    "ms_per_step": 1e3 * t / steps[method],
                    "trivial_error": float(r.trivial_error.max()),
                    "special": ", ".join(f"{q.label}@{q.value:.6g}" for q in r.points),
                    "collocation_faster_by": ratio if method == "shooting" else 1.0,
                }
            )
    columns = [
        ("case", "branch", ""),
        ("method", "method", ""),
        ("time_s", "time (s)", ".2f"),
        ("compile_s", "compile (s)", ".1f"),
        ("points", "points", "d"),
        ("steps", "steps tried", "d"),
        ("ms_per_point", "ms / point", ".1f"),
        ("ms_per_step", "ms / step", ".1f"),
        ("trivial_error", "max |μ₀ − 1|", ".1e"),
        ("special", "special points", ""),
        ("collocation_faster_by", "collocation faster by", ".2f"),
    ]
    text = table(rows, columns)
    print(text)
    print(f"machine: {machine()['cpu']}")
    path = write_json("continuation", {"machine": machine(), "rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
