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

Extrema and crossings are located *within* steps: a reduction samples the interpolant
at `SAMPLES_PER_STEP + 1` points of the step, brackets sign changes (of the
derivative, for extrema; of a level, for crossings) and refines each bracketed root
with `bracketed_root`. Results are then exact to the accuracy of the interpolant,
i.e. of the solve, independent of any output grid.

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
import jax.tree_util as jtu
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Bool, Float, PyTree

#: Interpolant samples per step used to bracket extrema and crossings. The dense
#: output of the Runge–Kutta solvers is a polynomial of low degree in each step (its
#: derivative has at most three roots for Tsit5 / Dopri5), so eight sub-intervals
#: separate every root but those of a grossly under-resolved step.
SAMPLES_PER_STEP = 8
#: Secant (Illinois) iterations of `bracketed_root`: superlinear convergence from a
#: bracket of 1/8 of a step reaches round-off in about four.
ROOT_ITERATIONS = 5


def _flat(y: PyTree[Array]) -> Float[Array, " state"]:
    return ravel_pytree(y)[0]


class Segment(eqx.Module):
    """One accepted step `[t0, t1]` of a solution, as a reduction sees it.

    - `t0`, `t1`: the step's ends.
    - `y0`, `y1`: the (flattened) states there.
    - `interpolation`: the solver's local dense interpolant on `[t0, t1]`; None for
      maps, whose trajectory is the iterates only (joined linearly here).
    """

    t0: Float[Array, ""]
    t1: Float[Array, ""]
    y0: Float[Array, " state"]
    y1: Float[Array, " state"]
    interpolation: dfx.AbstractLocalInterpolation | None

    @property
    def discrete(self) -> bool:
        """True for a map's segment (no interpolant between the iterates)."""
        return self.interpolation is None

    def evaluate(self, t: Float[Array, ""]) -> Float[Array, " state"]:
        """The (flattened) state at time `t` in `[t0, t1]`."""
        if self.interpolation is None:
            frac = (t - self.t0) / (self.t1 - self.t0)
            return self.y0 + frac * (self.y1 - self.y0)
        return _flat(self.interpolation.evaluate(t))

    def evaluate_with_derivative(
        self, t: Float[Array, ""]
    ) -> tuple[Float[Array, " state"], Float[Array, " state"]]:
        """The state and its time derivative at `t` (for a map: the difference of
        the two iterates, the discrete derivative)."""
        if self.interpolation is None:
            return self.evaluate(t), self.y1 - self.y0
        return jax.jvp(self.evaluate, (t,), (jnp.ones_like(t),))


class AbstractReduction(eqx.Module):
    """A quantity accumulated over a solution, one accepted step at a time.

    The contract (all three are pure, traced under `jit` / `vmap`):

    - `init(t0, y0, discrete)` -> the carry at the start of the solve (`y0`
      flattened; `discrete` is True for a map, whose trajectory is its iterates).
    - `update(carry, segment)` -> the carry after one more accepted step (a
      `Segment`); it must keep the carry's structure, shapes and dtypes.
    - `finish(carry)` -> the reduction's value.
    """

    @abc.abstractmethod
    def init(
        self, t0: Float[Array, ""], y0: Float[Array, " state"], discrete: bool
    ) -> PyTree:
        """The carry before the first step."""

    @abc.abstractmethod
    def update(self, carry: PyTree, segment: Segment) -> PyTree:
        """The carry after one more accepted step."""

    @abc.abstractmethod
    def finish(self, carry: PyTree) -> PyTree[Array]:
        """The value of the reduction."""


def bracketed_root(
    fn: Callable[[Float[Array, ""]], Float[Array, ""]],
    lo: Float[Array, ""],
    hi: Float[Array, ""],
    f_lo: Float[Array, ""],
    f_hi: Float[Array, ""],
    iterations: int = ROOT_ITERATIONS,
) -> Float[Array, ""]:
    """A root of the scalar function `fn` in `[lo, hi]`, where `f_lo = fn(lo)` and
    `f_hi = fn(hi)` have opposite signs (or one is zero).

    The Illinois variant of regula falsi (Dowell & Jarratt 1971): a secant step that
    always keeps the root bracketed, with the retained end's value halved whenever
    the new iterate falls on the same side as the previous one, which restores
    superlinear convergence where plain regula falsi stalls. A fixed number of
    iterations keeps it `vmap`-friendly; when the inputs do not bracket a root the
    result is some point of `[lo, hi]`.
    """
    dtype = jnp.result_type(lo, hi, f_lo, f_hi)

    def secant(a, b, fa, fb):
        denom = fb - fa
        safe = jnp.where(denom == 0, 1.0, denom)
        t = b - fb * (b - a) / safe
        t = jnp.where(denom == 0, 0.5 * (a + b), t)
        return jnp.clip(t, jnp.minimum(a, b), jnp.maximum(a, b))

    def body(_, state):
        a, b, fa, fb = state  # b: the latest iterate
        t = secant(a, b, fa, fb)
        ft = fn(t)
        same = jnp.sign(ft) == jnp.sign(fb)
        # The root is in [a, t] (a retained: halve its value) or in [b, t].
        return jnp.where(same, a, b), t, jnp.where(same, 0.5 * fa, fb), ft

    state = tuple(jnp.asarray(v, dtype) for v in (lo, hi, f_lo, f_hi))
    _, b, _, _ = jax.lax.fori_loop(0, iterations, body, state, unroll=True)
    return b


class StepSamples(eqx.Module):
    """A segment sampled at `n + 1` evenly spaced times of `[lo, t1]`.

    - `ts`: `(n + 1,)` times; `ys`, `ds`: `(n + 1, k)` values and time derivatives
      of the selected components.
    - `valid`: `(n + 1,)` which samples lie in the reduction's window.
    - `fresh`: `(n + 1,)` which samples were not seen by an earlier step (every
      sample but the one at the step's start, unless the window starts inside the
      step).
    """

    ts: Float[Array, " n"]
    ys: Float[Array, "n k"]
    ds: Float[Array, "n k"]
    valid: Bool[Array, " n"]
    fresh: Bool[Array, " n"]


def sample_segment(
    segment: Segment,
    t_from: Float[Array, ""] | float,
    select: Callable[[Array], Array],
) -> StepSamples:
    """Sample `segment` within the window `[t_from, ∞)`, keeping the components
    `select(y)` (a 1-D array).

    A flow's step is sampled at `SAMPLES_PER_STEP + 1` points of `[max(t0, t_from),
    t1]`; a map's segment at its two iterates (valid where they lie in the window;
    the derivative, a difference of iterates, only where both do).
    """

    def at(t):
        y, d = segment.evaluate_with_derivative(t)
        return select(y), select(d)

    if segment.discrete:
        ts = jnp.stack([segment.t0, segment.t1])
        y0, d = at(segment.t0)
        ys = jnp.stack([y0, select(segment.y1)])
        valid = ts >= t_from
        both = valid[0] & valid[1]
        ds = jnp.where(both, jnp.stack([d, d]), jnp.nan)
        fresh = jnp.array([False, True]) & valid
        return StepSamples(ts, ys, ds, valid, fresh)
    lo = jnp.maximum(segment.t0, t_from)
    ts = lo + (segment.t1 - lo) * jnp.linspace(0.0, 1.0, SAMPLES_PER_STEP + 1)
    ys, ds = jax.vmap(at)(ts)
    # The ends are the solver's own states, not interpolated values.
    ys = ys.at[-1].set(select(segment.y1))
    ys = jnp.where(segment.t0 >= t_from, ys.at[0].set(select(segment.y0)), ys)
    active = segment.t1 > t_from
    valid = jnp.full(ts.shape, active)
    # The step's first sample is the previous step's last, unless the window opens
    # inside this step.
    fresh = valid & ((jnp.arange(ts.size) > 0) | (segment.t0 < t_from))
    return StepSamples(ts, ys, ds, valid, fresh)


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
) -> tuple[PyTree, ...]:
    """Fold one accepted step into every carry."""
    return tuple(r.update(c, segment) for r, c in zip(reductions, carries, strict=True))


def finish_reductions(
    reductions: tuple[AbstractReduction, ...], carries: tuple[PyTree, ...]
) -> tuple[PyTree[Array], ...]:
    """Every reduction's value from its final carry."""
    return tuple(r.finish(c) for r, c in zip(reductions, carries, strict=True))


def where_tree(pred: Array, a: PyTree, b: PyTree) -> PyTree:
    """`jnp.where(pred, a, b)` leaf by leaf."""
    return jtu.tree_map(lambda x, y: jnp.where(pred, x, y), a, b)
