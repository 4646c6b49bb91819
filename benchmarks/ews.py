"""W1 (docs/benchmarks.md): early-warning indicators of 1 000 series of length 10⁴.

The series: AR(1) processes whose coefficient rises from 0.2 to 0.9 (critical
slowing down), on a slow sinusoidal trend around 10, seed 0. Settings: Gaussian
detrending with bandwidth 0.2, rolling window 0.25; variance, standard deviation,
coefficient of variation, skewness, kurtosis, lag-1 autocorrelation and the Kendall τ
of each.

Arms, side by side in one run:
- `dynsim.analysis.ews` on all series at once (public API, NumPy in and out), with
  Kendall τ by SciPy (the CPU default) and by the batched JAX merge count;
- ewstools 2.1.3, one `TimeSeries` per series (detrend, compute_var/std/cv/skew/
  kurt/auto, compute_ktau). It is timed once on `--ewstools-series` evenly spaced
  series and scaled to all of them (per-series work is identical; marked
  "extrapolated" unless it ran on all).

Same numbers first: every indicator and τ of the ewstools series is compared with
dynsim's (largest difference relative to the indicator's scale).

Run: `python -m benchmarks.ews [--series 1000] [--length 10000]
[--ewstools-series 200] [--repeats 5]`.
"""

from __future__ import annotations

import argparse
import time
import warnings
from importlib.metadata import version

import numpy as np
from matplotlib.figure import Figure

from benchmarks._common import RESULTS, machine, table, timed, write_json
from dynsim.analysis import ews

# The six indicators, named alike in dynsim and ewstools.
NAMES = ("variance", "std", "cv", "skew", "kurtosis", "ac1")
SETTINGS = dict(window=0.25, bandwidth=0.2, indicators=list(NAMES))


def series(count: int, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    phi = np.linspace(0.2, 0.9, n)
    x = np.zeros((count, n))
    noise = rng.standard_normal((count, n))
    for t in range(1, n):
        x[:, t] = phi[t] * x[:, t - 1] + noise[:, t]
    return x + 10.0 + np.sin(np.linspace(0, 3, n))


def ewstools_one(x: np.ndarray):
    import ewstools

    ts = ewstools.TimeSeries(data=x)
    ts.detrend(method="Gaussian", bandwidth=SETTINGS["bandwidth"])
    w = SETTINGS["window"]
    ts.compute_var(rolling_window=w)
    ts.compute_std(rolling_window=w)
    ts.compute_cv(rolling_window=w)
    ts.compute_skew(rolling_window=w)
    ts.compute_kurt(rolling_window=w)
    ts.compute_auto(rolling_window=w, lag=1)
    ts.compute_ktau()
    return ts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--series", type=int, default=1000)
    ap.add_argument("--length", type=int, default=10_000)
    ap.add_argument("--ewstools-series", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    x = series(args.series, args.length)
    rows = []
    results = {}
    for method in ("scipy", "jax"):

        def run(method=method):
            return ews(x, tau_method=method, **SETTINGS)

        first, best, out = timed(run, args.repeats)
        results[method] = out
        rows.append(
            {
                "arm": f"dynsim ews (Kendall τ: {method})",
                "seconds": best,
                "first": first,
                "per_series_ms": 1e3 * best / args.series,
                "note": "min of repeats",
            }
        )
    k = min(args.ewstools_series, args.series)
    picks = np.linspace(0, args.series - 1, k).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        theirs = [ewstools_one(x[i]) for i in picks]
        elapsed = time.perf_counter() - start
    total = elapsed * args.series / k
    rows.append(
        {
            "arm": f"ewstools {version('ewstools')}",
            "seconds": total,
            "first": None,
            "per_series_ms": 1e3 * elapsed / k,
            "note": "one run" if k == args.series else f"{k} series, extrapolated",
        }
    )
    ours = results["scipy"]
    diff = {}
    for name in NAMES:
        worst = 0.0
        for i, ts in zip(picks, theirs, strict=True):
            a, b = ts.ews[name].values, ours.indicators[name][i]
            ok = ~np.isnan(a)
            if not np.array_equal(ok, ~np.isnan(b)):
                raise AssertionError(f"{name}: NaN positions differ on series {i}")
            scale = np.abs(a[ok]).max()
            worst = max(worst, float(np.abs(a[ok] - b[ok]).max() / scale))
            worst = max(worst, abs(ts.ktau[name] - ours.kendall_tau[name][i]))
        diff[name] = worst
    for name in NAMES:
        dt = np.abs(results["jax"].kendall_tau[name] - ours.kendall_tau[name])
        diff[f"tau {name} jax vs scipy"] = float(dt.max())
    ref = rows[-1]["seconds"]
    for r in rows:
        r["speedup"] = ref / r["seconds"]
    print(
        f"W1: {args.series} series x {args.length} points, window 0.25, Gaussian "
        f"bandwidth 0.2, six indicators + Kendall tau"
    )
    print(
        table(
            rows,
            [
                ("arm", "arm", "s"),
                ("seconds", "total s", ".2f"),
                ("per_series_ms", "ms / series", ".2f"),
                ("speedup", "vs ewstools", ".0f"),
                ("note", "timing", "s"),
            ],
        )
    )
    print("largest difference to ewstools (relative to scale; tau absolute):")
    for k_, v in diff.items():
        print(f"  {k_:28s} {v:.2e}")
    payload = {
        "problem": "W1",
        "series": args.series,
        "length": args.length,
        "settings": SETTINGS,
        "rows": rows,
        "max_difference": diff,
        "machine": machine(),
    }
    write_json("ews", payload)
    fig = Figure(figsize=(5.5, 2.6), dpi=150, layout="constrained")
    ax = fig.subplots()
    ax.barh([r["arm"] for r in rows], [r["seconds"] for r in rows], color="C0")
    ax.set_xscale("log")
    ax.set_xlabel(f"seconds for {args.series} series of {args.length} points")
    for s in ("top", "right"):
        ax.spines[s].set_visible(False)
    fig.savefig(RESULTS / "ews.png")
    print(f"wrote {RESULTS / 'ews.json'} and {RESULTS / 'ews.png'}")


if __name__ == "__main__":
    main()
