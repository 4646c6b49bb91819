"""Floating-point precision of dynsim's computations: the default, and single-precision
scans (the cast to float32, and the error they achieve, measured against float64
solves of a few of their runs)."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from ._results import ScanResult


def set_precision(precision: Literal["single", "double"]) -> None:
    """Use float64 (`"double"`, dynsim's default) or float32 (`"single"`) everywhere.

    dynsim switches JAX to double precision when imported, because adaptive solves at
    the default tolerances (rtol 1e-6, atol 1e-9) and the analyses need it; set the
    environment variable `JAX_ENABLE_X64=0` before importing, or call
    `set_precision("single")` before creating models, for float32 (e.g. to train
    neural surrogates on a GPU).
    """
    if precision not in ("single", "double"):
        raise ValueError(f"precision must be 'single' or 'double', got {precision!r}")
    import jax

    jax.config.update("jax_enable_x64", precision == "double")


def _default_precision() -> None:
    if os.environ.get("JAX_ENABLE_X64", "").strip().lower() in ("0", "false", "no"):
        return
    if "jax" in sys.modules:
        set_precision("double")
    else:
        # JAX reads this when it is first imported: double precision without paying
        # for importing JAX now.
        os.environ["JAX_ENABLE_X64"] = "1"


#: Runs of a single-precision scan solved again in float64 (evenly spread over the
#: scan's successful runs).
CHECK_RUNS = 8
#: The float64 solves' tolerances, as a fraction of the scan's (adaptive steps):
#: their own error is then negligible next to the one measured.
CHECK_TOLERANCE = 1e-3


def to_single(tree: Any) -> Any:
    """Every floating-point array of `tree` in float32 (a single-precision scan)."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import jax.tree_util as jtu
    import numpy as np

    def cast(x):
        if eqx.is_inexact_array_like(x) and not isinstance(x, (bool, int)):
            return (
                jnp.asarray(x, jnp.float32)
                if isinstance(x, jax.Array)
                else (np.asarray(x, np.float32))
            )
        return x

    return jtu.tree_map(cast, tree)


def check_points(result: ScanResult, n: int = CHECK_RUNS) -> Any:
    """Up to `n` points of a scan, evenly spread over its successful ones."""
    import numpy as np

    ok = np.flatnonzero(np.asarray(result.ok_mask).reshape(-1))
    if ok.size == 0:
        return ok
    return np.unique(
        ok[np.linspace(0, ok.size - 1, min(n, ok.size)).round().astype(int)]
    )


def achieved_error(
    result: ScanResult, reference: Callable[[dict[str, Any]], ScanResult]
) -> ScanResult:
    """`result` (a single-precision scan of one realisation per point) with its
    achieved error in its solver settings: `achieved_error`, the largest difference
    between its values (observables, or saved states) at `check_points` and those
    of `reference(params)` — the same runs (`params`: their parameter values,
    zipped) solved in float64 at `CHECK_TOLERANCE` times the tolerances — relative
    to 1 + |reference|, where both are finite; and `achieved_error_runs`, the number
    of runs compared (0, and no error, when no run succeeded)."""
    import numpy as np

    points = check_points(result)
    error = None
    if points.size:
        ref = reference({k: np.asarray(v)[points] for k, v in result.params.items()})
        ours = result.values if result.values else {"ys": result.ys}
        theirs = ref.values if ref.values else {"ys": ref.ys}
        worst = 0.0
        for key, a in ours.items():
            a = np.asarray(a, np.float64)[points]
            b = np.asarray(theirs[key], np.float64)
            both = (
                np.isfinite(a)
                & np.isfinite(b)
                & ref.ok_mask.reshape((-1,) + (1,) * (b.ndim - 1))
            )
            if np.any(both):
                worst = max(
                    worst, float(np.max(np.abs(a - b)[both] / (1 + np.abs(b[both]))))
                )
        error = worst
    settings = result.info.solver_settings
    settings.update(achieved_error=error, achieved_error_runs=int(points.size))
    info = dataclasses.replace(result.info, solver=json.dumps(settings))
    return dataclasses.replace(result, info=info)
