"""Floating-point precision of dynsim's computations."""

from __future__ import annotations

import os
import sys
from typing import Literal


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
