"""Observables bound to a model's state: their state selections resolved to flat
indices, as the reductions a solve carries."""

from typing import Any

import equinox as eqx
from jaxtyping import Array

from dynsim.solvers import AbstractReduction, select_carries

from ._observables import (
    AbstractObservable,
    AbstractRunningObservable,
    Function,
    StateSelector,
)


class BoundObservable(AbstractReduction):
    """A running observable with its state selection resolved to flat indices: the
    `dynsim.solvers.AbstractReduction` the solve carries."""

    obs: AbstractRunningObservable
    index: int | None = eqx.field(static=True)

    @property
    def window_start(self) -> float:
        return self.obs.start

    @property
    def own_size(self) -> int | None:
        """How many leading components are the model's own state (None: all)."""
        return None

    @property
    def components(self) -> tuple[int, ...] | None:
        if self.index is None:
            size = self.own_size
            return None if size is None else tuple(range(size))
        return (self.index,)

    def _own(self, y: Array) -> Array:
        return y if self.own_size is None else y[: self.own_size]

    def _select(self, y: Array) -> Array:
        if self.index is None:
            return self._own(y)
        return y[self.index : self.index + 1]

    def init(self, t0, y0, discrete):
        y = self._own(y0) if self.obs.whole_state else self._select(y0)
        return self.obs.init(t0, y, discrete)

    def update(self, carry, segment, samples):
        if self.own_size is not None and not self.obs.tangent:
            segment = segment.restrict(tuple(range(self.own_size)))
        new = self.obs.update(carry, segment, samples, self._select)
        if segment.discrete:
            return new
        # Steps before the window leave the carry as it was (records are written
        # only from the window's samples).
        return select_carries(segment.t1 > self.obs.start, new, carry)

    def finish(self, carry):
        value = self.obs.finish(carry)
        if self.obs.componentwise and self.index is not None:
            return value[0]  # one component selected: its value, not a 1-vector
        return value


class TangentBound(BoundObservable):
    """A bound observable of runs that carry their tangent dynamics after the
    model's `size` (flat) components: it sees those components only (the tangent
    observables: the log growth after them)."""

    size: int = eqx.field(static=True)

    @property
    def own_size(self) -> int | None:
        return self.size


def _resolve_index(
    name: str, sel: StateSelector, state_names: tuple[str, ...]
) -> int | None:
    if sel is None:
        return None
    if isinstance(sel, str):
        if sel not in state_names:
            raise ValueError(
                f"observable {name!r}: no state {sel!r}; states are "
                f"{', '.join(state_names)}"
            )
        return state_names.index(sel)
    index = int(sel)
    if not -len(state_names) <= index < len(state_names):
        raise ValueError(f"observable {name!r}: state index {index} out of range")
    return index % len(state_names)


def bind_observables(
    observables: Any, state_names: tuple[str, ...], state_size: int | None = None
) -> tuple[tuple[str, BoundObservable | tuple[Function, int | None]], ...]:
    """Check a scan's `observables` (name -> observable or function) and resolve
    their state selections: running observables become `BoundObservable`s, functions
    of samples `(Function, index)` pairs. When one of them needs the tangent
    dynamics (`tangent`), the runs carry them after the model's `state_size`
    components (see `carries_tangent`): the others are bound to those components,
    the tangent ones to the log growth after them.

    **Raises:** `TypeError` / `ValueError` naming the bad observable.
    """
    from collections.abc import Mapping

    if observables is None:
        return ()
    if not isinstance(observables, Mapping):
        raise TypeError("observables must be a dict: name -> observable")
    out: list[tuple[str, Any]] = []
    for name, obs in observables.items():
        if not isinstance(obs, AbstractObservable):
            if not callable(obs):
                raise TypeError(f"observable {name!r} is not an observable or callable")
            obs = Function(obs)
        index = _resolve_index(name, obs.state, state_names)
        if isinstance(obs, Function):
            out.append((name, (obs, index)))
            continue
        if obs.needs_state and index is None:
            raise ValueError(
                f"observable {name!r}: {type(obs).__name__} needs one state "
                "component (state=...)"
            )
        out.append((name, BoundObservable(obs, index)))
    if not carries_tangent(out):
        return tuple(out)
    if state_size is None:
        raise ValueError("binding a tangent observable needs the state size")
    growth = 2 * state_size  # the flat (state, tangent, log growth)
    return tuple(
        (name, TangentBound(o.obs, growth if o.obs.tangent else o.index, state_size))
        if isinstance(o, BoundObservable)
        else (name, o)
        for name, o in out
    )


def carries_tangent(bound: Any) -> bool:
    """Whether bound observables (`bind_observables`) need the runs' tangent
    dynamics."""
    return any(isinstance(o, BoundObservable) and o.obs.tangent for _, o in bound)
