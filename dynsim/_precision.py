"""Floating-point precision of dynsim's computations: the default, and single-precision
scans (the cast to float32, and the error they achieve, measured against float64
solves of a few of their runs)."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from ._results import RunInfo


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


#: Runs of each chunk of a single-precision scan solved again in float64 (evenly
#: spread over the chunk's runs).
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


def check_positions(shares: Sequence[int], per_device: int) -> Any:
    """Which runs of a chunk its float64 check solves again: on each device (its
    `shares[d]` runs of the chunk first in its block, then padding), up to
    `per_device` positions in its block spread evenly over its runs, each once, the
    rest -1 (none); one int32 array of `len(shares) * per_device` positions, device
    by device."""
    import numpy as np

    at = np.full((len(shares), per_device), -1, np.int32)
    for d, share in enumerate(shares):
        if share > 0:
            picked = np.unique(np.linspace(0, share - 1, per_device).round())
            at[d, : picked.size] = picked
    return at.reshape(-1)


def with_achieved_error(info: RunInfo, checks: list[Any]) -> RunInfo:
    """`info` (of a single-precision scan) with its achieved error in its solver
    settings, from its chunks' checks (`(error, compared)` per device: the largest
    difference between the chunk's values — observables, or saved states — and
    those of float64 solves of the same runs at `CHECK_TOLERANCE` times the
    tolerances, relative to 1 + |float64 value|, where both solves succeeded and
    both values are finite; and how many runs were compared): `achieved_error`,
    the largest over the chunks (None when no run was compared), and
    `achieved_error_runs`, the runs compared."""
    import numpy as np

    # (A few numbers per chunk: Python's own arithmetic on them costs a tenth of
    # NumPy's calls, which matters to a small scan's call.)
    runs, error = 0, None
    for e, n in checks:
        for device_error, device_runs in zip(
            np.ravel(e).tolist(), np.ravel(n).tolist(), strict=True
        ):
            runs += device_runs
            stays = error is not None and (math.isnan(error) or device_error <= error)
            if device_runs > 0 and not stays:  # (a NaN wins, as in NumPy's max)
                error = device_error
    if '"achieved_error"' in info.solver:
        raise ValueError("these settings have an achieved error already")
    # (Added to the settings' JSON text as it is: the same text as the settings
    # with these two added and dumped again, at a tenth of the cost; a finite
    # float's JSON is its `repr`.)
    finite = error is not None and math.isfinite(error)
    number = repr(error) if finite else json.dumps(error)
    added = f'"achieved_error": {number}, "achieved_error_runs": {runs}}}'
    solver = info.solver[:-1] + ", " + added if info.solver != "{}" else "{" + added
    return dataclasses.replace(info, solver=solver)
