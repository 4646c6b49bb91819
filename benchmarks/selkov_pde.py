"""P1 (docs/benchmarks.md): the Sel'kov cell–bulk PDE–ODE on a 2-D grid to t = 200.

Three cells at (±0.5, 0), (0, 0) of the unit disk, D = 1, τ = 0.55 (oscillating),
polar grid with n rings (Gaussian cell kernel σ = 1/30). The same discretisation in
both arms:
- dynsim: `simulate(..., solver="kencarp4")`, linearly implicit IMEX (the linear
  stiff part solved by FFT in θ + tridiagonal in r + an m×m correction);
- SciPy: `solve_ivp(method="BDF")` on f(y) = N(y) + A y with the exact sparse
  Jacobian A + ∂N/∂y (A assembled as a CSR matrix, equal to dynsim's operator).

Work–precision: each arm runs at several tolerances; the error is the max-abs error
of the cells' (v, w) at t = 200 against dynsim's KenCarp5 at rtol = 1e-10 (a
different method from both arms). The summary interpolates each arm's time at a
common error (log–log) and reports the ratio.

Run: `python -m benchmarks.selkov_pde [--sizes 32 64]`.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import scipy.sparse as sp
from matplotlib.figure import Figure
from scipy.integrate import solve_ivp

import dynsim as ds
from benchmarks._common import RESULTS, machine, table, write_json
from dynsim.models import SelkovCellBulk

THREE = [(0.5, 0.0), (-0.5, 0.0), (0.0, 0.0)]
T1 = 200.0
DYNSIM_TOLS = (1e-4, 1e-5, 1e-6, 1e-7)
SCIPY_TOLS = (1e-4, 1e-5, 1e-6)


def model_for(n: int) -> SelkovCellBulk:
    return SelkovCellBulk(centers=THREE, D=1.0, tau=0.55, n=n, sigma=1.0 / 30.0)


def cells(model, y) -> np.ndarray:
    return np.asarray(y)[model.grid.size :]


def run_dynsim(model, y0, rtol, solver="kencarp4"):
    def go():
        return ds.simulate(
            model,
            (0.0, T1),
            y0=y0,
            solver=solver,
            rtol=rtol,
            atol=rtol * 1e-2,
            max_steps=500_000,
        )

    start = time.perf_counter()
    traj = go()
    traj.ys.block_until_ready()
    first = time.perf_counter() - start
    start = time.perf_counter()
    traj = go()
    traj.ys.block_until_ready()
    best = time.perf_counter() - start
    return best, first - best, traj


def run_scipy(model, y0, rtol):
    A = model.linear_matrix()
    size, m = model.grid.size, model.n_cells
    alpha, mu, zeta = 0.9, 2.0, 0.15

    def f(t, y):
        v, w = y[size : size + m], y[size + m :]
        prod = alpha * w + w * v**2
        out = A @ y
        out[size : size + m] += prod - v
        out[size + m :] += zeta * (mu - prod)
        return out

    def jac(t, y):
        v, w = y[size : size + m], y[size + m :]
        iv, iw = np.arange(size, size + m), np.arange(size + m, size + 2 * m)
        rows = np.concatenate([iv, iv, iw, iw])
        cols = np.concatenate([iv, iw, iv, iw])
        vals = np.concatenate(
            [2 * w * v - 1, alpha + v**2, -zeta * 2 * w * v, -zeta * (alpha + v**2)]
        )
        return A + sp.csr_matrix((vals, (rows, cols)), shape=A.shape)

    start = time.perf_counter()
    sol = solve_ivp(
        f, (0.0, T1), np.asarray(y0), method="BDF", jac=jac, rtol=rtol, atol=rtol * 1e-2
    )
    return time.perf_counter() - start, sol


def at_error(errors, times, target):
    """Time at a given error, interpolated log–log along a work–precision curve."""
    e, t = np.log(np.asarray(errors)), np.log(np.asarray(times))
    order = np.argsort(e)
    return float(np.exp(np.interp(np.log(target), e[order], t[order])))


def reference(model, y0, n: int) -> np.ndarray:
    """The cells at t = 200 by KenCarp5 at rtol = 1e-10 (cached: it is the slow part
    of the benchmark and not timed)."""
    cache = RESULTS / f"selkov_pde_reference_n{n}.npy"
    if cache.exists():
        return np.load(cache)
    ref = ds.simulate(
        model,
        (0.0, T1),
        y0=y0,
        solver="kencarp5",
        rtol=1e-10,
        atol=1e-12,
        max_steps=1_000_000,
    )
    out = cells(model, ref.ys[-1])
    RESULTS.mkdir(parents=True, exist_ok=True)
    np.save(cache, out)
    print(f"n = {n}: reference done ({int(ref.stats['num_steps'])} steps)", flush=True)
    return out


def run(n: int, scipy_tols=SCIPY_TOLS) -> tuple[list[dict], dict]:
    model = model_for(n)
    y0 = model.initial_state()
    ref_cells = reference(model, y0, n)
    rows = []
    for tol in DYNSIM_TOLS:
        t, compile_s, traj = run_dynsim(model, y0, tol)
        rows.append(
            {
                "arm": "dynsim kencarp4 (FFT IMEX)",
                "n": n,
                "unknowns": y0.size,
                "rtol": tol,
                "time_s": t,
                "compile_s": compile_s,
                "steps": int(traj.stats["num_steps"]),
                "error": float(np.abs(cells(model, traj.ys[-1]) - ref_cells).max()),
            }
        )
        print(f"  dynsim rtol={tol:.0e}: {t:.2f} s", flush=True)
    for tol in scipy_tols:
        t, sol = run_scipy(model, y0, tol)
        rows.append(
            {
                "arm": "SciPy BDF (sparse Jacobian)",
                "n": n,
                "unknowns": y0.size,
                "rtol": tol,
                "time_s": t,
                "compile_s": None,
                "steps": int(sol.t.size - 1),
                "error": float(np.abs(cells(model, sol.y[:, -1]) - ref_cells).max())
                if sol.success
                else float("nan"),
            }
        )
        print(f"  SciPy BDF rtol={tol:.0e}: {t:.2f} s", flush=True)
    dyn = [r for r in rows if r["arm"].startswith("dynsim")]
    sci = [r for r in rows if r["arm"].startswith("SciPy") and np.isfinite(r["error"])]
    # The smallest error both arms reach.
    target = max(min(r["error"] for r in dyn), min(r["error"] for r in sci))
    t_dyn = at_error([r["error"] for r in dyn], [r["time_s"] for r in dyn], target)
    t_sci = at_error([r["error"] for r in sci], [r["time_s"] for r in sci], target)
    summary = {
        "n": n,
        "unknowns": int(y0.size),
        "error": target,
        "dynsim_s": t_dyn,
        "scipy_s": t_sci,
        "speedup": t_sci / t_dyn,
    }
    return rows, summary


def figure(rows):
    fig = Figure(figsize=(5.5, 4.0), dpi=150, layout="constrained")
    ax = fig.add_subplot()
    for (arm, n), marker in zip(
        sorted({(r["arm"], r["n"]) for r in rows}), "osv^D*", strict=False
    ):
        sel = [r for r in rows if r["arm"] == arm and r["n"] == n]
        ax.loglog(
            [r["error"] for r in sel],
            [r["time_s"] for r in sel],
            marker=marker,
            label=f"{arm}, n = {n}",
        )
    ax.set_xlabel("max error of the cells at t = 200")
    ax.set_ylabel("wall time (s)")
    ax.set_title("P1: Sel'kov cell–bulk PDE–ODE, work–precision")
    ax.legend(fontsize=7, frameon=False)
    return fig


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[48, 96])
    parser.add_argument(
        "--large-scipy-tols",
        type=float,
        nargs="+",
        default=[1e-4],
        help="SciPy's tolerances on the largest grid (each run there takes ~20 min "
        "on 2 cores; the others use 1e-4, 1e-5, 1e-6)",
    )
    args = parser.parse_args(argv)
    rows, summaries = [], []
    for n in args.sizes:
        tols = args.large_scipy_tols if n == max(args.sizes) else SCIPY_TOLS
        r, s = run(n, tols)
        rows += r
        summaries.append(s)
    print(
        table(
            rows,
            [
                ("arm", "arm", ""),
                ("n", "n", "d"),
                ("unknowns", "unknowns", "d"),
                ("rtol", "rtol", ".0e"),
                ("time_s", "time (s)", ".2f"),
                ("compile_s", "compile (s)", ".1f"),
                ("steps", "steps", "d"),
                ("error", "error", ".1e"),
            ],
        )
    )
    print()
    print(
        table(
            summaries,
            [
                ("n", "n", "d"),
                ("unknowns", "unknowns", "d"),
                ("error", "at error", ".1e"),
                ("dynsim_s", "dynsim (s)", ".2f"),
                ("scipy_s", "SciPy BDF (s)", ".2f"),
                ("speedup", "speed-up", ".1f"),
            ],
        )
    )
    info = machine()
    print(f"\nmachine: {info['cpu']}, {info['cores']} cores")
    path = write_json(
        "selkov_pde", {"machine": info, "rows": rows, "summary": summaries}
    )
    png = RESULTS / "selkov_pde.png"
    figure(rows).savefig(png)
    print(f"wrote {path} and {png}")


if __name__ == "__main__":
    main()
