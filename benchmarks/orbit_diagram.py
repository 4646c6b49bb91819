"""E2 (docs/benchmarks.md): the Lorenz orbit diagram — N values of ρ in [0, 200],
t ∈ [0, 200], the first 100 dropped, the maxima of z recorded — and how busy the
ensemble executor's lanes are.

Step counts differ several-fold between members (fixed points, periodic windows,
chaos), which is where lockstep lanes idle. Measured in one run:
- the executor's lane-steps (lanes × loop iterations, per device, summed over the
  chunks) against the sum of the members' own attempted steps, and the lockstep
  equivalent (each chunk's slowest member × its runs);
- `dynsim.scan` (maxima by `observables.Peaks`, exact within steps) against plain
  `jit(vmap(diffeqsolve))` with diffrax's defaults saving `--samples` states in
  [100, 200] (the maxima then read off the samples), as the median of interleaved
  repeats; compile times apart (first call minus median).

Run: `python -m benchmarks.orbit_diagram [--points 4096] [--rtol 1e-8]
[--repeats 5] [--devices N]`.
"""

from __future__ import annotations

import os
import sys

if "jax" not in sys.modules and "xla_force_host_platform" not in os.environ.get(
    "XLA_FLAGS", ""
):
    n = os.cpu_count() or 1
    if "--devices" in sys.argv:
        n = int(sys.argv[sys.argv.index("--devices") + 1])
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={n}"
    )

import argparse  # noqa: E402

import diffrax as dfx  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import dynsim as ds  # noqa: E402
from benchmarks._common import interleaved, machine, table, write_json  # noqa: E402
from benchmarks.ensemble_lorenz import lorenz_jax  # noqa: E402

Y0 = np.array([1.0, 1.0, 1.0])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=4096)
    parser.add_argument("--rtol", type=float, default=1e-8)
    parser.add_argument("--t1", type=float, default=200.0)
    parser.add_argument("--samples", type=int, default=4000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--devices", type=int, default=None, help="CPU devices")
    a = parser.parse_args(argv)
    rho = np.linspace(0.0, 200.0, a.points)
    t_from = a.t1 / 2
    obs = {"z_max": ds.observables.Peaks("z", t_from=t_from, max_peaks=64)}
    kwargs = dict(y0=Y0, observables=obs, rtol=a.rtol, atol=a.rtol)

    # Lane utilisation, from the plan the scan runs.
    plan = ds.plan_scan(ds.models.Lorenz(), {"rho": rho}, (0.0, a.t1), **kwargs)
    per_device = max(1, plan.ensemble_lanes // jax.local_device_count())
    lane_steps = own = lockstep = 0
    for c in range(plan.n_chunks):
        out, iterations = plan.run_chunk(
            plan.chunk_inputs(c), diagnostics=True, packed=True
        )
        steps = plan.to_host(c, out)[3]["num_steps"]
        lane_steps += int(np.sum(iterations)) * per_device
        own += int(steps.sum())
        lockstep += int(steps.max()) * steps.size
    print(
        f"executor: {plan.ensemble_lanes} lanes ({jax.local_device_count()} devices), "
        f"chunks of {plan.chunk_size}: lane-steps {lane_steps:,} = "
        f"{lane_steps / own:.3f}× the members' own attempted steps {own:,} "
        f"(lockstep: {lockstep / own:.2f}×)"
    )

    def ours():
        return ds.scan(
            ds.models.Lorenz(), {"rho": rho}, (0.0, a.t1), progress=False, **kwargs
        )

    ts = jnp.linspace(t_from, a.t1, a.samples)

    @jax.jit
    def plain(rhos):
        def one(r):
            return dfx.diffeqsolve(
                dfx.ODETerm(lorenz_jax),
                dfx.Tsit5(),
                0.0,
                a.t1,
                None,
                jnp.asarray(Y0),
                r,
                stepsize_controller=dfx.PIDController(rtol=a.rtol, atol=a.rtol),
                saveat=dfx.SaveAt(ts=ts),
                max_steps=1_000_000,
            ).ys[:, 2]

        return jax.vmap(one)(rhos)

    rho_dev = jnp.asarray(rho)

    def theirs():
        z = np.asarray(jax.block_until_ready(plain(rho_dev)))
        peak = (z[:, 1:-1] > z[:, :-2]) & (z[:, 1:-1] >= z[:, 2:])
        return np.where(peak, z[:, 1:-1], np.nan)

    first, times, _ = interleaved({"dynsim": ours, "diffrax": theirs}, a.repeats)
    ratio = float(np.median(np.asarray(times["diffrax"]) / np.asarray(times["dynsim"])))
    rows = [
        {
            "arm": name,
            "time_s": float(np.median(times[name])),
            "compile_s": max(0.0, first[name] - float(np.median(times[name]))),
        }
        for name in times
    ]
    columns = [("arm", "arm", "s"), ("time_s", "median (s)", ".2f")]
    columns.append(("compile_s", "compile (s)", ".2f"))
    print(table(rows, columns))
    info = machine()
    print(
        f"E2, {a.points} points, rtol = atol = {a.rtol:g}, t ∈ [0, {a.t1:g}]: "
        f"dynsim.scan {ratio:.1f}× faster than plain diffrax vmap (median of "
        f"{a.repeats} interleaved pairs); machine: {info['cpu']} ({info['vectors']})"
    )
    write_json(
        "orbit_diagram",
        {
            "points": a.points,
            "rtol": a.rtol,
            "lanes": plan.ensemble_lanes,
            "lane_steps": lane_steps,
            "member_steps": own,
            "lockstep_steps": lockstep,
            "ratio": ratio,
            "times": times,
            "rows": rows,
            "machine": info,
        },
    )


if __name__ == "__main__":
    main()
