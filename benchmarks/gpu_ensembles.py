"""E1 on an accelerator (docs/benchmarks.md): the Lorenz ensemble at
N = 2¹⁰ … 2²², float32 and float64, fixed (dt = 1e-3) and adaptive steps,
`dynsim.scan` (the ensemble executor, unchanged from the CPU; with `--pallas` also
its fused kernel, `executor="pallas"`) against plain `jit(vmap(diffeqsolve))`,
timed interleaved (median of `--repeats` rounds, each arm's sample the mean of
about 50 ms of consecutive calls; compile time apart). Writes
`benchmarks/results/gpu_ensembles.json` and `.md`.

Run on a machine with a GPU: `python -m benchmarks.gpu_ensembles [--log2 10 22]
[--repeats 5] [--pallas]`. On a CPU it runs too (use a smaller `--log2` range).
"""

from __future__ import annotations

import argparse

import jax
import numpy as np

from benchmarks._common import RESULTS, interleaved, machine, table, write_json
from benchmarks.ensemble_lorenz import BATCH, diffrax_arm, dynsim_arm


def measure(n: int, mode: str, precision: str, repeats: int, pallas: bool) -> dict:
    rho = np.linspace(0.0, 21.0, n)
    arms = {
        "dynsim": dynsim_arm(rho, mode, precision),
        "diffrax": diffrax_arm(rho, mode, precision),
    }
    if pallas:
        arms["pallas"] = dynsim_arm(rho, mode, precision, executor="pallas")
    first, times, out = interleaved(arms, repeats, batch=BATCH)
    ends = {name: np.asarray(o[0]) for name, o in out.items()}
    med = {k: float(np.median(v)) for k, v in times.items()}
    ratio = float(np.median(np.asarray(times["diffrax"]) / np.asarray(times["dynsim"])))
    row = {
        "N": n,
        "mode": mode,
        "precision": precision,
        "dynsim_s": med["dynsim"],
        "diffrax_s": med["diffrax"],
        "dynsim_compile_s": max(0.0, first["dynsim"] - med["dynsim"]),
        "diffrax_compile_s": max(0.0, first["diffrax"] - med["diffrax"]),
        "speedup": ratio,
        "max_difference": float(np.nanmax(np.abs(ends["dynsim"] - ends["diffrax"]))),
    }
    if pallas:
        row["pallas_s"] = med["pallas"]
        row["pallas_speedup"] = float(
            np.median(np.asarray(times["diffrax"]) / np.asarray(times["pallas"]))
        )
        row["pallas_compile_s"] = max(0.0, first["pallas"] - med["pallas"])
        row["pallas_max_difference"] = float(
            np.nanmax(np.abs(ends["pallas"] - ends["diffrax"]))
        )
    return row


COLUMNS = [
    ("N", "N", "d"),
    ("mode", "steps", ""),
    ("precision", "dtype", ""),
    ("dynsim_s", "dynsim (s)", ".4f"),
    ("diffrax_s", "diffrax vmap (s)", ".4f"),
    ("speedup", "dynsim faster by", ".1f"),
    ("dynsim_compile_s", "dynsim compile (s)", ".2f"),
    ("diffrax_compile_s", "diffrax compile (s)", ".2f"),
    ("max_difference", "max |Δ| of end states", ".1e"),
]

PALLAS_COLUMNS = [
    ("pallas_s", "fused kernel (s)", ".4f"),
    ("pallas_speedup", "kernel faster by", ".1f"),
    ("pallas_compile_s", "kernel compile (s)", ".2f"),
    ("pallas_max_difference", "kernel max |Δ|", ".1e"),
]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log2", type=int, nargs=2, default=[10, 22])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--modes", nargs="+", default=["adaptive", "fixed"])
    parser.add_argument("--precisions", nargs="+", default=["f32", "f64"])
    parser.add_argument(
        "--pallas", action="store_true", help="also the fused kernel (on a GPU)"
    )
    a = parser.parse_args(argv)
    columns = COLUMNS + (PALLAS_COLUMNS if a.pallas else [])
    rows = []
    for k in range(a.log2[0], a.log2[1] + 1):
        for mode in a.modes:
            for precision in a.precisions:
                repeats = max(5, a.repeats)
                rows.append(measure(2**k, mode, precision, repeats, a.pallas))
                print(table(rows[-1:], columns), flush=True)
    text = table(rows, columns)
    info = machine()
    header = f"E1 on {info['devices']} ({info['cpu']}), JAX {jax.__version__}\n\n"
    print(header + text)
    write_json("gpu_ensembles", {"machine": info, "rows": rows})
    # A Markdown table beside the JSON.
    (RESULTS / "gpu_ensembles").with_suffix(".md").write_text(header + text + "\n")


if __name__ == "__main__":
    main()
