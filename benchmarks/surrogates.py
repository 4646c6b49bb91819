"""N1 (docs/benchmarks.md): numerical solvers against neural surrogates.

Each surrogate learns the flow map of a reference system — from an initial state y₀
to the trajectory y(t₁ … t_K) over a fixed horizon — from 128 training
trajectories, and is scored on 128 held-out initial states:

- neural ODE (`NeuralODE`, width 64, trained through diffrax's recursive
  checkpoint adjoint at rtol 1e-4);
- LTC (`LTC`, 16 fully connected neurons, 3 motor neurons, ncps' fused step with 6
  unfolds), reading y₀ as its input at every sample;
- CfC (`CfC`, default gated mode, 32 hidden units, backbone 64), likewise.

All work in coordinates normalised by the attractor's mean and standard deviation,
trained with Adam by `dynsim.fit`. Next to them, dynsim's Tsit5 at several
tolerances on the same 128 initial states. The error is the RMS difference to a
Dopri8 solution at rtol 1e-12, in normalised units, over the whole horizon; the cost
is the time to produce all 128 trajectories (compiled, batched with `vmap`, best of
5). Training time is reported separately.

Systems: Lorenz (σ, ρ, β = 10, 28, 8/3; horizon 1 time unit ≈ 0.9 Lyapunov times,
41 samples) and the well-mixed Sel'kov model with one cell on its limit cycle
(α = 0.5; horizon 10, 41 samples).

Run: `python -m benchmarks.surrogates [--steps 1500]`.
"""

from __future__ import annotations

import argparse
import functools
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from matplotlib.figure import Figure

import dynsim as ds
from benchmarks._common import RESULTS, machine, table, timed, write_json
from dynsim._fit import predict
from dynsim.models import LTC, CfC, NeuralODE
from dynsim.solvers import SaveSpec, integrate

TOLERANCES = (1e-3, 1e-5, 1e-7, 1e-9)
N_TRAIN = N_TEST = 128


def _field(t, y, model):
    return model.vector_field(t, y, None)


def solve_batch(model, y0s, ts, solver, rtol):
    @jax.jit
    def run(y0s):
        def one(y0):
            return integrate(
                _field, y0, ts[0], ts[-1], model, solver=solver, rtol=rtol,
                atol=rtol * 1e-2, saveat=SaveSpec(ts), max_steps=100_000,
            ).ys  # fmt: skip

        return jax.vmap(one)(y0s)

    return lambda: run(y0s)


def problem(name):
    if name == "lorenz":
        model, t1, t_settle = ds.models.Lorenz(), 1.0, 50.0
    else:
        model, t1, t_settle = (
            ds.models.SelkovWellMixed(n_cells=1, alpha=0.5),
            10.0,
            400.0,
        )
    # Initial states spread over the attractor: one long run, sampled.
    long = ds.simulate(
        model,
        (0.0, t_settle + 400.0),
        saveat=np.linspace(t_settle, t_settle + 400.0, 4000),
        rtol=1e-10,
        atol=1e-12,
        max_steps=10**6,
    )
    states = np.asarray(long.ys)
    mean, std = states.mean(0), states.std(0)
    pick = np.random.default_rng(0).permutation(len(states))[: N_TRAIN + N_TEST]
    y0s = jnp.asarray(states[pick])
    ts = jnp.linspace(0.0, t1, 41)
    ref = solve_batch(model, y0s, ts, "dopri8", 1e-12)()
    norm = lambda y: (y - mean) / std  # noqa: E731
    return model, ts, y0s, norm(np.asarray(ref)), norm, (mean, std)


def surrogates(dim, key):
    k1, k2, k3 = jr.split(key, 3)
    return {
        "neural ODE": (NeuralODE(dim, width=64, depth=2, key=k1), 3e-3),
        "LTC": (LTC(dim, 16, output_dim=dim, key=k2), 1e-2),
        "CfC": (CfC(dim, 32, backbone_units=64, output_size=dim, key=k3), 3e-3),
    }


def inputs_for(model, y0n, ts):
    # A neural ODE starts from y₀; the cells read y₀ as their input at every sample.
    if isinstance(model, NeuralODE):
        return y0n
    return jnp.broadcast_to(y0n[:, None, :], (y0n.shape[0], ts.shape[0], y0n.shape[1]))


@eqx.filter_jit
def _infer(model, ts, x):
    opts = dict(rtol=1e-4, atol=1e-6, adjoint="recursive")
    return jax.vmap(lambda xi: predict(model, ts, xi, **opts))(x)


def _row(system, method, kind, seconds, error, train_s):
    return dict(
        system=system,
        method=method,
        kind=kind,
        seconds=seconds,
        error=error,
        train_s=train_s,
    )


def run_system(name, steps, repeats):
    model, ts, y0s, ref, norm, _ = problem(name)
    y0n = jnp.asarray(norm(np.asarray(y0s)))
    train = slice(0, N_TRAIN)
    test = slice(N_TRAIN, N_TRAIN + N_TEST)
    rows = []
    for rtol in TOLERANCES:
        first, best, ys = timed(
            solve_batch(model, y0s[test], ts, "tsit5", rtol), repeats
        )
        err = float(np.sqrt(np.mean((norm(np.asarray(ys)) - ref[test]) ** 2)))
        method = f"dynsim tsit5 rtol={rtol:.0e}"
        rows.append(_row(name, method, "solver", best, err, None))
        print(f"{name}: {rows[-1]['method']}: {best * 1e3:.2f} ms, error {err:.2e}")
    for label, (surrogate, lr) in surrogates(y0s.shape[1], jr.key(0)).items():
        x = inputs_for(surrogate, y0n, ts)
        start = time.perf_counter()
        fit = ds.fit(
            surrogate, (ts, x[train], ref[train]), steps=steps, batch_size=64,
            learning_rate=lr, rtol=1e-4, atol=1e-6, validation=(ts, x[test], ref[test]),
            validate_every=max(steps // 10, 1), key=jr.key(1),
        )  # fmt: skip
        train_s = time.perf_counter() - start
        trained = fit.model
        first, best, pred = timed(
            functools.partial(_infer, trained, ts, x[test]), repeats
        )
        err = float(np.sqrt(np.mean((np.asarray(pred) - ref[test]) ** 2)))
        rows.append(_row(name, label, "surrogate", best, err, train_s))
        print(
            f"{name}: {label}: {best * 1e3:.2f} ms, error {err:.2e}, trained "
            f"{train_s:.0f} s (loss {fit.losses[0]:.3g} -> {fit.losses[-1]:.3g})"
        )
    return rows


def figure(rows):
    fig = Figure(figsize=(10, 4), layout="constrained")
    axes = fig.subplots(1, 2)
    markers = {"neural ODE": "o", "LTC": "s", "CfC": "^"}
    for ax, system in zip(axes, ("lorenz", "selkov"), strict=True):
        sel = [r for r in rows if r["system"] == system]
        sol = [r for r in sel if r["kind"] == "solver"]
        ax.loglog([r["seconds"] for r in sol], [r["error"] for r in sol], "k.-",
                  label="dynsim Tsit5 (rtol 1e-3 … 1e-9)")  # fmt: skip
        for r in sel:
            if r["kind"] == "surrogate":
                ax.loglog(r["seconds"], r["error"], markers[r["method"]], ms=9,
                          label=r["method"])  # fmt: skip
        ax.set_title(
            {"lorenz": "Lorenz", "selkov": "Sel'kov (well-mixed, 1 cell)"}[system]
        )
        ax.set_xlabel(f"time for {N_TEST} trajectories (s)")
        ax.set_ylabel("RMS error (normalised units)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    return fig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    start = time.perf_counter()
    rows = run_system("lorenz", args.steps, args.repeats)
    rows += run_system("selkov", args.steps, args.repeats)
    cols = [("system", "system", "s"), ("method", "method", "s"),
            ("seconds", "time (s)", ".2e"), ("error", "RMS error", ".2e"),
            ("train_s", "training (s)", ".0f")]  # fmt: skip
    print(table(rows, cols))
    write_json("surrogates", {"machine": machine(), "steps": args.steps, "rows": rows,
                              "total_s": time.perf_counter() - start})  # fmt: skip
    figure(rows).savefig(RESULTS / "surrogates.png", dpi=150)
    print(f"wrote {RESULTS / 'surrogates.json'} and {RESULTS / 'surrogates.png'} "
          f"in {time.perf_counter() - start:.0f} s")  # fmt: skip


if __name__ == "__main__":
    main()
