"""Provenance records (`RunInfo`) for results."""

from __future__ import annotations

import json
from typing import Any

import diffrax as dfx
import jax
import numpy as np

from dynsim.models import describe

from ._results import RunInfo


def _concrete(x: Any) -> Any:
    if x is None or isinstance(x, (int, float, str, bool)):
        return x
    try:
        return np.asarray(x).tolist()
    except (
        TypeError,
        jax.errors.ConcretizationTypeError,
        jax.errors.TracerArrayConversionError,
    ):
        return None


def seed_of(key: Any) -> int | tuple[int, ...] | None:
    """A JSON-friendly record of a PRNG key (its raw key data)."""
    if key is None:
        return None
    try:
        data = np.asarray(jax.random.key_data(key)).ravel()
    except (
        TypeError,
        jax.errors.ConcretizationTypeError,
        jax.errors.TracerArrayConversionError,
    ):
        return None
    return tuple(int(v) for v in data)


def run_info(
    model: Any,
    state_names: tuple[str, ...],
    *,
    solver: str | dfx.AbstractSolver | None = None,
    key: Any = None,
    config: str | None = None,
    **settings: Any,
) -> RunInfo:
    """Describe a run: model, solver settings (as given), seed and config text."""
    desc = describe(model)
    name = (
        solver if isinstance(solver, str) or solver is None else type(solver).__name__
    )
    solver_json = {"name": name, **{k: _concrete(v) for k, v in settings.items()}}
    return RunInfo(
        model=desc["type"],
        model_params=json.dumps(desc),
        state_names=tuple(state_names),
        solver=json.dumps(solver_json),
        seed=seed_of(key),
        config=config,
    )
