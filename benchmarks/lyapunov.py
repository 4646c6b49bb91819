"""E3 (docs/benchmarks.md): Lyapunov spectrum of Lorenz (σ, ρ, β) = (10, 28, 8/3) by the
Benettin QR method — the 12-state tangent system, QR every 0.1 — and a ρ-scan of λ₁.

Arms, side by side in one run, at the same tolerances (rtol 1e-8, atol 1e-10):
- `dynsim.analysis.lyapunov_spectrum` (public API; Tsit5; tangents by JAX JVPs; the
  ρ-scan as one vectorised call);
- a NumPy/SciPy Benettin implementation: `solve_ivp(method="RK45")` (Dormand–Prince
  5(4), the same family) on the state + tangent system with the hand-written
  Jacobian over each 0.1 interval, `numpy.linalg.qr` in between; the ρ-scan as a
  loop over ρ.

Accuracy, from closed forms: the exponents of Lorenz sum to −(σ + 1 + β) exactly
and λ₂ = 0; λ₁ = 0.9056 (Sprott 2003) for reference. Timing: dynsim min of
`--repeats` after a warm-up (compile reported apart); SciPy one run (seconds to
minutes, no compilation). SciPy's ρ-scan runs `--scipy-rhos` evenly spaced values of
the scan and is scaled to all (marked "extrapolated").

Run: `python -m benchmarks.lyapunov [--times 1000 10000] [--scan-points 64]
[--scipy-rhos 4] [--repeats 3]`.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from matplotlib.figure import Figure
from scipy.integrate import solve_ivp

import dynsim as ds
from benchmarks._common import RESULTS, machine, table, timed, write_json

SIGMA, BETA = 10.0, 8.0 / 3.0
RTOL, ATOL = 1e-8, 1e-10
DT = 0.1
TRANSIENT = 10.0
Y0 = np.array([1.0, 1.0, 1.0])


def _tangent(rho: float, k: int):
    def f(t, s):
        x, y, z = s[:3]
        q = s[3:].reshape(3, k)
        jac = np.array(
            [[-SIGMA, SIGMA, 0.0], [rho - z, -1.0, -x], [y, x, -BETA]],
        )
        field = [SIGMA * (y - x), x * (rho - z) - y, x * y - BETA * z]
        return np.concatenate([field, (jac @ q).ravel()])

    return f


def scipy_spectrum(rho: float, k: int, t_total: float) -> np.ndarray:
    """Benettin QR with SciPy: the k leading exponents."""
    f = _tangent(rho, k)
    q = np.eye(3)[:, :k]
    y = Y0.copy()
    n_transient, n = round(TRANSIENT / DT), round(t_total / DT)
    sums = np.zeros(k)
    for i in range(n_transient + n):
        sol = solve_ivp(
            f,
            (i * DT, (i + 1) * DT),
            np.concatenate([y, q.ravel()]),
            method="RK45",
            rtol=RTOL,
            atol=ATOL,
        )
        end = sol.y[:, -1]
        y = end[:3]
        q, r = np.linalg.qr(end[3:].reshape(3, k))
        d = np.diagonal(r)
        q = q * np.sign(d)[None, :]
        if i >= n_transient:
            sums += np.log(np.abs(d))
    return sums / t_total


def dynsim_spectrum(k: int, t_total: float, params=None) -> np.ndarray:
    r = ds.analysis.lyapunov_spectrum(
        ds.models.Lorenz(),
        n_exponents=k,
        y0=Y0,
        t_transient=TRANSIENT,
        t_total=t_total,
        dt_renorm=DT,
        rtol=RTOL,
        atol=ATOL,
        params=params,
    )
    return r.exponents


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--times", type=float, nargs="+", default=[1000.0, 10000.0])
    ap.add_argument("--scipy-max-time", type=float, default=10000.0)
    ap.add_argument("--scan-points", type=int, default=64)
    ap.add_argument("--scan-time", type=float, default=200.0)
    ap.add_argument("--scipy-rhos", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    exact_sum = -(SIGMA + 1.0 + BETA)
    rows = []
    for t_total in args.times:
        first, best, lam = timed(lambda t=t_total: dynsim_spectrum(3, t), args.repeats)
        arms = [("dynsim", best, first - best, np.asarray(lam))]
        if t_total <= args.scipy_max_time:
            start = time.perf_counter()
            lam_s = scipy_spectrum(28.0, 3, t_total)
            arms.append(("NumPy/SciPy", time.perf_counter() - start, None, lam_s))
        for arm, sec, compile_s, lam in arms:
            rows.append(
                {
                    "problem": f"spectrum T = {t_total:g}",
                    "arm": arm,
                    "seconds": sec,
                    "compile": compile_s,
                    "lambda1": lam[0],
                    "lambda2": lam[1],
                    "lambda3": lam[2],
                    "sum_error": abs(lam.sum() - exact_sum),
                }
            )
        print(f"  T = {t_total:g} done", flush=True)
    rhos = np.linspace(20.0, 200.0, args.scan_points)
    first, best, scan = timed(
        lambda: dynsim_spectrum(1, args.scan_time, {"rho": rhos}), args.repeats
    )
    picks = np.linspace(0, rhos.size - 1, args.scipy_rhos).astype(int)
    start = time.perf_counter()
    scan_s = np.array([scipy_spectrum(rhos[i], 1, args.scan_time)[0] for i in picks])
    sec_s = (time.perf_counter() - start) * rhos.size / picks.size
    scan = np.asarray(scan)[:, 0]
    label = f"λ₁(ρ) scan, {rhos.size} ρ, T = {args.scan_time:g}"
    rows.append(
        {"problem": label, "arm": "dynsim", "seconds": best, "compile": first - best}
    )
    rows.append(
        {
            "problem": label,
            "arm": "NumPy/SciPy"
            + (" (extrapolated)" if picks.size < rhos.size else ""),
            "seconds": sec_s,
        }
    )
    scan_diff = float(np.abs(scan[picks] - scan_s).max())
    # Ratios within each problem.
    for r in rows:
        peer = next(
            x["seconds"]
            for x in rows
            if x["problem"] == r["problem"] and x["arm"].startswith("NumPy")
        )
        r["speedup"] = peer / r["seconds"]
    print("E3: Lorenz (10, 28, 8/3), QR every 0.1, rtol 1e-8, atol 1e-10")
    print(
        table(
            rows,
            [
                ("problem", "problem", "s"),
                ("arm", "arm", "s"),
                ("seconds", "s", ".2f"),
                ("compile", "compile s", ".1f"),
                ("speedup", "speed-up", ".1f"),
                ("lambda1", "λ₁", ".4f"),
                ("lambda2", "λ₂", ".1e"),
                ("lambda3", "λ₃", ".4f"),
                ("sum_error", "|Σλ + σ+1+β|", ".1e"),
            ],
        )
    )
    print(f"λ₁(ρ) scan: largest |dynsim − SciPy| on the common ρ: {scan_diff:.1e}")
    write_json(
        "lyapunov",
        {
            "problem": "E3",
            "rows": rows,
            "scan": {
                "rho": rhos.tolist(),
                "lambda1": scan.tolist(),
                "scipy_rho": rhos[picks].tolist(),
                "scipy_lambda1": scan_s.tolist(),
            },
            "scan_max_difference": scan_diff,
            "machine": machine(),
        },
    )
    fig = Figure(figsize=(5.4, 3.4), dpi=150, layout="constrained")
    ax = fig.subplots()
    ax.plot(rhos, scan, ".-", ms=3, lw=0.8, label="dynsim (one vectorised call)")
    ax.plot(rhos[picks], scan_s, "o", mfc="none", color="C3", label="NumPy/SciPy")
    ax.axhline(0.0, color="0.6", lw=0.6)
    ax.set_xlabel("ρ")
    ax.set_ylabel("λ₁ (per unit time)")
    ax.legend(frameon=False, fontsize=8)
    for s in ("top", "right"):
        ax.spines[s].set_visible(False)
    fig.savefig(RESULTS / "lyapunov.png")
    print(f"wrote {RESULTS / 'lyapunov.json'} and {RESULTS / 'lyapunov.png'}")


if __name__ == "__main__":
    main()
