"""E1 (docs/benchmarks.md): a Lorenz ensemble, one trajectory per ρ in
linspace(0, 21, N), y0 = (1, 0, 0), t ∈ [0, 1], endpoint saved; adaptive steps at
rtol = atol = 1e-8 (float64; 1e-6 in float32) and fixed steps dt = 1e-3.

Arms, timed interleaved in one run (each repeat runs every arm in turn: untimed
calls for 50 ms, so that no arm runs in the state the previous one left the cores
in, then a timed sample, the mean of as many consecutive calls as take about 50 ms;
the table gives each arm's median and the medians of the per-repeat ratios of its
time to `dynsim.scan`'s and of plain diffrax's and numba's to its own, so that load
drifting during the run favours no arm):
- `dynsim.scan` through the public API (host to host: NumPy in, NumPy out), on
  every core (one CPU device per core, `XLA_FLAGS`, set here before JAX starts);
- in adaptive float32, the same scan with the numba arm's method, Dormand–Prince
  5(4) (`solver="dopri5"`), which there ends nearer the reference than Tsit5;
- the same scan's compiled kernel alone (`ds.plan_scan` once, `chunk_inputs` on
  the devices, `run_chunk` timed): what the solve costs without the scan's fixed
  costs per call (checking and planning, copies; a float32 chunk's float64 check
  of 8 runs is part of its program, so it is timed here too);
- plain `jax.jit(jax.vmap(diffrax.diffeqsolve))` with diffrax's defaults (Tsit5,
  PID control, RecursiveCheckpointAdjoint, automatic first step);
- a numba per-trajectory Dormand–Prince 5(4) loop, parallel over trajectories on
  every core, in the row's precision (`benchmarks/_numba_dopri.py`);
- SciPy `solve_ivp(method="RK45")` per trajectory (adaptive float64 only, timed on
  256 members and scaled to N).

Achieved error: the maximum absolute error at t = 1 over 257 evenly spaced members,
against SciPy DOP853 at rtol = atol = 1e-13. Compile time: the first call of an arm
minus its median. ns per trajectory-step: time / Σ attempted steps, next to the
arithmetic bound of Tsit5 on Lorenz (≈ 320 FLOP per adaptive step, 200 fixed, at
16 FLOP per cycle per core) and the 12–15 ns of SIMD fixed-step numba code.

Run: `python -m benchmarks.ensemble_lorenz [--sizes 1024 16384] [--repeats 5]
[--devices N]`.
"""

from __future__ import annotations

import os
import sys


def _devices_from_argv() -> int:
    if "--devices" in sys.argv:
        return int(sys.argv[sys.argv.index("--devices") + 1])
    return os.cpu_count() or 1


if "jax" not in sys.modules and "xla_force_host_platform" not in os.environ.get(
    "XLA_FLAGS", ""
):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "")
        + f" --xla_force_host_platform_device_count={_devices_from_argv()}"
    )

import argparse  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import diffrax as dfx  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from scipy.integrate import solve_ivp  # noqa: E402

import dynsim as ds  # noqa: E402
from benchmarks._common import (  # noqa: E402
    RESULTS,
    interleaved,
    machine,
    table,
    write_json,
)

Y0 = np.array([1.0, 0.0, 0.0])
SIGMA, BETA = 10.0, 8.0 / 3.0
DT = 1e-3
TOL = {"f64": 1e-8, "f32": 1e-6}
FLOP = {"adaptive": 320, "fixed": 200}
SCIPY_MEMBERS = 256
#: Seconds of untimed calls of an arm before each of its timed samples.
WARM = 0.05
#: Seconds of consecutive calls that one timed sample of an arm averages over.
BATCH = 0.05


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
                lorenz_np, (0.0, 1.0), Y0, "DOP853", rtol=1e-13, atol=1e-13, args=(r,)
            ).y[:, -1]
            for r in rhos
        ]
    )


def dynsim_arm(rho, mode, precision, executor="auto", solver=None):
    tol = TOL[precision]
    kwargs = dict(rtol=tol, atol=tol) if mode == "adaptive" else {}
    if mode == "fixed":
        kwargs.update(adaptive=False, dt0=DT)
    model = ds.models.Lorenz()
    single = "single" if precision == "f32" else "double"

    def run():
        r = ds.scan(
            model,
            {"rho": rho},
            (0.0, 1.0),
            y0=Y0,
            progress=False,
            precision=single,
            executor=executor,
            solver=solver,
            **kwargs,
        )
        return r.ys[:, -1], r.stats["num_steps"]

    return run


def same_method_arm(rho, mode, precision):
    """`dynsim.scan` with the numba arm's method, Dormand–Prince 5(4), under the same
    tolerance: adaptive float32 only, where numba's Dormand–Prince ends nearer the
    reference than Tsit5 does (in float64 and with fixed steps Tsit5 ends nearer than
    numba); None for the other rows."""
    if mode != "adaptive" or precision != "f32":
        return None
    return dynsim_arm(rho, mode, precision, solver="dopri5")


def kernel_arm(rho, mode, precision):
    """The scan's compiled kernel alone: planned once, its inputs already on the
    devices, outputs left there (no planning or copies; a float32 chunk's float64
    check is part of its program)."""
    tol = TOL[precision]
    kwargs = dict(rtol=tol, atol=tol) if mode == "adaptive" else {}
    if mode == "fixed":
        kwargs.update(adaptive=False, dt0=DT)
    plan = ds.plan_scan(
        ds.models.Lorenz(),
        {"rho": rho},
        (0.0, 1.0),
        y0=Y0,
        precision="single" if precision == "f32" else "double",
        **kwargs,
    )
    if plan.n_chunks != 1:
        raise ValueError(
            f"the kernel arm times one chunk, this scan has {plan.n_chunks}"
        )
    inputs = plan.chunk_inputs(0)  # (on the devices)

    def run():  # (the outputs as the devices hold them: no copy or reordering)
        return plan.run_chunk(inputs, packed=True)

    def host(out):  # (untimed: the saved states and steps in the runs' order)
        _, ys, _, stats, _ = plan.to_host(0, out)
        return ys, stats["num_steps"]

    run.host = host
    return run


def diffrax_arm(rho, mode, precision):
    dtype = jnp.float32 if precision == "f32" else jnp.float64
    tol = TOL[precision]
    if mode == "adaptive":
        controller, dt0 = dfx.PIDController(rtol=tol, atol=tol), None
    else:
        controller, dt0 = dfx.ConstantStepSize(), jnp.asarray(DT, dtype)

    @jax.jit
    def plain(rhos):
        def one(r):
            return dfx.diffeqsolve(
                dfx.ODETerm(lorenz_jax),
                dfx.Tsit5(),
                jnp.asarray(0.0, dtype),
                jnp.asarray(1.0, dtype),
                dt0,
                jnp.asarray(Y0, dtype),
                r,
                stepsize_controller=controller,
                max_steps=4096,
            )

        sol = jax.vmap(one)(rhos)
        return sol.ys[:, -1], sol.stats["num_steps"]

    rho_dev = jnp.asarray(rho, dtype)
    return lambda: jax.block_until_ready(plain(rho_dev))


def numba_arm(rho, mode, precision):
    from benchmarks._numba_dopri import solve

    tol = TOL[precision]
    dt = DT if mode == "fixed" else 0.0
    dtype = np.float32 if precision == "f32" else np.float64
    return lambda: solve(rho, Y0, (0.0, 1.0), rtol=tol, atol=tol, dt=dt, dtype=dtype)


NUMBA = "numba Dormand–Prince, all cores"
DIFFRAX = "diffrax jit(vmap(diffeqsolve))"
ARMS = {
    "dynsim.scan": dynsim_arm,
    "dynsim.scan, Dormand–Prince 5(4) as numba": same_method_arm,
    "dynsim kernel only (planned once, inputs on the devices)": kernel_arm,
    DIFFRAX: diffrax_arm,
    NUMBA: numba_arm,
}


def clock_ghz() -> float:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz"):
                return float(line.split(":")[1]) / 1000
    except OSError:
        pass
    return 2.5


def bound_ns(mode: str) -> float:
    """Arithmetic bound per trajectory-step on all cores (16 FLOP/cycle/core)."""
    return FLOP[mode] / (16 * clock_ghz() * (os.cpu_count() or 1))


def measure(n: int, mode: str, precision: str, repeats: int, ref) -> list[dict]:
    rho = np.linspace(0.0, 21.0, n)
    members = np.linspace(0, n - 1, 257).round().astype(int)
    arms = {name: make(rho, mode, precision) for name, make in ARMS.items()}
    arms = {name: arm for name, arm in arms.items() if arm is not None}
    first, times, out = interleaved(arms, repeats, warm=WARM, batch=BATCH)
    base = np.asarray(times["dynsim.scan"])
    numba = np.asarray(times[NUMBA])
    diffrax = np.asarray(times[DIFFRAX])
    rows = []
    for name in arms:
        host = getattr(arms[name], "host", lambda o: o)
        ends, steps = (np.asarray(a) for a in host(out[name]))
        ends = ends[:, -1] if ends.ndim == 3 else ends
        t = np.asarray(times[name])
        median = float(np.median(t))
        rows.append(
            {
                "arm": name,
                "mode": mode,
                "precision": precision,
                "N": n,
                "time_s": median,
                "compile_s": max(0.0, first[name] - median),
                "steps_mean": float(np.mean(steps)),
                "ns_per_step": median / float(np.sum(steps)) * 1e9,
                "max_error": float(np.abs(ends[members] - ref).max()),
                "dynsim_speedup": float(np.median(t / base)),
                "diffrax_ratio": float(np.median(diffrax / t)),
                "numba_ratio": float(np.median(numba / t)),
            }
        )
    if mode == "adaptive" and precision == "f64":
        sub = rho[np.linspace(0, n - 1, SCIPY_MEMBERS).round().astype(int)]
        start = time.perf_counter()
        sols = [
            solve_ivp(lorenz_np, (0, 1), Y0, "RK45", rtol=1e-8, atol=1e-8, args=(r,))
            for r in sub
        ]
        elapsed = (time.perf_counter() - start) * n / sub.size
        ends = np.stack(
            [
                solve_ivp(
                    lorenz_np, (0, 1), Y0, "RK45", rtol=1e-8, atol=1e-8, args=(r,)
                ).y[:, -1]
                for r in rho[members]
            ]
        )
        steps = np.mean([s.t.size - 1 for s in sols])
        rows.append(
            {
                "arm": f"SciPy RK45 per trajectory (from {sub.size} members)",
                "mode": mode,
                "precision": precision,
                "N": n,
                "time_s": elapsed,
                "compile_s": None,
                "steps_mean": float(steps),
                "ns_per_step": elapsed / (steps * n) * 1e9,
                "max_error": float(np.abs(ends - ref).max()),
                "dynsim_speedup": elapsed / float(np.median(base)),
                "diffrax_ratio": float(np.median(diffrax)) / elapsed,
                "numba_ratio": float(np.median(numba)) / elapsed,
            }
        )
    return rows


COLUMNS = [
    ("arm", "arm", ""),
    ("mode", "steps", ""),
    ("precision", "dtype", ""),
    ("N", "N", "d"),
    ("time_s", "median time (s)", ".4f"),
    ("compile_s", "compile (s)", ".2f"),
    ("steps_mean", "steps/traj", ".1f"),
    ("ns_per_step", "ns/traj-step", ".1f"),
    ("max_error", "max error", ".1e"),
    ("dynsim_speedup", "dynsim faster by", ".2f"),
    ("diffrax_ratio", "diffrax's time / its", ".2f"),
    ("numba_ratio", "numba's time / its", ".2f"),
]


def figure(rows: list[dict]) -> Figure:
    fig = Figure(figsize=(7.5, 3.8), dpi=150, layout="constrained")
    ax = fig.add_subplot()
    cases = list(dict.fromkeys((r["mode"], r["precision"], r["N"]) for r in rows))
    arms = list(dict.fromkeys(r["arm"] for r in rows))
    width = 0.8 / len(arms)
    for i, arm in enumerate(arms):
        xs, ts = [], []
        for j, case in enumerate(cases):
            for r in rows:
                if r["arm"] == arm and (r["mode"], r["precision"], r["N"]) == case:
                    xs.append(j + i * width)
                    ts.append(r["time_s"])
        ax.bar(xs, ts, width, label=arm)
    ax.set_xticks(
        np.arange(len(cases)) + 0.4 - width / 2,
        [f"{m}\n{p}, N={n}" for m, p, n in cases],
        fontsize=7,
    )
    ax.set_yscale("log")
    ax.set_ylabel("median wall time per ensemble (s)")
    ax.set_title("E1: Lorenz ensemble, t ∈ [0, 1]")
    ax.legend(frameon=False, fontsize=7)
    return fig


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 16384])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--modes", nargs="+", default=["adaptive", "fixed"])
    parser.add_argument("--precisions", nargs="+", default=["f64", "f32"])
    parser.add_argument("--devices", type=int, default=None, help="CPU devices")
    args = parser.parse_args(argv)
    rows = []
    for n in args.sizes:
        members = np.linspace(0, n - 1, 257).round().astype(int)
        ref = reference(np.linspace(0.0, 21.0, n)[members])
        for mode in args.modes:
            for precision in args.precisions:
                new = measure(n, mode, precision, max(5, args.repeats), ref)
                rows += new
                print(table(new, COLUMNS), flush=True)
    print(table(rows, COLUMNS))
    info = machine()
    print(
        f"\nmachine: {info['cpu']} ({info['vectors']}), {info['cores']} cores, "
        f"JAX devices {len(jax.devices())}; arithmetic bound ≈ "
        f"{bound_ns('adaptive'):.1f} ns (adaptive) / {bound_ns('fixed'):.1f} ns "
        "(fixed) per trajectory-step on all cores; SIMD fixed-step numba code "
        "reaches 12–15 ns"
    )
    path = write_json("ensemble_lorenz", {"machine": info, "rows": rows})
    png = RESULTS / "ensemble_lorenz.png"
    figure(rows).savefig(png)
    print(f"wrote {path} and {png}")


if __name__ == "__main__":
    main()
