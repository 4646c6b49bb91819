"""B1/B2: basins of attraction on grids of starts, dynsim against a SciPy loop.

- B1 (2-D): the damped double well ẍ + 0.3ẋ − x + x³ = 0 on a G × G grid of starts
  in [−2, 2]², t ∈ [0, 100]; attractors (±1, 0).
- B2 (3-D): Lorenz at ρ = 20 (C± both stable, intertwined basins behind transient
  chaos) on an n³ grid of starts in [−20, 20]² × [0, 40], t ∈ [0, 200].

Arms, side by side in one run, same tolerances (rtol 1e-6, atol 1e-9, the defaults
of `basins`), same solver family (Dormand–Prince 5(4): SciPy RK45; dynsim Tsit5):
- `dynsim.analysis.basins` (public API, host to host: the scan, its chunks, the
  grouping into attractors);
- a SciPy loop: `solve_ivp` per start, labelled by the nearest attractor of its
  end state, on `--scipy-starts` starts spread over the grid and scaled to all
  (marked "extrapolated"). The labels of those starts are compared with dynsim's.

Timing: dynsim's first call (compile included) and the minimum of `--repeats`
after it. Context: Attractors.jl users report a 251³ grid taking about an hour
(Attractors.jl issue #67). The acceptance sizes are `--grid2 1000 --grid3 100`
(10⁶ starts each); on a small CPU run smaller grids and read starts/s.

The labels are also checked against a reference (DOP853 at rtol = atol = 1e-12) on
the same starts: where basins are intertwined behind transient chaos (B2) two
solvers at 1e-6 can part ways. Attractors reached by fewer than ten starts are rerun
from their first start over a four times longer span ("rare" in the JSON): a long
transient then ends on a common attractor.

Run: `python -m benchmarks.basins [--grid2 400] [--grid3 30] [--scipy-starts 200]
[--repeats 2] [--problems B1 B2]`.
"""

from __future__ import annotations

import argparse
import json
import time

import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure
from scipy.integrate import solve_ivp

import dynsim as ds
from benchmarks._common import RESULTS, machine, table, write_json
from dynsim.models import param

RTOL, ATOL = 1e-6, 1e-9


class DoubleWell(ds.AbstractModel):
    delta: float = param(0.3)
    state_names = ("x", "v")

    def vector_field(self, t, y, args):
        x, v = y
        return jnp.stack([v, -self.delta * v + x - x**3])

    def initial_state(self):
        return jnp.zeros(2)


def _double_well(t, u):
    x, v = u
    return [v, -0.3 * v + x - x**3]


def _lorenz20(t, u):
    x, y, z = u
    return [10.0 * (y - x), x * (20.0 - z) - y, x * y - 8.0 / 3.0 * z]


PROBLEMS = {
    "B1": dict(
        model=DoubleWell(),
        field=_double_well,
        axes={"x": (-2.0, 2.0), "v": (-2.0, 2.0)},
        t1=100.0,
    ),
    "B2": dict(
        model=ds.models.Lorenz(rho=20.0),
        field=_lorenz20,
        axes={"x": (-20.0, 20.0), "y": (-20.0, 20.0), "z": (0.0, 40.0)},
        t1=200.0,
    ),
}


def run(name: str, points: int, scipy_starts: int, repeats: int) -> dict:
    spec = PROBLEMS[name]
    model, t1 = spec["model"], spec["t1"]
    starts = {k: np.linspace(lo, hi, points) for k, (lo, hi) in spec["axes"].items()}

    def call():
        return ds.analysis.basins(model, starts, (0.0, t1), rtol=RTOL, atol=ATOL,
                                  progress=False)  # fmt: skip

    start = time.perf_counter()
    result = call()
    first = time.perf_counter() - start
    best = first
    for _ in range(repeats):
        start = time.perf_counter()
        result = call()
        best = min(best, time.perf_counter() - start)
    total = result.labels.size
    # SciPy on starts spread over the grid, labelled by the nearest attractor.
    grid = np.stack(np.meshgrid(*starts.values(), indexing="ij"), -1).reshape(total, -1)
    picks = np.linspace(0, total - 1, scipy_starts).astype(int)
    state_names = list(model.state_names)
    index = [state_names.index(k) for k in starts]
    base = np.asarray(model.initial_state(), float)
    labels, reference = [], []
    start = time.perf_counter()
    for p in picks:
        labels.append(_nearest(result, _scipy_end(spec, base, index, grid[p])))
    scipy_seconds = (time.perf_counter() - start) / len(picks) * total
    for p in picks:  # the reference: DOP853 at a tolerance far below the arms'
        end = _scipy_end(spec, base, index, grid[p], method="DOP853", tol=1e-12)
        reference.append(_nearest(result, end))
    ours = result.labels.reshape(-1)[picks]
    labels, reference = np.asarray(labels), np.asarray(reference)
    kinds, counts = np.unique(result.labels, return_counts=True)
    return {
        "problem": name,
        "starts": total,
        "attractors": len(result.attractors),
        "fractions": dict(result.fractions),
        "dynsim_seconds": best,
        "dynsim_compile": first - best,
        "dynsim_starts_per_s": total / best,
        "scipy_seconds_extrapolated": scipy_seconds,
        "scipy_starts_per_s": total / scipy_seconds,
        "scipy_measured_starts": len(picks),
        "speedup": scipy_seconds / best,
        "label_agreement": float(np.mean(labels == ours)),
        "dynsim_vs_reference": float(np.mean(ours == reference)),
        "scipy_vs_reference": float(np.mean(labels == reference)),
        "attractor_ends": result.attractors.tolist(),
        "counts": {str(int(k)): int(c) for k, c in zip(kinds, counts, strict=True)},
        "rare": _rare(spec, result, grid, dict(zip(kinds, counts, strict=True))),
        "labels": result.labels,
        "axes": {k: v.tolist() for k, v in starts.items()},
    }


def _scipy_end(spec, base, index, start, method="RK45", tol=None):
    y0 = base.copy()
    y0[index] = start
    rtol, atol = (RTOL, ATOL) if tol is None else (tol, tol)
    sol = solve_ivp(spec["field"], (0.0, spec["t1"]), y0, method=method, rtol=rtol,
                    atol=atol)  # fmt: skip
    return sol.y[:, -1]


def _nearest(result, end) -> int:
    """The label of the attractor nearest to an end state."""
    return 1 + int(np.argmin(np.linalg.norm(result.attractors - end, axis=1)))


def _rare(spec, result, grid, counts, below=10) -> list[dict]:
    """Attractors reached by fewer than `below` starts, each rerun from its first
    start over a four times longer span: a long transient (it then ends on a
    common attractor) or a rare attractor (it stays)."""
    model, t1 = spec["model"], spec["t1"]
    names = list(spec["axes"])
    flat = result.labels.reshape(-1)
    out = []
    for label, count in counts.items():
        if label < 1 or count >= below:
            continue
        first = int(np.flatnonzero(flat == label)[0])
        longer = ds.analysis.basins(
            model, {n: [grid[first][k]] for k, n in enumerate(names)},
            (0.0, 4 * t1), grid=False, rtol=RTOL, atol=ATOL, progress=False,
        )  # fmt: skip
        end = longer.attractors[0] if len(longer.attractors) else None
        common = [a for a, c in counts.items() if a >= 1 and c >= below]
        gaps = {
            str(int(a)): float(np.linalg.norm(result.attractors[a - 1] - end))
            for a in common
        } if end is not None else {}  # fmt: skip
        out.append({
            "label": int(label), "starts": int(count),
            "start": grid[first].tolist(),
            "end": result.attractors[label - 1].tolist(),
            "end_4x_span": None if end is None else end.tolist(),
            "gap_4x_to_common": gaps,
        })  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid2", type=int, default=400)
    parser.add_argument("--grid3", type=int, default=30)
    parser.add_argument("--scipy-starts", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--problems", nargs="+", choices=sorted(PROBLEMS),
                        default=sorted(PROBLEMS),
                        help="run these only; the others' rows are kept from the "
                        "last results file")  # fmt: skip
    a = parser.parse_args()
    sizes = {
        "B1": (a.grid2, a.scipy_starts),
        "B2": (a.grid3, max(a.scipy_starts // 4, 10)),
    }
    rows = [run(name, *sizes[name], a.repeats) for name in a.problems]
    print("Basins on grids of starts, rtol 1e-6, atol 1e-9")
    print(
        table(
            rows,
            [
                ("problem", "problem", "s"),
                ("starts", "starts", "d"),
                ("attractors", "attractors", "d"),
                ("dynsim_seconds", "dynsim s", ".2f"),
                ("dynsim_compile", "compile s", ".1f"),
                ("dynsim_starts_per_s", "dynsim starts/s", ".0f"),
                ("scipy_seconds_extrapolated", "SciPy s (extrap.)", ".1f"),
                ("speedup", "speed-up", ".1f"),
                ("label_agreement", "labels agree", ".3f"),
                ("dynsim_vs_reference", "dynsim = ref", ".3f"),
                ("scipy_vs_reference", "SciPy = ref", ".3f"),
            ],
        )
    )
    fig = Figure(figsize=(4.5 * len(rows), 4.0), dpi=150, layout="constrained")
    axes = fig.subplots(1, len(rows), squeeze=False)[0]
    for ax, r in zip(axes, rows, strict=True):
        lab = r["labels"]
        image = lab if lab.ndim == 2 else lab[:, :, lab.shape[2] // 2]
        (xn, xs), (yn, ys) = list(r["axes"].items())[:2]
        ax.pcolormesh(xs, ys, image.T, shading="nearest", cmap="tab10",
                      vmin=-1, vmax=8, rasterized=True)  # fmt: skip
        ax.set_xlabel(xn)
        ax.set_ylabel(yn)
        middle = "" if lab.ndim == 2 else " (middle z slice)"
        ax.set_title(f"{r['problem']}: {r['starts']} starts{middle}", fontsize=9)
    fig.savefig(RESULTS / "basins.png")
    for r in rows:
        r.pop("labels")
    kept = []
    if (RESULTS / "basins.json").exists() and len(rows) < len(PROBLEMS):
        last = json.loads((RESULTS / "basins.json").read_text())["rows"]
        kept = [r for r in last if r["problem"] not in a.problems]
    rows = sorted(kept + rows, key=lambda r: r["problem"])
    write_json("basins", {"rows": rows, "machine": machine()})
    print(f"wrote {RESULTS / 'basins.json'} and {RESULTS / 'basins.png'}")


if __name__ == "__main__":
    main()
