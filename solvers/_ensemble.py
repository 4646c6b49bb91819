"""The ensemble executor: many small forward solves in one loop over steps.

`jax.vmap` of a solve (the generic path: `vmap(integrate)`) is a vmapped while loop,
and a vmapped while loop runs every lane until the slowest member of the batch has
finished: in an orbit diagram, where step counts differ several-fold between
periodic and chaotic members, most lanes idle. The executor turns the solve inside
out. One trajectory's *step* — diffrax's solver step (tableau, error estimate, dense
output), its step-size controller and error norm, diffrax's bookkeeping of a step
(`_step_rules.py`: the last step clipped to t1, NaN errors rejected, first failure
kept), the running reductions, saving at given times and event detection — is
written once (`_Program`) and vmapped over a fixed number of *lanes* inside a loop
over steps that is not itself vmapped. Each lane carries its own time, step size,
controller state, status and step counts; a state of up to `MAX_STATE` numbers is
held component by component (struct of arrays: every component of all lanes is one
vector, so the stages, the error norm and the controller are elementwise across the
lanes and XLA fuses a whole step into a few loops over the lanes).

*Lane refill.* When a lane's solve ends, the lane waits (masked) until `lanes/8`
lanes are idle; then the loop leaves its inner loop over steps, every ended lane
writes its outputs (saved states, reductions, status, step counts) into the results
at its run's index, and up to `lanes/8` idle lanes load the next pending runs.
Lanes thus never idle for long while work remains: the loop's lane-steps (lanes ×
iterations) are the sum of the members' own steps, a short wait per run and a
tail, the last solves of the batch. Writing and refilling between inner loops keeps
the inner loop a pure step (the refill runs once per `lanes/8` finished runs, not
on every step), and refilling `lanes/8` lanes at a time staggers the lanes' runs,
so that they do not end in waves.

Because every lane goes through diffrax's own step and controller with the same
arithmetic as `integrate`, a member takes the same steps as its generic solve (to
round-off, where XLA fuses the arithmetic differently) and ends in the same state.

The executor solves forward-only ODEs with explicit Runge–Kutta solvers; for
anything else (`ensemble_support` says why) callers use the generic path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import optimistix as optx
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, ArrayLike, Bool, Int, PyTree

from ._integrate import all_finite, diffrax_event, step_controller
from ._problem import Problem, SolveOptions, resolve_solver
from ._reduce import (
    Segment,
    finish_reductions,
    init_reductions,
    select_carries,
    update_reductions,
)
from ._solution import Solution
from ._status import status_from_result
from ._step_rules import Wrapped, clip_floor, clip_to_end, event_mask, save_in_step
from ._unrolled import AbstractUnrolledERK

#: Lanes are refilled in batches of 1/_REFILL_FRACTION of the lanes.
_REFILL_FRACTION = 8
#: The largest state (numbers) the executor takes; a lane holds it component by
#: component.
MAX_STATE = 64

#: `setup(run_inputs) -> (problem, y0)`: one run's problem and start from its
#: inputs (one slice of the batch's inputs along their leading axis).
Setup = Callable[[PyTree[Array]], tuple[Problem, PyTree[Array]]]


def ensemble_support(
    problem: Problem, options: SolveOptions, state_size: int | None = None
) -> str | None:
    """Whether the ensemble executor can solve a batch of `problem`s (of states of
    `state_size` numbers) with `options`: None if it can, else the reason it cannot
    (the generic path, `vmap(integrate)`, solves those)."""
    if problem.kind != "ode":
        return f"a {problem.kind.upper()} problem (the executor solves ODEs)"
    if state_size is not None and state_size > MAX_STATE:
        return (
            f"a state of {state_size} numbers (the executor is for small systems, "
            f"up to {MAX_STATE})"
        )
    if not options.forward_only:
        return f"an adjoint for gradients ({options.adjoint!r})"
    if options.saveat.dense:
        return "dense output (one buffer of max_steps steps per run)"
    if options.progress:
        return "a progress bar over each solve's time"
    solver, _ = resolve_solver(options.solver, "ode", True)
    if isinstance(solver, dfx.AbstractImplicitSolver):
        return (
            f"an implicit solver ({type(solver).__name__}, for stiff problems): "
            "its Newton iterations differ from lane to lane"
        )
    if not isinstance(solver, (dfx.AbstractERK, AbstractUnrolledERK)):
        return f"{type(solver).__name__} is not an explicit Runge–Kutta method"
    event = diffrax_event(options.event)
    if event is not None and not callable(event.cond_fn):
        return "an event with several conditions"
    return None


class _Event(eqx.Module):
    """A lane's event condition at its last step, and that step (to locate the
    event in it when the lane's solve ends)."""

    value: Array
    mask: Bool[Array, ""]
    tprev: Array
    tnext: Array
    dense: PyTree


class _Lane(eqx.Module):
    """One lane's solve in progress (every field batched over the lanes)."""

    run: Int[Array, ""]  # the run it holds (n_runs: none)
    held: Bool[Array, ""]  # holds a run whose outputs are not written yet
    running: Bool[Array, ""]  # ... and whose solve goes on
    y: PyTree[Array]
    tprev: Array
    tnext: Array
    controller_state: PyTree
    result: dfx.RESULTS
    num_steps: Int[Array, ""]
    num_accepted_steps: Int[Array, ""]
    carries: tuple[PyTree, ...]  # the running reductions'
    save_index: Int[Array, ""] | None
    save_ys: PyTree[Array] | None
    event: _Event | None


class _Program:
    """A batch's per-lane programs — `init`, `step`, `finish`, each written for one
    lane (one run) — and what they share: the solver, the guarded controller, the
    times, the state's packing into components."""

    def __init__(self, setup: Setup, one_input: PyTree, t0, t1, args, options):
        self.setup = setup
        self.args = args
        self.options = options
        self.solver, _ = resolve_solver(options.solver, "ode", True)
        saveat = options.saveat
        self.reductions = tuple(saveat.reductions)
        self.event = diffrax_event(options.event)
        self.direction = None if self.event is None else self.event.direction

        # Times in one dtype, the states promoted to it, as diffeqsolve does.
        y_template = setup(one_input)[1]
        timelikes = [t0, t1] + ([] if options.dt0 is None else [options.dt0])
        if saveat.ts is not None:
            timelikes.append(saveat.ts)
        with jax.numpy_dtype_promotion("standard"):
            tdtype = jnp.result_type(*timelikes)
        if not jnp.issubdtype(tdtype, jnp.floating):
            tdtype = jnp.result_type(float)
        self.tdtype = tdtype
        self.t0 = jnp.asarray(t0, tdtype)
        self.t1 = jnp.asarray(t1, tdtype)
        self.dt0 = None if options.dt0 is None else jnp.asarray(options.dt0, tdtype)
        self.save_ts = None if saveat.ts is None else jnp.asarray(saveat.ts, tdtype)
        self.n_save = 1 if self.save_ts is None else int(self.save_ts.shape[0])
        self.controller = step_controller(options, self.t0, self.t1).wrap(1)
        self.t1_clip_floor = clip_floor(self.t1)

        # A lane's state is a tuple of scalars (struct of arrays once vmapped); a
        # large state stays one array.
        promoted = self.promote(y_template)
        _, self.unravel = ravel_pytree(promoted)
        self.n_state = ravel_pytree(promoted)[0].size
        self.soa = self.n_state <= MAX_STATE
        cond_fn = None if self.event is None else self.event.cond_fn
        self.cond_fn = (
            None
            if cond_fn is None
            else (lambda t, y, args: cond_fn(t, self.unpack(y), args))
        )

    def promote(self, y):
        def one(yi):
            with jax.numpy_dtype_promotion("standard"):
                return jnp.asarray(yi, jnp.result_type(yi, self.tdtype))

        return jtu.tree_map(one, y)

    def pack(self, y):
        flat = ravel_pytree(y)[0]
        return tuple(flat[i] for i in range(self.n_state)) if self.soa else flat

    def unpack(self, state):
        return self.unravel(jnp.stack(state) if self.soa else state)

    @property
    def dense(self) -> bool:
        """Whether a step's dense output is read (by reductions, saving, events)."""
        return (
            bool(self.reductions) or self.save_ts is not None or self.event is not None
        )

    def terms(self, run_inputs, once: bool = False):
        """One run's term and start; with `once` every stage is computed once
        (`computed_once`), for steps whose dense output many consumers read."""
        problem, y0 = self.setup(run_inputs)
        vector_field = problem.vector_field
        pack, unpack = self.pack, self.unpack

        def field(t, y, args):
            return pack(vector_field(t, unpack(y), args))

        return Wrapped(dfx.ODETerm(field), once), pack(self.promote(y0))

    def ended(self, lane: _Lane) -> Array:
        """diffeqsolve's loop condition, negated, and its step budget."""
        going = (lane.tprev < self.t1) & dfx.is_successful(lane.result)
        return jnp.invert(going) | (lane.num_steps >= self.options.max_steps)

    def init(self, run_inputs, run) -> _Lane:
        """A lane holding `run`, before its first step."""
        solver, args, t0, t1 = self.solver, self.args, self.t0, self.t1
        terms, y0 = self.terms(run_inputs)
        tnext, cstate = self.controller.init(
            terms, t0, t1, y0, self.dt0, args, solver.func, solver.error_order(terms)
        )
        tnext = jnp.minimum(tnext, t1)
        save_index = save_ys = event = None
        if self.save_ts is not None:
            save_index = jnp.asarray(0, jnp.int32)
            save_ys = jtu.tree_map(
                lambda a: jnp.full((self.n_save,) + a.shape, jnp.inf, a.dtype), y0
            )
        result = dfx.RESULTS.successful
        if self.cond_fn is not None:
            value = self.cond_fn(t0, y0, args)
            boolean = jnp.issubdtype(jnp.result_type(value), jnp.bool_)
            mask = jnp.asarray(value) if boolean else jnp.asarray(False)
            result = dfx.RESULTS.where(mask, dfx.RESULTS.event_occurred, result)
            dense_struct = eqx.filter_eval_shape(
                lambda: solver.step(
                    terms, t0, tnext, y0, args, self.fresh_state(terms, y0), True
                )[2]
            )
            event = _Event(value, mask, t0, t0, jtu.tree_map(_zeros_like, dense_struct))
        zero = jnp.asarray(0, jnp.int32)
        lane = _Lane(
            run=jnp.asarray(run, jnp.int32),
            held=jnp.asarray(True),
            running=jnp.asarray(True),
            y=y0,
            tprev=t0,
            tnext=tnext,
            controller_state=jtu.tree_map(jnp.asarray, cstate),
            result=result,
            num_steps=zero,
            num_accepted_steps=zero,
            carries=init_reductions(self.reductions, t0, y0, discrete=False),
            save_index=save_index,
            save_ys=save_ys,
            event=event,
        )
        return eqx.tree_at(lambda s: s.running, lane, ~self.ended(lane))

    def fresh_state(self, terms, y):
        """The solver state of a step that evaluates its first stage afresh: every
        step is taken as if after a jump (`made_jump=True`), so that no stage is
        carried from step to step — XLA would compute the whole step once more for
        each component of a carried stage; the first stage is the same number as
        the last one that FSAL would carry over."""
        struct = eqx.filter_eval_shape(
            self.solver.init, terms, self.t0, self.t1, y, self.args
        )
        return jtu.tree_map(_zeros_like, struct)

    def step(self, run_inputs, s: _Lane) -> _Lane:
        """One lane's next step (nothing changes in a lane that is not running)."""
        solver, args, t1 = self.solver, self.args, self.t1
        # A plain step is fastest recomputed inside each of its consumers (XLA's
        # fusion); a step whose dense output is sampled has many more of them.
        terms, _ = self.terms(run_inputs, once=self.dense)
        y1, y_error, dense_info, _, solver_result = solver.step(
            terms, s.tprev, s.tnext, s.y, args, self.fresh_state(terms, s.y), True
        )
        y_error = jtu.tree_map(lambda x: jnp.where(jnp.isnan(x), jnp.inf, x), y_error)
        # The guarded controller (`step_controller`) stops a solve whose accepted
        # state is not finite; here that is found on the state the loop holds, one
        # iteration later (the same step counts): testing the new state inside the
        # step would make XLA compute the step once more.
        diverged = s.running & jnp.invert(all_finite(s.y))
        moving = s.running & jnp.invert(diverged)
        keep, tprev, tnext, made_jump, cstate, controller_result = (
            self.controller.controller.adapt_step_size(
                s.tprev, s.tnext, s.y, y1, args, y_error, solver.error_order(terms),
                s.controller_state,
            )
        )  # fmt: skip
        if made_jump is not False:
            raise NotImplementedError("the executor's controllers make no jumps")
        controller_result = dfx.RESULTS.where(
            self.controller.stuck(s.tprev, s.tnext, keep),
            dfx.RESULTS.nonfinite,
            controller_result,
        )
        accept = keep & moving
        tprev = jnp.minimum(tprev, t1)
        tnext = clip_to_end(tprev, tnext, t1, self.t1_clip_floor, keep)
        solver_result = dfx.RESULTS.where(keep, solver_result, dfx.RESULTS.successful)
        result = dfx.RESULTS.where(dfx.is_okay(s.result), solver_result, s.result)
        result = dfx.RESULTS.where(dfx.is_okay(result), controller_result, result)
        y = jtu.tree_map(lambda a, b: jnp.where(accept, a, b), y1, s.y)
        interpolation = solver.interpolation_cls(t0=s.tprev, t1=s.tnext, **dense_info)
        carries = s.carries
        if self.reductions:
            segment = Segment(s.tprev, s.tnext, _flat(s.y), _flat(y1), interpolation)
            new = update_reductions(self.reductions, carries, segment, accept)
            carries = select_carries(accept, new, carries)
        save_index, save_ys = s.save_index, s.save_ys
        if self.save_ts is not None:
            save_index, save_ys = save_in_step(
                interpolation, self.save_ts, accept, s.tnext, save_index, save_ys
            )
        event = s.event
        if self.cond_fn is not None:
            assert event is not None
            value = self.cond_fn(tprev, y, args)
            mask = event_mask(event.value, value, self.direction) & all_finite(y)
            result = dfx.RESULTS.where(mask, dfx.RESULTS.event_occurred, result)
            new_event = _Event(value, mask, s.tprev, s.tnext, dense_info)
            event = jtu.tree_map(lambda a, b: jnp.where(moving, a, b), new_event, event)
        where = lambda a, b: jtu.tree_map(  # noqa: E731
            lambda x, y: jnp.where(moving, x, y), a, b
        )
        lane = _Lane(
            run=s.run,
            held=s.held,
            running=moving,
            y=y,
            tprev=where(tprev, s.tprev),
            tnext=where(tnext, s.tnext),
            controller_state=where(cstate, s.controller_state),
            result=dfx.RESULTS.where(
                diverged,
                dfx.RESULTS.nonfinite,
                dfx.RESULTS.where(moving, result, s.result),
            ),
            num_steps=s.num_steps + moving.astype(jnp.int32),
            num_accepted_steps=s.num_accepted_steps + accept.astype(jnp.int32),
            carries=carries,
            save_index=save_index,
            save_ys=save_ys,
            event=event,
        )
        return eqx.tree_at(lambda x: x.running, lane, moving & ~self.ended(lane))

    def finish(self, run_inputs, s: _Lane) -> Solution:
        """An ended lane's `Solution` (as `integrate` returns it)."""
        result = s.result
        going = (s.tprev < self.t1) & dfx.is_successful(result)
        result = dfx.RESULTS.where(going, dfx.RESULTS.max_steps_reached, result)
        # A last step that made the state non-finite (see `step`).
        result = dfx.RESULTS.where(
            dfx.is_okay(result) & jnp.invert(all_finite(s.y)),
            dfx.RESULTS.nonfinite,
            result,
        )
        tfinal, yfinal = s.tprev, s.y
        if self.cond_fn is not None:
            tfinal, yfinal, result = self.locate_event(run_inputs, s, result)
        if self.save_ts is None:
            ts = tfinal[None]
            ys = jtu.tree_map(lambda a: a[None], self.unpack(yfinal))
        else:
            ts = jnp.where(
                jnp.arange(self.n_save) < s.save_index, self.save_ts, jnp.inf
            )
            ys = jax.vmap(self.unpack)(s.save_ys)
            if self.cond_fn is not None:  # states saved past the event are unsaved
                late = ts > tfinal
                ts = jnp.where(late, jnp.inf, ts)
                ys = jtu.tree_map(
                    lambda a: jnp.where(
                        late.reshape(late.shape + (1,) * (a.ndim - 1)), jnp.inf, a
                    ),
                    ys,
                )
        status = status_from_result(result, ys)
        stats = {
            "num_steps": s.num_steps,
            "num_accepted_steps": s.num_accepted_steps,
            "num_rejected_steps": s.num_steps - s.num_accepted_steps,
        }
        values = finish_reductions(self.reductions, s.carries)
        return Solution(ts, ys, status, stats, None, values)

    def locate_event(self, run_inputs, s: _Lane, result):
        """Where in its last step a lane's event happened (diffeqsolve's root find
        of the condition on the step's dense output)."""
        event, cond_fn, ev = self.event, self.cond_fn, s.event
        assert event is not None and cond_fn is not None and ev is not None
        if event.root_finder is None:
            return s.tprev, s.y, result
        happened = ev.mask
        interpolator = self.solver.interpolation_cls(
            t0=ev.tprev, t1=ev.tnext, **ev.dense
        )

        def distance(t, _):
            value = cond_fn(t, interpolator.evaluate(t), self.args)
            if jnp.issubdtype(jnp.result_type(value), jnp.bool_):
                value = ev.tnext - t
            return jnp.where(happened, value, ev.tnext - t)

        root = optx.root_find(
            distance,
            event.root_finder,
            y0=ev.tnext,
            options={"lower": ev.tprev, "upper": ev.tnext},
            throw=False,
        )
        tfinal = jnp.where(happened, root.value, s.tprev)
        yfinal = jax.lax.cond(
            s.num_steps == 0, lambda: s.y, lambda: interpolator.evaluate(tfinal)
        )
        yfinal = jtu.tree_map(lambda a, b: jnp.where(happened, a, b), yfinal, s.y)
        result = dfx.RESULTS.where(
            (root.result == optx.RESULTS.successful) | jnp.invert(happened),
            result,
            dfx.RESULTS.promote(root.result),
        )
        return tfinal, yfinal, result


def integrate_ensemble(
    setup: Setup,
    inputs: PyTree[ArrayLike],
    t0: ArrayLike,
    t1: ArrayLike,
    args: Any = None,
    *,
    options: SolveOptions,
    lanes: int,
    diagnostics: bool = False,
) -> Solution | tuple[Solution, Int[Array, ""]]:
    """Solve every run of a batch with the ensemble executor (module doc).

    **Arguments:**

    - `setup`: `setup(run_inputs) -> (problem, y0)`, one run's problem and initial
      state; `inputs`: the runs' inputs, a PyTree whose leaves share a leading run
      axis.
    - `t0`, `t1`, `args`, `options`: as `integrate`, the same for every run;
      `ensemble_support(problem, options)` must be None.
    - `lanes`: the number of solves stepped together (at most the number of runs;
      fewer lanes than runs is what lets lanes refill).
    - `diagnostics`: also return the number of steps of the loop (lanes × steps
      is the work done, against the sum of the runs' own steps).

    **Returns:** a `Solution` whose every field has a leading run axis, equal to
    `jax.vmap` of `integrate` over the runs (to round-off); with `diagnostics`,
    `(solution, steps)`.
    """
    leaves = jtu.tree_leaves(inputs)
    if not leaves:
        raise ValueError("integrate_ensemble needs inputs with a leading run axis")
    n_runs = int(jnp.shape(leaves[0])[0])
    lanes = max(1, min(int(lanes), n_runs))
    one = jtu.tree_map(lambda a: a[0], inputs)
    program = _Program(setup, one, t0, t1, args, options)
    v_init = jax.vmap(program.init)
    v_step = jax.vmap(program.step)
    v_finish = jax.vmap(program.finish)
    pick = lambda runs: jtu.tree_map(lambda a: jnp.asarray(a)[runs], inputs)  # noqa: E731

    # The results start as zeros; every lane starts free (holding no run) and the
    # first refills load the first runs.
    lane_struct = eqx.filter_eval_shape(program.init, one, 0)
    out_struct = eqx.filter_eval_shape(
        lambda: program.finish(one, program.init(one, 0))
    )
    out = jtu.tree_map(lambda s: jnp.zeros((n_runs,) + s.shape, s.dtype), out_struct)
    free = jtu.tree_map(lambda s: jnp.zeros((lanes,) + s.shape, s.dtype), lane_struct)
    free = eqx.tree_at(lambda x: x.run, free, jnp.full(lanes, n_runs, jnp.int32))
    zero = jnp.asarray(0, jnp.int32)
    state0 = (free, pick(jnp.zeros(lanes, jnp.int32)), out, zero, zero)
    # Lanes written and refilled at once.
    k = max(1, min(lanes, -(-lanes // _REFILL_FRACTION)))

    def stepping(carry):
        lane, _, _, next_run, _ = carry
        idle = jnp.sum(jnp.invert(lane.running), dtype=jnp.int32)
        refill_due = (next_run < n_runs) & (idle >= k)
        return jnp.any(lane.running) & jnp.invert(refill_due)

    def step(carry):
        lane, lane_inputs, out, next_run, count = carry
        return v_step(lane_inputs, lane), lane_inputs, out, next_run, count + 1

    def write_and_refill(carry):
        lane, lane_inputs, out, next_run, count = carry
        # Every ended lane writes its outputs (the others write nowhere) ...
        ended = lane.held & jnp.invert(lane.running)
        sol = v_finish(lane_inputs, lane)
        where = jnp.where(ended, lane.run, n_runs)
        out = jtu.tree_map(lambda o, v: o.at[where].set(v, mode="drop"), out, sol)
        # ... and up to k lanes not running take the next pending runs, in order
        # (k at a time: lanes refilled together end together, and staggered
        # refills keep the batch's tail short; the first fill loads every lane at
        # once, as k at a time with no step between would).
        free = jnp.invert(lane.running)
        rank = jnp.cumsum(free, dtype=jnp.int32) - 1
        position = next_run + rank
        take = free & (position < n_runs) & (rank < jnp.where(next_run == 0, lanes, k))
        runs = jnp.where(take, position, 0)
        fresh_inputs = pick(runs)
        fresh = v_init(fresh_inputs, runs)
        lane = eqx.tree_at(lambda x: x.held, lane, lane.running)
        keep = lambda f, o: jnp.where(  # noqa: E731
            take.reshape(take.shape + (1,) * (o.ndim - 1)), f, o
        )
        lane = jtu.tree_map(keep, fresh, lane)
        lane_inputs = jtu.tree_map(keep, fresh_inputs, lane_inputs)
        next_run = next_run + jnp.sum(take, dtype=jnp.int32)
        return lane, lane_inputs, out, next_run, count

    def pending(carry):
        lane, _, _, next_run, _ = carry
        return jnp.any(lane.held) | (next_run < n_runs)

    def batch(carry):
        return write_and_refill(jax.lax.while_loop(stepping, step, carry))

    _, _, out, _, count = jax.lax.while_loop(pending, batch, state0)
    return (out, count) if diagnostics else out


def _zeros_like(s):
    return jnp.zeros(s.shape, s.dtype)


def _flat(y: PyTree[Array]) -> Array:
    return ravel_pytree(y)[0]
