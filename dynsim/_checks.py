"""Input checks shared by every entry point (`simulate`, `scan`, the analyses):
misuse found before anything is traced raises at once, with a message that says
what is wrong and what to do."""

from __future__ import annotations

import os
from typing import Any

import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jaxtyping import Array, ArrayLike, PyTree

from dynsim.models import AbstractSystem, parameters
from dynsim.solvers import SolveOptions, as_float, solve_options

SaveAtLike = int | ArrayLike | None


def check_model(model: Any) -> AbstractSystem:
    """**Raises:** `TypeError` unless `model` is a dynsim system (flow or map)."""
    if not isinstance(model, AbstractSystem):
        raise TypeError(
            "expected a dynsim model (a subclass of dynsim.AbstractModel or "
            f"dynsim.AbstractMap), got {type(model).__name__}"
        )
    return model


def _concrete(x: Any) -> np.ndarray | None:
    try:
        return np.asarray(x)
    except (
        TypeError,
        jax.errors.ConcretizationTypeError,
        jax.errors.TracerArrayConversionError,
    ):
        return None  # traced: checked by nobody but the solve itself


def check_finite_parameters(model: Any) -> None:
    """Refuse a model with a NaN or infinite parameter before any solve.

    **Raises:** `ValueError` naming the parameter.
    """
    for name, value in parameters(model).items():
        v = _concrete(value)
        if v is not None and v.dtype.kind in "fc" and not np.all(np.isfinite(v)):
            raise ValueError(
                f"{type(model).__name__} parameter {name!r} is not finite "
                f"({v.tolist() if v.size <= 8 else 'some of its entries'}); "
                "parameters must be finite numbers"
            )


def check_finite_state(y0: PyTree[Array], what: str = "y0") -> None:
    """Refuse a NaN or infinite initial state. **Raises:** `ValueError`."""
    for leaf in jtu.tree_leaves(y0):
        v = _concrete(leaf)
        if v is not None and not np.all(np.isfinite(v)):
            bad = np.flatnonzero(~np.isfinite(v.ravel()))
            raise ValueError(
                f"{what} is not finite (entries {bad[:8].tolist()} are NaN or inf); "
                "a solve needs a finite initial state"
            )


def check_t_span(t_span: Any) -> tuple[Array, Array]:
    """(t0, t1) as float arrays; raises `ValueError` for anything else."""
    try:
        t0, t1 = t_span
    except (TypeError, ValueError):
        raise ValueError(f"t_span must be a pair (t0, t1), got {t_span!r}") from None
    t0, t1 = as_float(t0), as_float(t1)
    if t0.ndim or t1.ndim:
        raise ValueError(f"t_span must hold two scalars, got {t_span!r}")
    if not isinstance(t0, jax.core.Tracer) and not isinstance(t1, jax.core.Tracer):
        if not (np.isfinite(float(t0)) and np.isfinite(float(t1))):
            raise ValueError(f"t_span must be finite, got {t_span!r}")
        if float(t1) == float(t0):
            raise ValueError(f"t_span is empty: t0 = t1 = {float(t0)}")
    return t0, t1


def check_y0(model: Any, y0: PyTree[ArrayLike] | None) -> PyTree[Array]:
    """The initial state: the model's default, or `y0` checked against its shape."""
    expected = model.initial_state()
    if y0 is None:
        return expected
    if jtu.treedef_is_leaf(jtu.tree_structure(expected)):
        y0 = as_float(y0)  # a list or tuple of numbers is one array
    y0 = jtu.tree_map(as_float, y0)
    e_shapes = jtu.tree_map(jnp.shape, expected)
    g_shapes = jtu.tree_map(jnp.shape, y0)
    if jtu.tree_structure(expected) != jtu.tree_structure(y0) or e_shapes != g_shapes:
        names = ", ".join(model.state_names)
        raise ValueError(
            f"y0 has shape {g_shapes}, but {type(model).__name__}'s state has shape "
            f"{e_shapes} ({names})"
        )
    return y0


def save_times(saveat: SaveAtLike, t0: Array, t1: Array) -> Array | None:
    """`saveat` -> an array of save times, or None for the end point only."""
    if saveat is None:
        return None
    if isinstance(saveat, (int, np.integer)) and not isinstance(saveat, bool):
        if saveat < 1:
            raise ValueError(f"saveat must be >= 1 points, got {saveat}")
        return jnp.linspace(t0, t1, int(saveat))
    ts = jnp.asarray(saveat, dtype=jnp.result_type(float))
    if ts.ndim != 1 or ts.shape[0] == 0:
        raise ValueError("saveat must be an int (number of points) or a 1-D array")
    if not isinstance(ts, jax.core.Tracer) and not isinstance(t0, jax.core.Tracer):
        lo, hi = sorted((float(t0), float(t1)))
        tsn = np.asarray(ts)
        if tsn.min() < lo or tsn.max() > hi:
            raise ValueError(f"saveat times must lie within t_span [{lo}, {hi}]")
        direction = np.sign(float(t1) - float(t0))
        if np.any(np.diff(tsn) * direction < 0):
            raise ValueError("saveat times must be ordered from t0 to t1")
    return ts


def map_span_times(t_span: Any) -> tuple[int, int]:
    """(n0, n1): the first and last iterate index of a map's `t_span`."""
    n0, n = map_span(t_span)
    return n0, n0 + n


def map_span(t_span: Any) -> tuple[int, int]:
    """(n0, n): the first index and the number of iterates of a map's `t_span`."""
    try:
        n0, n1 = (int(v) for v in t_span)
    except (TypeError, ValueError):
        raise ValueError(
            f"t_span of a map must be a pair of ints (0, n), got {t_span!r}"
        ) from None
    if n1 <= n0:
        raise ValueError(f"t_span of a map must have n1 > n0, got {t_span!r}")
    return n0, n1 - n0


def options_for(
    model: AbstractSystem,
    *,
    solver: Any = None,
    rtol: ArrayLike = 1e-6,
    atol: ArrayLike = 1e-9,
    dt0: ArrayLike | None = None,
    adaptive: bool | None = None,
    max_steps: int = 100_000,
    adjoint: Any = None,
    saveat: Any = None,
    event: Any = None,
    throw: bool = False,
    progress: bool = False,
    kind: str | None = None,
) -> SolveOptions:
    """`dynsim.solvers.solve_options` for `model`'s problem kind (`kind`, when the
    caller has the problem already), with the model's own solver check
    (`model.check_solver`).

    **Raises:** `ValueError` naming the invalid option.
    """
    kind = model.problem().kind if kind is None else kind
    if kind != "map" and solver is not None:
        model.check_solver(solver)
    options = solve_options(
        kind,
        solver=solver,
        rtol=rtol,
        atol=atol,
        dt0=dt0,
        adaptive=adaptive,
        max_steps=max_steps,
        adjoint=adjoint,
        saveat=saveat,
        event=event,
        throw=throw,
        progress=progress,
    )
    if kind != "map" and solver is None:
        model.check_solver(options.solver)
    return options


def _available_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def check_scan_size(n_runs: int, n_params: int, n_values: int, n_saved: int) -> int:
    """The memory a scan's result needs on the host (parameters, values, status and
    step counts of every run), checked against this machine.

    **Returns:** the estimate in bytes. **Raises:** `MemoryError` with the numbers
    when the result cannot fit in memory.
    """
    need = n_runs * 8 * (n_params + n_values + n_saved + 4)
    have = _available_memory()
    if have is not None and need > 0.8 * have:
        raise MemoryError(
            f"a scan of {n_runs:,} points needs about {gib(need)} for its results "
            f"in memory, more than this machine can hold ({gib(have)}); scan fewer "
            "points, fewer observables or fewer saved times"
        )
    return need
