"""Outcome codes of a solve: numerical outcomes are data, not exceptions.

The integer values are dynsim's own and stable across diffrax versions, so that they can
be stored in HDF5 files and compared across runs.
"""

from __future__ import annotations

import enum

import diffrax as dfx
import jax.numpy as jnp
import jax.tree_util as jtu
from jaxtyping import Array, Int, PyTree


class Status(enum.IntEnum):
    """How a solve ended. `SUCCESS` and `EVENT` are successful outcomes."""

    SUCCESS = 0
    EVENT = 1
    MAX_STEPS = 2
    DT_MIN = 3
    NONFINITE = 4
    NONLINEAR_SOLVER = 5
    FAILED = 6

    @property
    def ok(self) -> bool:
        return self in (Status.SUCCESS, Status.EVENT)

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
    Status.FAILED: "the solve failed for another reason",
}

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
    code = jnp.select(
        [
            result == dfx.RESULTS.successful,
            result == dfx.RESULTS.event_occurred,
            result == dfx.RESULTS.max_steps_reached,
            result == dfx.RESULTS.dt_min_reached,
            result == dfx.RESULTS.nonfinite,
            nonlinear,
        ],
        [
            jnp.where(finite, Status.SUCCESS, Status.NONFINITE),
            Status.EVENT,
            Status.MAX_STEPS,
            Status.DT_MIN,
            Status.NONFINITE,
            Status.NONLINEAR_SOLVER,
        ],
        default=Status.FAILED,
    )
    return code.astype(jnp.int32)
