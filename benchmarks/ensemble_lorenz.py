"""E1 (docs/benchmarks.md): a Lorenz ensemble, one trajectory per ρ in
linspace(0, 21, N),
y0 = (1, 0, 0), t ∈ [0, 1], endpoint saved, adaptive steps at rtol = atol = 1e-8.

Arms, measured side by side in one run:
- `dynsim.scan` through the public API (host to host: NumPy in, NumPy out);
- the same compiled dynsim kernel, device-resident (arrays already on the device);
- plain `jax.jit(jax.vmap(diffrax.diffeqsolve))` with diffrax's defaults (Tsit5,
  RecursiveCheckpointAdjoint, automatic initial step);
- SciPy `solve_ivp(method="RK45")` (Dormand–Prince 5(4), the same family), one call
  per trajectory. For N > 2048 it is timed on 2048 evenly spaced members and scaled
  to N (marked "extrapolated").

Achieved error: the maximum absolute error at t = 1 over 257 evenly spaced members,
against SciPy DOP853 at rtol = atol = 1e-13.

The headline ratio dynsim.scan / plain diffrax is also measured interleaved (the two
timed alternately, the median of the per-pair ratios), so that load drifting during a
run does not favour either.

Run: `python -m benchmarks.ensemble_lorenz [--sizes 1024 16384] [--repeats 5]
[--ratio-only]`.
"""

from __future__ import annotations

import argparse
import time

import diffrax as dfx
import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure
from scipy.integrate import solve_ivp

import dynsim as ds
from benchmarks._common import RESULTS, machine, table, timed, write_json

RTOL = ATOL = 1e-8
Y0 = np.array([1.0, 0.0, 0.0])
SIGMA, BETA = 10.0, 8.0 / 3.0
SCIPY_MAX = 2048


def lorenz_np(t, y, rho):
    x, yy, z = y
    return [SIGMA * (yy - x), x * (rho - z) - yy, x * yy - BETA * z]


def lorenz_jax(t, y, rho):
    x, yy, z = y
    return jnp.stack([SIGMA * (yy - x), x * (rho - z) - yy, x * yy - BETA * z])


def reference(rhos: np.ndarray) -> np.ndarray:
    return np.stack(
        [
            solve_ivp(
                lorenz_np,
                (0.0, 1.0),
                Y0,
                method="DOP853",
                rtol=1e-13,
                atol=1e-13,
                args=(r,),
            ).y[:, -1]
            for r in rhos
        ]
    )


def run(n: int, repeats: int) -> list[dict]:
    rho = np.linspace(0.0, 21.0, n)
    members = np.linspace(0, n - 1, 257).round().astype(int)
    ref = reference(rho[members])
    rows = []

    def row(arm, first, best, ends, accepted, rejected, note=""):
        err = (
            np.abs(np.asarray(ends)[members] - ref).max() if ends is not None else None
        )
        return {
            "arm": arm,
            "N": n,
            "time_s": best,
            "compile_s": first - best,
            "steps_mean": float(np.mean(accepted + rejected)),
            "steps_max": int(np.max(accepted + rejected)),
            "rejected_mean": float(np.mean(rejected)),
            "max_error": err,
            "note": note,
        }

    # dynsim, public API.
    model = ds.models.Lorenz()

    def dynsim_api():
        return ds.scan(model, {"rho": rho}, (0.0, 1.0), y0=Y0, rtol=RTOL, atol=ATOL)

    first, best, res = timed(dynsim_api, repeats)
    rows.append(
        row(
            "dynsim.scan (public API, host-to-host)",
            first,
            best,
            res.ys[:, -1],
            res.stats["num_accepted_steps"],
            res.stats["num_rejected_steps"],
        )
    )

    # dynsim's compiled kernel with the inputs already on the device: the scan's
    # plan, one chunk of all N points.
    plan = ds.plan_scan(
        model, {"rho": rho}, (0.0, 1.0), y0=Y0, rtol=RTOL, atol=ATOL, chunk_size=n
    )
    inputs = plan.chunk_inputs(0)

    def dynsim_kernel():
        return plan.run_chunk(inputs)

    first, best, out = timed(dynsim_kernel, repeats)
    _, ys, _, stats = out
    rows.append(
        row(
            "dynsim kernel (device-resident)",
            first,
            best,
            ys[:, -1],
            np.asarray(stats["num_accepted_steps"]),
            np.asarray(stats["num_rejected_steps"]),
            "compiled by the row above",
        )
    )
    rows[-1]["compile_s"] = None

    # Plain diffrax with its defaults.
    plain = plain_diffrax()
    rho_dev = jnp.asarray(rho)
    first, best, (ys, stats) = timed(lambda: plain(rho_dev), repeats)
    rows.append(
        row(
            "diffrax jit(vmap(diffeqsolve)), defaults",
            first,
            best,
            ys[:, -1],
            np.asarray(stats["num_accepted_steps"]),
            np.asarray(stats["num_rejected_steps"]),
        )
    )

    # SciPy, one solve_ivp call per trajectory.
    timed_n = min(n, SCIPY_MAX)
    subset = np.unique(np.linspace(0, n - 1, timed_n).round().astype(int))

    def scipy_solve(r):
        return solve_ivp(
            lorenz_np, (0.0, 1.0), Y0, method="RK45", rtol=RTOL, atol=ATOL, args=(r,)
        )

    start = time.perf_counter()
    sols = [scipy_solve(r) for r in rho[subset]]
    elapsed = (time.perf_counter() - start) * n / subset.size
    ends = np.full((n, 3), np.nan)
    for i, s in zip(subset, sols, strict=True):
        ends[i] = s.y[:, -1]
    for i in members:  # the error members outside the timed subset
        if np.isnan(ends[i, 0]):
            ends[i] = scipy_solve(rho[i]).y[:, -1]
    accepted = np.array([s.t.size - 1 for s in sols])
    note = "" if timed_n == n else f"extrapolated from {subset.size} members, 1 run"
    rows.append(
        row(
            "SciPy solve_ivp RK45, per trajectory",
            elapsed,
            elapsed,
            ends,
            accepted,
            np.zeros_like(accepted),
            note or "1 run",
        )
    )
    rows[-1]["compile_s"] = None
    base = next(r["time_s"] for r in rows if r["arm"].startswith("diffrax"))
    for r in rows:
        r["vs_diffrax"] = base / r["time_s"]
    return rows


def plain_diffrax():
    """Plain `jit(vmap(diffeqsolve))` with diffrax's defaults (Tsit5, PID)."""

    @jax.jit
    def plain(rhos):
        def one(r):
            return dfx.diffeqsolve(
                dfx.ODETerm(lorenz_jax),
                dfx.Tsit5(),
                0.0,
                1.0,
                None,
                jnp.asarray(Y0),
                r,
                stepsize_controller=dfx.PIDController(rtol=RTOL, atol=ATOL),
            )

        sol = jax.vmap(one)(rhos)
        return sol.ys, sol.stats

    return plain


def interleaved_ratio(n: int, repeats: int) -> dict:
    """`dynsim.scan` (public API) against plain diffrax, timed alternately
    `repeats` times after a warm-up of each: the median of the per-pair ratios
    (robust to the machine's load drifting during the run)."""
    rho = np.linspace(0.0, 21.0, n)
    model = ds.models.Lorenz()
    plain = plain_diffrax()
    rho_dev = jnp.asarray(rho)

    def ours():
        return ds.scan(model, {"rho": rho}, (0.0, 1.0), y0=Y0, rtol=RTOL, atol=ATOL)

    def theirs():
        return jax.block_until_ready(plain(rho_dev))

    ours(), theirs()
    ratios, t_ours, t_theirs = [], [], []
    for _ in range(repeats):
        start = time.perf_counter()
        ours()
        a = time.perf_counter() - start
        start = time.perf_counter()
        theirs()
        b = time.perf_counter() - start
        ratios.append(b / a)
        t_ours.append(a)
        t_theirs.append(b)
    return {
        "N": n,
        "repeats": repeats,
        "median_ratio": float(np.median(ratios)),
        "ratios": ratios,
        "median_dynsim_s": float(np.median(t_ours)),
        "median_diffrax_s": float(np.median(t_theirs)),
    }


def figure(rows: list[dict]) -> Figure:
    fig = Figure(figsize=(7.0, 3.6), dpi=150, layout="constrained")
    ax = fig.add_subplot()
    sizes = sorted({r["N"] for r in rows})
    arms = list(dict.fromkeys(r["arm"] for r in rows))
    width = 0.8 / len(arms)
    for i, arm in enumerate(arms):
        t = [
            next(r["time_s"] for r in rows if r["arm"] == arm and r["N"] == n)
            for n in sizes
        ]
        ax.bar(np.arange(len(sizes)) + i * width, t, width, label=arm)
    ax.set_xticks(np.arange(len(sizes)) + 0.4 - width / 2, [f"N = {n}" for n in sizes])
    ax.set_yscale("log")
    ax.set_ylabel("wall time per ensemble (s)")
    ax.set_title("E1: Lorenz ensemble, adaptive Tsit5/RK45, rtol = atol = 1e-8")
    ax.legend(frameon=False, fontsize=7)
    return fig


COLUMNS = [
    ("arm", "arm", ""),
    ("N", "N", "d"),
    ("time_s", "time (s)", ".4f"),
    ("compile_s", "compile (s)", ".2f"),
    ("steps_mean", "steps mean", ".1f"),
    ("steps_max", "steps max", "d"),
    ("max_error", "max error", ".1e"),
    ("vs_diffrax", "speed vs diffrax", ".2f"),
    ("note", "note", ""),
]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 16384])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--ratio-only",
        action="store_true",
        help="only the interleaved dynsim.scan / diffrax ratio (public API only)",
    )
    args = parser.parse_args(argv)
    rows = []
    if not args.ratio_only:  # first, so that its compile times are real
        for n in args.sizes:
            rows += run(n, args.repeats)
        print(table(rows, COLUMNS))
    ratios = [interleaved_ratio(n, max(5, args.repeats)) for n in args.sizes]
    for r in ratios:
        print(
            f"N = {r['N']}: dynsim.scan {r['median_ratio']:.2f}× faster than plain "
            f"diffrax (median of {r['repeats']} interleaved pairs; "
            f"{r['median_dynsim_s']:.4f} s vs {r['median_diffrax_s']:.4f} s)"
        )
    if args.ratio_only:
        return
    info = machine()
    print(f"\nmachine: {info['cpu']}, {info['cores']} cores, devices {info['devices']}")
    json_path = write_json(
        "ensemble_lorenz", {"machine": info, "rows": rows, "interleaved": ratios}
    )
    png = RESULTS / "ensemble_lorenz.png"
    figure(rows).savefig(png)
    print(f"wrote {json_path} and {png}")


if __name__ == "__main__":
    main()
