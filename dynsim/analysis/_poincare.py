"""The Poincaré section of one trajectory: `poincare`, the `Section` observable on a
single solve."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax.random as jr
import numpy as np
from jaxtyping import ArrayLike

from dynsim.models import AbstractSystem
from dynsim.solvers import SaveSpec, Status

from .._binding import bind_observables
from .._checks import (
    check_finite_parameters,
    check_finite_state,
    check_model,
    check_t_span,
    check_y0,
    map_span,
    options_for,
)
from .._observables import StateSelector
from .._protocol import AbstractResult, checked, freeze_fields
from .._provenance import run_info
from .._results import RunInfo
from .._section import Section
from .._simulate import _solve_jit


@dataclasses.dataclass(frozen=True, eq=False)
class PoincareSection(AbstractResult):
    """The crossings of a trajectory with a section, in time order.

    - `times` (crossings,), `states` (crossings, state): each crossing's time and
      state; `state_names`.
    - `full`: the `max_crossings` rows were filled (later crossings not kept).
    - `status`: the solve's; `message`, `info`.
    """

    times: np.ndarray
    states: np.ndarray
    state_names: tuple[str, ...]
    full: bool
    status: int
    message: str
    info: RunInfo

    kind: ClassVar[str] = "poincare_section"
    dims: ClassVar = {"times": ("crossing",), "states": ("crossing", "state")}

    def __post_init__(self):
        object.__setattr__(self, "state_names", tuple(self.state_names))
        freeze_fields(self)

    @property
    def count(self) -> int:
        return int(self.times.size)

    def __repr__(self) -> str:
        more = " (full)" if self.full else ""
        return f"PoincareSection({self.count} crossings{more}, {self.message!r})"


def poincare(
    model: AbstractSystem,
    t_span: tuple[ArrayLike, ArrayLike],
    *,
    state: StateSelector,
    value: float = 0.0,
    direction: int = 1,
    max_crossings: int = 1000,
    t_from: float | None = None,
    y0: ArrayLike | None = None,
    solver: str | None = None,
    rtol: float = 1e-8,
    atol: float = 1e-10,
    max_steps: int = 1_000_000,
    key: Any = None,
    args: Any = None,
    throw: bool = False,
) -> PoincareSection:
    """The first `max_crossings` crossings of one trajectory of `model` over `t_span`
    with the hyperplane y[`state`] = `value` in `direction` (+1 increasing, −1
    decreasing, 0 both), after `t_from`: each located on the solver's dense
    interpolant to the accuracy of the solve (`dynsim.observables.Section`), with
    the whole state there. Nothing but the crossings is kept, however long the run.

    **Returns:** a `PoincareSection`; its `status` is the solve's (`throw=True`
    raises `RuntimeError` when it is not ok).

    **Raises:** `ValueError` for an unknown state, a bad direction or span.
    """
    check_model(model)
    check_finite_parameters(model)
    y0 = check_y0(model, y0)
    check_finite_state(y0)
    section = Section(state=state, value=value, direction=direction,
                      max_crossings=max_crossings, t_from=t_from)  # fmt: skip
    ((_, bound),) = bind_observables({"section": section}, model.state_names)
    problem = model.problem()
    save = SaveSpec(reductions=(bound,))
    if problem.kind == "map":
        t0, n = map_span(t_span)
        t1 = t0 + n
        options = options_for(model, saveat=save, kind="map")
    else:
        t0, t1 = check_t_span(t_span)
        options = options_for(model, solver=solver, rtol=rtol, atol=atol,
                              max_steps=max_steps, saveat=save,
                              kind=problem.kind)  # fmt: skip
        if problem.stochastic and key is None:
            key = jr.key(0)
    sol = _solve_jit(problem, y0, t0, t1, args, options=options, key=key)
    rows = np.asarray(sol.reductions[0])
    rows = rows[np.isfinite(rows[:, 0])]
    status = Status(int(sol.status))
    info = run_info(model, model.state_names, solver=options.solver, rtol=rtol,
                    atol=atol, max_steps=max_steps)  # fmt: skip
    result = PoincareSection(
        times=rows[:, 0],
        states=rows[:, 1:],
        state_names=model.state_names,
        full=len(rows) == max_crossings,
        status=int(status),
        message=status.message,
        info=info,
    )
    return checked(result, throw)
