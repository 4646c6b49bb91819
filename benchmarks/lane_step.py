"""What one step of one lane costs: the ensemble executor against the plainest loop
XLA can run for the same problem.

E1's problem (Lorenz, ρ ∈ linspace(0, 21, N), y0 = (1, 0, 0), t ∈ [0, 1], adaptive
Tsit5 at rtol = atol = 1e-8, float64) on ONE CPU device with L lanes and N = L
runs (each lane one run, no refills):
- the executor, through `ds.plan_scan(...).run_chunk` (inputs already on the
  device: the loop, with the call's dispatch and the lanes' start and finish,
  ≈ 0.3 ms) with `ensemble_lanes = L`;
- a hand-written struct-of-arrays Tsit5 for Lorenz alone: the state as three
  (L,) vectors, the seven stages unrolled, the RMS error norm, an I-controller
  (safety 0.9, factor in [0.2, 10]) and one `lax.while_loop` until every lane has
  reached t1. No diffrax, no statuses, no saving, no observables: the floor of
  this formulation on XLA's CPU backend.

Both report ns per lane-step (time / (loop iterations × L)); the ratio is the
median of per-repeat ratios of interleaved repeats. Run:
`python -m benchmarks.lane_step [--lanes 128 512 2048] [--repeats 9]`.
"""

from __future__ import annotations

import os
import sys

if "jax" not in sys.modules:
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=1"
    )

import argparse  # noqa: E402
import dataclasses  # noqa: E402

import diffrax as dfx  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import dynsim as ds  # noqa: E402
from benchmarks._common import (  # noqa: E402
    interleaved,
    machine,
    table,
    write_json,
)

SIGMA, BETA = 10.0, 8.0 / 3.0
TOL = 1e-8
T1 = 1.0


def _lorenz(y, rho):
    x, yy, z = y
    return (SIGMA * (yy - x), x * (rho - z) - yy, x * yy - BETA * z)


def _combine(weights, ks, j):
    return sum(w * k[j] for w, k in zip(weights, ks, strict=True))


def plain_tsit5(rho):
    """The hand-written loop (module doc): final states and loop iterations."""
    tableau = dfx.Tsit5().tableau
    a_lower = [np.asarray(a) for a in tableau.a_lower]
    b_sol, b_err = np.asarray(tableau.b_sol), np.asarray(tableau.b_error)
    lanes = rho.shape[0]

    def body(carry):
        y, t, h, count = carry
        h = jnp.minimum(h, T1 - t)
        ks = [_lorenz(y, rho)]
        for a in a_lower:
            ks.append(
                _lorenz(
                    tuple(
                        y[j] + h * sum(a[m] * ks[m][j] for m in range(len(a)))
                        for j in range(3)
                    ),
                    rho,
                )
            )
        y1 = tuple(y[j] + h * _combine(b_sol, ks, j) for j in range(3))
        err = tuple(h * _combine(b_err, ks, j) for j in range(3))
        big = [jnp.maximum(abs(y[j]), abs(y1[j])) for j in range(3)]
        ratio = [err[j] / (TOL * (1 + big[j])) for j in range(3)]
        norm = jnp.sqrt(sum(r**2 for r in ratio) / 3)
        going = t < T1
        accept = (norm <= 1) & going
        factor = jnp.clip(0.9 * norm ** (-1 / 5), 0.2, 10.0)
        y = tuple(jnp.where(accept, y1[j], y[j]) for j in range(3))
        t = jnp.where(accept, t + h, t)
        return y, t, jnp.where(going, h * factor, h), count + 1

    start = (
        (jnp.ones(lanes), jnp.zeros(lanes), jnp.zeros(lanes)),
        jnp.zeros(lanes),
        jnp.full(lanes, 1e-3),
        jnp.zeros((), jnp.int32),
    )
    y, _, _, count = jax.lax.while_loop(lambda c: jnp.any(c[1] < T1), body, start)
    return jnp.stack(y, axis=1), count


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lanes", type=int, nargs="+", default=[128, 512, 2048])
    parser.add_argument("--repeats", type=int, default=9)
    a = parser.parse_args(argv)
    plain = jax.jit(plain_tsit5)
    rows = []
    for lanes in a.lanes:
        rho = np.linspace(0.0, 21.0, lanes)
        plan = ds.plan_scan(
            ds.models.Lorenz(), {"rho": rho}, (0.0, T1),
            y0=np.array([1.0, 0.0, 0.0]), rtol=TOL, atol=TOL,
        )  # fmt: skip
        plan = dataclasses.replace(plan, ensemble_lanes=lanes)
        inputs = plan.chunk_inputs(0)  # (on the devices)
        rho_device = jnp.asarray(rho)
        _, iterations = plan.run_chunk(inputs, diagnostics=True)
        _, plain_iterations = plain(rho_device)
        arms = {
            "executor": lambda plan=plan, inputs=inputs: plan.run_chunk(
                inputs, packed=True
            ),
            "plain": lambda rho=rho_device: plain(rho),
        }
        _, times, out = interleaved(arms, a.repeats)
        ends = np.asarray(plan.to_host(0, out["executor"])[1])[:, -1]
        agree = float(np.max(np.abs(ends - np.asarray(out["plain"][0]))))
        its = {"executor": int(np.max(iterations)), "plain": int(plain_iterations)}
        ratio = np.median(np.divide(times["executor"], times["plain"]))
        for arm in arms:
            t = float(np.median(times[arm]))
            rows.append(
                {
                    "lanes": lanes,
                    "arm": arm,
                    "time_s": t,
                    "iterations": its[arm],
                    "ns_per_lane_step": 1e9 * t / (its[arm] * lanes),
                    "executor_over_plain": float(ratio) if arm == "executor" else None,
                    "max_end_difference": agree,
                }
            )
    columns = [
        ("lanes", "lanes", "d"),
        ("arm", "arm", "s"),
        ("time_s", "time (s)", ".3g"),
        ("iterations", "iterations", "d"),
        ("ns_per_lane_step", "ns / lane-step", ".3g"),
        ("executor_over_plain", "executor time / plain", ".2f"),
        ("max_end_difference", "max |end difference|", ".1e"),
    ]
    print(table(rows, columns))
    info = machine()
    print(f"\nmachine: {info['cpu']} ({info['vectors']}), one CPU device")
    path = write_json("lane_step", {"machine": info, "rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
