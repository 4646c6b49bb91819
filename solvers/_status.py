"""Outcome codes: numerical outcomes are data, not exceptions.

One family for everything dynsim computes — solves, Newton iterations, continuation
runs, training — so that every result's `status` reads the same way. The integer
values are dynsim's own and stable across diffrax versions, so that they can be
stored in HDF5 files and compared across runs.
"""

from __future__ import annotations

import enum

import diffrax as dfx
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jaxtyping import Array, Int, PyTree


class Status(enum.IntEnum):
    """How a computation ended. `ok` outcomes: `SUCCESS`, `EVENT` (a solve stopped
    by its event), and the complete ends of a continuation run (`SPAN_REACHED`,
    `CLOSED`)."""

    SUCCESS = 0
    EVENT = 1
    MAX_STEPS = 2
    DT_MIN = 3
    NONFINITE = 4
    NONLINEAR_SOLVER = 5
    FAILED = 6
    NO_CONVERGENCE = 7
    SPAN_REACHED = 8
    TURNED_BACK = 9
    CLOSED = 10
    MAX_POINTS = 11
    STEP_TOO_SMALL = 12

    @property
    def ok(self) -> bool:
        return self in _OK

    @property
    def message(self) -> str:
        return _MESSAGES[self]


_MESSAGES = {
    Status.SUCCESS: "successful",
    Status.EVENT: "stopped by an event",
    Status.MAX_STEPS: (
        "the maximum number of steps was reached before t1; raise `max_steps`, loosen "
        "the tolerances, or use an implicit solver if the problem is stiff"
    ),
    Status.DT_MIN: "the step size fell below its minimum",
    Status.NONFINITE: (
        "the state or the vector field became NaN or inf (the solution diverged, or "
        "the vector field is undefined there); the solve stopped"
    ),
    Status.NONLINEAR_SOLVER: "the implicit solver's Newton iteration failed",
    Status.FAILED: "the computation failed for another reason",
    Status.NO_CONVERGENCE: (
        "Newton's method did not converge: no solution near the initial guess (try "
        "another y0 or parameter value)"
    ),
    Status.SPAN_REACHED: "the end of the parameter span was reached",
    Status.TURNED_BACK: (
        "the branch turned back (a fold) and left the span at its start: the end "
        "of the span was not reached"
    ),
    Status.CLOSED: "the branch closed on itself (a loop)",
    Status.MAX_POINTS: (
        "stopped at max_points before the end of the span; raise max_points or ds_max"
    ),
    Status.STEP_TOO_SMALL: (
        "the step size fell below ds_min: the corrector does not converge here (a "
        "singular point, or a branch that ends)"
    ),
}

_OK = frozenset(
    {
        Status.SUCCESS,
        Status.EVENT,
        Status.SPAN_REACHED,
        Status.CLOSED,
    }
)


def status_ok(status: int | np.ndarray) -> np.ndarray:
    """Which codes (an int or an array of them) are `ok` outcomes."""
    return np.isin(np.asarray(status), [int(s) for s in _OK])


# Every code's message, indexed by code, for `eqx.branched_error_if`.
STATUS_MESSAGES: tuple[str, ...] = tuple(
    f"dynsim: solve failed: {_MESSAGES[s]}" for s in Status
)


def status_from_result(result: dfx.RESULTS, ys: PyTree[Array]) -> Int[Array, ""]:
    """Map diffrax's result (and the finiteness of the saved states) to a `Status`."""
    finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(y)) for y in jtu.tree_leaves(ys)]))
    nonlinear = (
        (result == dfx.RESULTS.nonlinear_max_steps_reached)
        | (result == dfx.RESULTS.nonlinear_divergence)
        | (result == dfx.RESULTS.singular)
    )
    # After a failure or an event diffrax fills the unreached save points with inf, so
    # finiteness only tells something about solves that diffrax calls successful.
    # The first case that holds gives the code: `jnp.where`s from the last case to
    # the first, elementwise (`jnp.select` takes an argmax of the stacked cases, a
    # reduction that XLA's CPU backend compiles into a loop of its own: 0.04 s of
    # E1's first call).
    cases = (
        (
            result == dfx.RESULTS.successful,
            jnp.where(finite, Status.SUCCESS, Status.NONFINITE),
        ),
        (result == dfx.RESULTS.event_occurred, Status.EVENT),
        (result == dfx.RESULTS.max_steps_reached, Status.MAX_STEPS),
        (result == dfx.RESULTS.dt_min_reached, Status.DT_MIN),
        (result == dfx.RESULTS.nonfinite, Status.NONFINITE),
        (nonlinear, Status.NONLINEAR_SOLVER),
    )
    code = jnp.asarray(Status.FAILED, jnp.int32)
    for condition, value in reversed(cases):
        code = jnp.where(condition, jnp.asarray(value, jnp.int32), code)
    return code
