"""Running reductions: quantities of a solution accumulated step by step inside the
solver loop, so that a scan of a million trajectories keeps a few numbers per
trajectory instead of a million saved time series.

A reduction sees every *accepted* step as a `Segment` — the step's end points and the
solver's own dense interpolant between them — and folds it into a small carry. The
carry travels in the solver state (`ReducingSolver`), which diffrax commits only when
the step controller accepts a step, so rejected steps never reach a reduction. Nothing
is buffered per step: memory is the size of the carry, whatever the number of steps,
which is what makes this usable under `vmap` (unlike `SaveAt(steps=True)` or dense
output, which allocate `max_steps`-sized buffers per trajectory).

Extrema and crossings are located *within* steps: the interpolant and its derivative
are sampled at `SAMPLES_PER_STEP + 1` points of the step (once per step, shared by
every reduction with the same window), sign changes of the derivative bracket the
extrema, and `critical_points` locates each from the cubic Hermite fit of the
bracket's end values and slopes. Results are exact to the accuracy of the solve,
whatever the output grid.

A carry may hold `Record`s, fixed-size buffers filled entry by entry (the peaks
found so far): written only where valid samples say, they are left out when a solver
restores the carry of a step that does not count (`select_carries`), so that solver
loops write into them in place instead of copying them on every step.

Maps (discrete time) use the same protocol: a map's segment joins two consecutive
iterates by a straight line (`Segment.interpolation is None`), so its extrema are the
iterates themselves and its "derivative" is the difference of consecutive iterates.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, ArrayLike, Bool, Float, PyTree

from ._fusion import computed_once

#: Sub-intervals per step in which the dense output is sampled (value and slope at
#: the ends and the midpoint): a turning point is bracketed in each half, so a step
#: may hold a maximum and a minimum of one component, more only when it is grossly
#: under-resolved.
SAMPLES_PER_STEP = 2
#: Closed Newton–Cotes weights of ∫₀¹ on the `SAMPLES_PER_STEP + 1` evenly spaced
#: samples (Simpson's rule).
QUADRATURE_WEIGHTS = (1.0 / 6.0, 4.0 / 6.0, 1.0 / 6.0)


def _flat(y: PyTree[Array]) -> Float[Array, " state"]:
    return ravel_pytree(y)[0]


def _pick(y: Array, index: tuple[int, ...] | None) -> Array:
    """The components `index` of a flat state, by static slices (a gather would
    not fuse)."""
    if index is None:
        return y
    first = index[0]
    if index == tuple(range(first, first + len(index))):
        return y[first : first + len(index)]  # a contiguous run: one slice
    return jnp.concatenate([y[i : i + 1] for i in index])


class Segment(eqx.Module):
    """One accepted step `[t0, t1]` of a solution, as a reduction sees it.

    - `t0`, `t1`: the step's ends.
    - `y0`, `y1`: the (flattened) states there.
    - `interpolation`: the solver's local dense interpolant on `[t0, t1]`; None for
      maps, whose trajectory is the iterates only (joined linearly here).
    - `components`: which components of the flat state the segment holds (None:
      all; see `restrict`).
    """

    t0: Float[Array, ""]
    t1: Float[Array, ""]
    y0: Float[Array, " state"]
    y1: Float[Array, " state"]
    interpolation: dfx.AbstractLocalInterpolation | None
    components: tuple[int, ...] | None = eqx.field(default=None, static=True)

    @property
    def discrete(self) -> bool:
        """True for a map's segment (no interpolant between the iterates)."""
        return self.interpolation is None

    def restrict(self, components: tuple[int, ...] | None) -> "Segment":
        """The same step, of the flat state's `components` only (None: all)."""
        if components is None:
            return self
        if self.components is not None:
            components = tuple(self.components[i] for i in components)
            y0, y1 = self.y0, self.y1
            index = tuple(self.components.index(c) for c in components)
            y0, y1 = _pick(y0, index), _pick(y1, index)
        else:
            y0, y1 = _pick(self.y0, components), _pick(self.y1, components)
        return Segment(self.t0, self.t1, y0, y1, self.interpolation, components)

    def evaluate(self, t: Float[Array, ""]) -> Float[Array, " state"]:
        """The (flattened) state at time `t` in `[t0, t1]`."""
        if self.interpolation is None:
            frac = (t - self.t0) / (self.t1 - self.t0)
            return self.y0 + frac * (self.y1 - self.y0)
        return _pick(_flat(self.interpolation.evaluate(t)), self.components)

    def evaluate_with_derivative(
        self, t: Float[Array, ""]
    ) -> tuple[Float[Array, " state"], Float[Array, " state"]]:
        """The state and its time derivative at `t` (for a map: the difference of
        the two iterates, the discrete derivative)."""
        if self.interpolation is None:
            return self.evaluate(t), self.y1 - self.y0
        return jax.jvp(self.evaluate, (t,), (jnp.ones_like(t),))


class StepSamples(eqx.Module):
    """A segment sampled at evenly spaced times of its part in a window.

    - `ts`: `(n,)` times; `ys`, `ds`: `(n, state)` values and time derivatives.
    - `valid`: `(n,)` which samples lie in the window.
    - `fresh`: `(n,)` which samples no earlier step saw (every sample but the one at
      the step's start, unless the window opens inside the step).

    A flow's step is sampled at `SAMPLES_PER_STEP + 1` points of
    `[max(t0, window start), t1]`; a map's segment at its two iterates (valid where
    they lie in the window; the derivative, a difference of iterates, only where
    both do).
    """

    ts: Float[Array, " n"]
    ys: Float[Array, "n state"]
    ds: Float[Array, "n state"]
    valid: Bool[Array, " n"]
    fresh: Bool[Array, " n"]

    def select(self, select: Callable[[Array], Array]) -> "StepSamples":
        """The same samples of the components `select(y)` only."""
        pick = jax.vmap(select)
        return StepSamples(
            self.ts, pick(self.ys), pick(self.ds), self.valid, self.fresh
        )


def sample_segment(segment: Segment, t_from: float) -> StepSamples:
    """Sample `segment` within the window `[t_from, ∞)` (see `StepSamples`); the
    samples are computed once (`computed_once`): XLA would otherwise evaluate the
    dense output anew inside every loop that reads a sample."""
    if segment.discrete:
        ts = jnp.stack([segment.t0, segment.t1])
        ys = jnp.stack([segment.y0, segment.y1])
        valid = ts >= t_from
        slope = segment.y1 - segment.y0
        ds = jnp.where(valid[0] & valid[1], jnp.stack([slope, slope]), jnp.nan)
        fresh = jnp.array([False, True]) & valid
        return StepSamples(ts, ys, ds, valid, fresh)
    lo = jnp.maximum(segment.t0, t_from)
    n = SAMPLES_PER_STEP
    # Sample by sample (each a few numbers per trajectory: loops that vectorise
    # across trajectories once batched).
    ts = [lo + (segment.t1 - lo) * (i / n) for i in range(n + 1)]
    pairs = [segment.evaluate_with_derivative(t) for t in ts]
    ys = [y for y, _ in pairs]
    # The ends are the solver's own states, not interpolated values.
    ys[0] = jnp.where(segment.t0 >= t_from, segment.y0, ys[0])
    ys[-1] = segment.y1
    ts = jnp.stack(ts)
    valid = jnp.full(ts.shape, segment.t1 > t_from)
    fresh = valid & ((jnp.arange(ts.size) > 0) | (segment.t0 < t_from))
    ys, ds = jnp.stack(ys), jnp.stack([d for _, d in pairs])
    return computed_once(StepSamples(ts, ys, ds, valid, fresh))


def critical_points(samples: StepSamples) -> tuple[Array, Array, Array]:
    """Where the sampled components have a local extremum between two samples.

    Between consecutive samples the derivative changes sign exactly where the
    trajectory turns; the turning point is the stationary point of the cubic
    Hermite polynomial through the two samples' values and slopes, which differs
    from the interpolant by O(h⁴) on a bracket of length h (a fraction of a step:
    below the solve's own local error, O(h⁵) per step, for any step the error
    control accepts).

    **Returns:** `times` `(n − 1, k)` of the turns (NaN where a bracket holds none),
    `kind` `(n − 1, k)`: +1 a maximum (slope + → −), −1 a minimum, 0 none (only
    brackets with both ends in the window count), and `values` `(n − 1, k)` at the
    turns.
    """
    # Bracket by bracket: a few numbers per trajectory each, loops that vectorise
    # across trajectories once batched.
    # The turns computed once (`computed_once`): their consumers are many.
    turns = [computed_once(_turn(samples, i)) for i in range(samples.ts.shape[0] - 1)]
    times, kind, value = (jnp.stack(x) for x in zip(*turns, strict=True))
    return times, kind, value


def _turn(samples: StepSamples, i: int) -> tuple[Array, Array, Array]:
    """`critical_points` of the bracket between samples i and i + 1."""
    t0, t1 = samples.ts[i], samples.ts[i + 1]
    p0, p1 = samples.ys[i], samples.ys[i + 1]
    d0, d1 = samples.ds[i], samples.ds[i + 1]
    both = samples.valid[i] & samples.valid[i + 1]
    kind = jnp.where(
        both & (d0 > 0) & (d1 <= 0), 1, jnp.where(both & (d0 < 0) & (d1 >= 0), -1, 0)
    )
    h = t1 - t0
    # H(s) = p0 + c1 s + c2 s² + c3 s³ on s ∈ [0, 1]; H'(s) = c1 + 2 c2 s + 3 c3 s²
    # changes sign on [0, 1]: Newton on H' from the zero of its chord (the root is
    # simple and the quadratic nearly linear on a short bracket: two iterations
    # reach round-off).
    c1 = h * d0
    c2 = 3 * (p1 - p0) - h * (2 * d0 + d1)
    c3 = 2 * (p0 - p1) + h * (d0 + d1)
    chord = d0 - d1
    s = jnp.clip(d0 / jnp.where(chord != 0, chord, 1.0), 0.0, 1.0)
    for _ in range(2):
        g = c1 + s * (2 * c2 + 3 * c3 * s)
        dg = 2 * c2 + 6 * c3 * s
        s = jnp.clip(s - g / jnp.where(dg != 0, dg, 1.0), 0.0, 1.0)
    value = p0 + s * (c1 + s * (c2 + s * c3))
    return jnp.where(kind != 0, t0 + s * h, jnp.nan), kind, value


class Record(eqx.Module):
    """A fixed-size buffer a reduction fills entry by entry (the last peaks of a
    component, the first crossings of a section).

    A reduction writes a record only at entries that *valid* samples produce (an
    index out of range writes nothing): a step with no valid sample leaves it as it
    is, so a solver restoring the carry of a rejected step leaves records out
    (`select_carries`).
    """

    data: Array

    def write(self, index: ArrayLike, value: ArrayLike) -> "Record":
        """The record with `value` written at `index` (along its first axis; an
        index out of range writes nothing)."""
        return Record(self.data.at[index].set(value, mode="drop"))


def _is_record(x: Any) -> bool:
    return isinstance(x, Record)


def select_carries(mask: Bool[Array, ""], new: PyTree, old: PyTree) -> PyTree:
    """`new` where `mask`, else `old`, leaf by leaf — except `Record`s, which are
    taken from `new` (they are written only from valid samples)."""

    def one(a, b):
        return a if _is_record(a) else jnp.where(mask, a, b)

    return jax.tree_util.tree_map(one, new, old, is_leaf=_is_record)


class AbstractReduction(eqx.Module):
    """A quantity accumulated over a solution, one accepted step at a time.

    The contract (all pure, traced under `jit` / `vmap`):

    - `window_start`: where the reduction's time window opens (−inf: at t0); steps
      are sampled within the window.
    - `components`: the (flat) state components it samples (None: all of them).
    - `init(t0, y0, discrete)` -> the carry at the start of the solve (`y0`
      flattened; `discrete` is True for a map, whose trajectory is its iterates).
    - `update(carry, segment, samples)` -> the carry after one more accepted step:
      the step's `Segment` (the whole state) and its `StepSamples` within the
      window, of `components` only (shared with the other reductions of the same
      window and components). It must keep the carry's structure, shapes and
      dtypes, and write its `Record`s only at entries that valid samples produce.
    - `finish(carry)` -> the reduction's value.
    """

    @property
    def window_start(self) -> float:
        return -float("inf")

    @property
    def components(self) -> tuple[int, ...] | None:
        return None

    @abc.abstractmethod
    def init(
        self, t0: Float[Array, ""], y0: Float[Array, " state"], discrete: bool
    ) -> PyTree:
        """The carry before the first step."""

    @abc.abstractmethod
    def update(self, carry: PyTree, segment: Segment, samples: StepSamples) -> PyTree:
        """The carry after one more accepted step."""

    @abc.abstractmethod
    def finish(self, carry: PyTree) -> PyTree[Array]:
        """The value of the reduction."""


class ReducingSolver(dfx.AbstractWrappedSolver):
    """A diffrax solver that also carries running reductions in its state.

    It steps exactly as the wrapped `solver` (same steps, same error estimates, same
    dense output: `isinstance` checks see the wrapped solver) and, on every step,
    folds the step's `Segment` into each reduction's carry. diffrax keeps a step's
    solver state only when the step is accepted, so the carries see accepted steps
    only. The final carries are read from the final solver state
    (`SaveAt(solver_state=True)`) by `finish`.
    """

    solver: dfx.AbstractSolver
    reductions: tuple[AbstractReduction, ...]

    @property
    def term_structure(self):
        return self.solver.term_structure

    @property
    def interpolation_cls(self):  # pyright: ignore
        return self.solver.interpolation_cls

    @property
    def term_compatible_contr_kwargs(self):
        return self.solver.term_compatible_contr_kwargs

    @property
    def root_finder(self):
        # Implicit solvers: diffrax fills the root finder's tolerances in from the
        # step-size controller through this attribute.
        return self.solver.root_finder  # pyright: ignore

    @property
    def scan_kind(self):
        return getattr(self.solver, "scan_kind", None)

    def order(self, terms):
        return self.solver.order(terms)

    def strong_order(self, terms):
        return self.solver.strong_order(terms)

    def error_order(self, terms):
        return self.solver.error_order(terms)

    def func(self, terms, t0, y0, args):
        return self.solver.func(terms, t0, y0, args)

    def init(self, terms, t0, t1, y0, args):
        inner = self.solver.init(terms, t0, t1, y0, args)
        return inner, init_reductions(self.reductions, t0, y0, discrete=False)

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        inner, carries = solver_state
        y1, y_error, dense_info, inner, result = self.solver.step(
            terms, t0, t1, y0, args, inner, made_jump
        )
        interpolation = self.solver.interpolation_cls(t0=t0, t1=t1, **dense_info)
        segment = Segment(
            jnp.asarray(t0), jnp.asarray(t1), _flat(y0), _flat(y1), interpolation
        )
        carries = update_reductions(self.reductions, carries, segment)
        return y1, y_error, dense_info, (inner, carries), result

    def finish(self, solver_state: Any) -> tuple[PyTree[Array], ...]:
        """The reductions' values from a final solver state."""
        return finish_reductions(self.reductions, solver_state[1])


def init_reductions(
    reductions: tuple[AbstractReduction, ...],
    t0: Any,
    y0: PyTree[Array],
    *,
    discrete: bool,
) -> tuple[PyTree, ...]:
    """Every reduction's carry at the start (`y0` a state PyTree)."""
    flat = _flat(y0)
    t0 = jnp.asarray(t0, flat.dtype)
    return tuple(r.init(t0, flat, discrete) for r in reductions)


def update_reductions(
    reductions: tuple[AbstractReduction, ...],
    carries: tuple[PyTree, ...],
    segment: Segment,
    counts: Bool[Array, ""] | None = None,
) -> tuple[PyTree, ...]:
    """Fold one accepted step into every carry. The step is sampled once per
    distinct window start and set of components.

    `counts`: whether the step counts at all. When it is given and False, no sample
    is valid, so the reductions' `Record`s stay as they are; the caller restores the
    rest of the carries (`select_carries`). Without it, the caller keeps or drops
    the whole carries.
    """
    samples: dict[tuple, StepSamples] = {}
    for r in reductions:
        key = (r.window_start, r.components)
        if key in samples:
            continue
        s = sample_segment(segment.restrict(r.components), r.window_start)
        if counts is not None:
            s = StepSamples(s.ts, s.ys, s.ds, s.valid & counts, s.fresh & counts)
        samples[key] = s
    return tuple(
        r.update(c, segment, samples[(r.window_start, r.components)])
        for r, c in zip(reductions, carries, strict=True)
    )


def finish_reductions(
    reductions: tuple[AbstractReduction, ...], carries: tuple[PyTree, ...]
) -> tuple[PyTree[Array], ...]:
    """Every reduction's value from its final carry."""
    return tuple(r.finish(c) for r, c in zip(reductions, carries, strict=True))
