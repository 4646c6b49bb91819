"""The ensemble executor: many small forward solves in one loop over steps.

`jax.vmap` of a solve (the generic path: `vmap(integrate)`) is a vmapped while loop,
and a vmapped while loop runs every lane until the slowest member of the batch has
finished: in an orbit diagram, where step counts differ several-fold between
periodic and chaotic members, most lanes idle. The executor turns the solve inside
out. One trajectory's *step* — diffrax's solver step (tableau, error estimate,
dense output), its step-size controller and error norm, diffrax's bookkeeping of a
step (`_clip_to_end`, NaN errors rejected, first failure kept), the running
reductions, saving at given times and event detection — is written once and
vmapped over a fixed number of *lanes* inside one while loop over steps that is not
itself vmapped. Each lane carries its own time, step size, controller state,
status and step counts (struct-of-arrays state; the explicit solvers' stages are
unrolled into straight-line code, `_unrolled.py`). When a lane's solve ends it
writes its outputs (saved states, reductions, status, step counts) into the results
at its run's index and takes the next pending run of the batch (*lane refill*), so
lanes never idle while work remains: the loop's lane-steps (lanes × iterations)
are the sum of the members' own steps plus a tail, the last solves of the batch.

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
import equinox.internal as eqxi
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import optimistix as optx
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, ArrayLike, Bool, Int, PyTree

from ._integrate import diffrax_event, step_controller
from ._problem import Problem, SolveOptions, resolve_solver
from ._reduce import ReducingSolver
from ._solution import Solution
from ._status import status_from_result
from ._unrolled import AbstractUnrolledERK

#: `setup(run_inputs) -> (problem, y0)`: one run's problem and start from its
#: inputs (one slice of the batch's inputs along their leading axis).
#: A refill writes and reloads at most 1/_REFILL_FRACTION of the lanes at once.
_REFILL_FRACTION = 8
#: The largest state (numbers) the executor takes; a lane holds it component by
#: component.
MAX_STATE = 64

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


class _Lane(eqx.Module):
    """One lane's solve in progress (every field batched over the lanes)."""

    run: Int[Array, ""]  # the run it holds; n_runs: none
    active: Bool[Array, ""]  # holds a run whose outputs are not written yet
    done: Bool[Array, ""]  # its solve has ended
    y: PyTree[Array]
    tprev: Array
    tnext: Array
    solver_state: PyTree
    controller_state: PyTree
    result: dfx.RESULTS
    num_steps: Int[Array, ""]
    num_accepted_steps: Int[Array, ""]
    num_rejected_steps: Int[Array, ""]
    save_index: Int[Array, ""]
    save_ys: PyTree[Array] | None
    event_value: Array | None
    event_mask: Bool[Array, ""] | None
    event_tprev: Array | None
    event_tnext: Array | None
    event_dense: PyTree | None


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
    - `diagnostics`: also return the number of loop iterations (lanes × iterations
      is the work done, against the sum of the runs' own steps).

    **Returns:** a `Solution` whose every field has a leading run axis, equal to
    `jax.vmap` of `integrate` over the runs (to round-off); with `diagnostics`,
    `(solution, iterations)`.
    """
    leaves = jtu.tree_leaves(inputs)
    if not leaves:
        raise ValueError("integrate_ensemble needs inputs with a leading run axis")
    n_runs = int(jnp.shape(leaves[0])[0])
    lanes = max(1, min(int(lanes), n_runs))
    solver, _ = resolve_solver(options.solver, "ode", True)
    saveat = options.saveat
    reductions = tuple(saveat.reductions)
    if reductions:
        solver = ReducingSolver(solver, reductions)
    event = diffrax_event(options.event)
    cond_fn = None if event is None else event.cond_fn
    direction = None if event is None else event.direction

    # Times in one dtype, the states promoted to it, as diffeqsolve does.
    y_template = setup(jtu.tree_map(lambda a: a[0], inputs))[1]
    timelikes = [t0, t1] + ([] if options.dt0 is None else [options.dt0])
    if saveat.ts is not None:
        timelikes.append(saveat.ts)
    with jax.numpy_dtype_promotion("standard"):
        tdtype = jnp.result_type(*timelikes)
    if not jnp.issubdtype(tdtype, jnp.floating):
        tdtype = jnp.result_type(float)
    t0 = jnp.asarray(t0, tdtype)
    t1 = jnp.asarray(t1, tdtype)
    dt0 = None if options.dt0 is None else jnp.asarray(options.dt0, tdtype)
    save_ts = None if saveat.ts is None else jnp.asarray(saveat.ts, tdtype)
    n_save = 1 if save_ts is None else int(save_ts.shape[0])

    def promote(y):
        def one(yi):
            with jax.numpy_dtype_promotion("standard"):
                return jnp.asarray(yi, jnp.result_type(yi, tdtype))

        return jtu.tree_map(one, y)

    controller = step_controller(options, t0, t1).wrap(1)
    t1_clip_floor = t1
    for _ in range(100):
        t1_clip_floor = eqxi.prevbefore(t1_clip_floor)

    # A lane's state is a tuple of scalars (struct of arrays once vmapped: every
    # component of all lanes is one vector, and the stages, the error norm and the
    # controller are elementwise across the lanes); large states stay one array.
    _, unravel = ravel_pytree(promote(y_template))
    n_state = ravel_pytree(y_template)[0].size
    soa = n_state <= MAX_STATE

    def pack(y):
        flat = ravel_pytree(y)[0]
        return tuple(flat[i] for i in range(n_state)) if soa else flat

    def unpack(state):
        return unravel(jnp.stack(state) if soa else state)

    if cond_fn is not None:
        user_cond = cond_fn
        cond_fn = lambda t, y, args: user_cond(t, unpack(y), args)  # noqa: E731

    def terms_of(run_inputs):
        problem, y0 = setup(run_inputs)
        vector_field = problem.vector_field

        def field(t, y, args):
            return pack(vector_field(t, unpack(y), args))

        return _Wrapped(dfx.ODETerm(field)), pack(promote(y0))

    def init_lane(run_inputs, run):
        terms, y0 = terms_of(run_inputs)
        error_order = solver.error_order(terms)
        tnext, cstate = controller.init(
            terms, t0, t1, y0, dt0, args, solver.func, error_order
        )
        tnext = jnp.minimum(tnext, t1)
        cstate = jtu.tree_map(jnp.asarray, cstate)
        sstate = solver.init(terms, t0, tnext, y0, args)
        save_ys = None
        if save_ts is not None:
            save_ys = jtu.tree_map(
                lambda a: jnp.full((n_save,) + a.shape, jnp.inf, a.dtype), y0
            )
        ev = dict(
            event_value=None,
            event_mask=None,
            event_tprev=None,
            event_tnext=None,
            event_dense=None,
        )
        result = dfx.RESULTS.successful
        if cond_fn is not None:
            value = cond_fn(t0, y0, args)
            boolean = jnp.issubdtype(jnp.result_type(value), jnp.bool_)
            mask = jnp.asarray(value) if boolean else jnp.asarray(False)
            result = dfx.RESULTS.where(mask, dfx.RESULTS.event_occurred, result)
            _, _, dense_struct, _, _ = eqx.filter_eval_shape(
                solver.step, terms, t0, tnext, y0, args, sstate, False
            )
            ev = dict(
                event_value=value,
                event_mask=mask,
                event_tprev=t0,
                event_tnext=t0,
                event_dense=jtu.tree_map(
                    lambda s: jnp.zeros(s.shape, s.dtype), dense_struct
                ),
            )
        zero = jnp.asarray(0)
        lane = _Lane(
            run=jnp.asarray(run),
            active=jnp.asarray(True),
            done=jnp.asarray(False),
            y=y0,
            tprev=t0,
            tnext=tnext,
            solver_state=sstate,
            controller_state=cstate,
            result=result,
            num_steps=zero,
            num_accepted_steps=zero,
            num_rejected_steps=zero,
            save_index=zero,
            save_ys=save_ys,
            **ev,
        )
        return eqx.tree_at(lambda s: s.done, lane, _ended(lane))

    def _ended(s):
        # diffeqsolve's loop condition, negated, and its step budget.
        running = (s.tprev < t1) & dfx.is_successful(s.result)
        return jnp.invert(running) | (s.num_steps >= options.max_steps)

    def stage_lane(run_inputs, s):
        terms, _ = terms_of(run_inputs)
        # made_jump=True: the first stage is evaluated afresh from the state (the
        # same numbers as the last stage that FSAL would carry over), so no stage
        # is carried between steps: XLA would compute the whole step once more for
        # each component of a carried stage.
        y, y_error, dense_info, sstate, solver_result = solver.step(
            terms, s.tprev, s.tnext, s.y, args, s.solver_state, True
        )
        y_error = jtu.tree_map(lambda x: jnp.where(jnp.isnan(x), jnp.inf, x), y_error)
        return y, y_error, dense_info, sstate, solver_result

    def control_lane(run_inputs, s, y, y_error):
        terms, _ = terms_of(run_inputs)
        error_order = solver.error_order(terms)
        keep_step, tprev, tnext, made_jump, cstate, result = (
            controller.adapt_step_size(
                s.tprev, s.tnext, s.y, y, args, y_error, error_order,
                s.controller_state,
            )
        )  # fmt: skip
        if made_jump is not False:
            raise NotImplementedError("the executor's controllers make no jumps")
        return jnp.asarray(keep_step), tprev, tnext, cstate, result

    def step_lane(run_inputs, s, staged, controlled):
        y, y_error, dense_info, sstate, solver_result = staged
        keep_step, tprev, tnext, cstate, controller_result = controlled
        tprev = jnp.minimum(tprev, t1)
        tnext = _clip_to_end(tprev, tnext, t1, t1_clip_floor, keep_step)
        keep = lambda a, b: jnp.where(keep_step, a, b)  # noqa: E731
        y = jtu.tree_map(keep, y, s.y)
        sstate = jtu.tree_map(keep, sstate, s.solver_state)
        solver_result = dfx.RESULTS.where(
            keep_step, solver_result, dfx.RESULTS.successful
        )
        result = dfx.RESULTS.where(dfx.is_okay(s.result), solver_result, s.result)
        result = dfx.RESULTS.where(dfx.is_okay(result), controller_result, result)
        new = dict(
            y=y,
            tprev=tprev,
            tnext=tnext,
            solver_state=sstate,
            controller_state=cstate,
            num_steps=s.num_steps + 1,
            num_accepted_steps=s.num_accepted_steps + jnp.where(keep_step, 1, 0),
            num_rejected_steps=s.num_rejected_steps + jnp.where(keep_step, 0, 1),
        )
        if save_ts is not None:
            interpolator = solver.interpolation_cls(
                t0=s.tprev, t1=s.tnext, **dense_info
            )
            new["save_index"], new["save_ys"] = _save_in_step(
                interpolator, save_ts, keep_step, s.tnext, s.save_index, s.save_ys
            )
        if cond_fn is not None:
            value = cond_fn(tprev, y, args)
            mask = _event_mask(s.event_value, value, direction)
            result = dfx.RESULTS.where(mask, dfx.RESULTS.event_occurred, result)
            new.update(
                event_value=value,
                event_mask=mask,
                event_tprev=s.tprev,
                event_tnext=s.tnext,
                event_dense=dense_info,
            )
        new["result"] = result
        stepped = eqx.tree_at(
            lambda x: tuple(getattr(x, k) for k in new), s, tuple(new.values())
        )
        stepped = eqx.tree_at(lambda x: x.done, stepped, _ended(stepped))
        # Lanes that have ended (or hold no run) stay as they are.
        moving = s.active & jnp.invert(s.done)
        return jtu.tree_map(lambda a, b: jnp.where(moving, a, b), stepped, s)

    def finish_lane(run_inputs, s):
        """One ended lane's `Solution` (as `integrate` returns it)."""
        result = s.result
        running = (s.tprev < t1) & dfx.is_successful(result)
        result = dfx.RESULTS.where(running, dfx.RESULTS.max_steps_reached, result)
        tfinal, yfinal = s.tprev, s.y
        if cond_fn is not None:
            tfinal, yfinal, result = _locate_event(
                solver, event, cond_fn, terms_of(run_inputs)[0], args, s, result
            )
        if save_ts is None:
            ts = tfinal[None]
            ys = jtu.tree_map(lambda a: a[None], unpack(yfinal))
        else:
            ts = jnp.where(jnp.arange(n_save) < s.save_index, save_ts, jnp.inf)
            ys = jax.vmap(unpack)(s.save_ys)
            if cond_fn is not None:  # states saved past the event time are unsaved
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
            "num_rejected_steps": s.num_rejected_steps,
        }
        values = solver.finish(s.solver_state) if reductions else ()
        return Solution(ts, ys, status, stats, None, values)

    v_init = jax.vmap(init_lane)
    v_stage = jax.vmap(stage_lane)
    v_control = jax.vmap(control_lane)
    v_step = jax.vmap(step_lane)
    v_finish = jax.vmap(finish_lane)
    pick = lambda runs: jtu.tree_map(lambda a: jnp.asarray(a)[runs], inputs)  # noqa: E731

    # The outputs' structure from one run; the results start as NaN.
    out_struct = eqx.filter_eval_shape(
        lambda i: finish_lane(i, init_lane(i, 0)), jtu.tree_map(lambda a: a[0], inputs)
    )
    out = jtu.tree_map(lambda s: jnp.zeros((n_runs,) + s.shape, s.dtype), out_struct)
    # Every lane starts free ("ended", holding no run: its write goes nowhere) and
    # the loop's refills load the first runs, k per iteration.
    one = jtu.tree_map(lambda a: a[0], inputs)
    lane_struct = eqx.filter_eval_shape(init_lane, one, 0)
    free = jtu.tree_map(lambda s: jnp.zeros((lanes,) + s.shape, s.dtype), lane_struct)
    free = eqx.tree_at(
        lambda x: (x.run, x.active, x.done),
        free,
        (jnp.full(lanes, n_runs), jnp.ones(lanes, bool), jnp.ones(lanes, bool)),
    )
    state0 = (free, pick(jnp.zeros(lanes, int)), out, jnp.asarray(0), jnp.asarray(0))

    # At most this many lanes are written and refilled per loop iteration (the
    # others wait one iteration): a refill costs a k-wide initialisation, not an
    # L-wide one.
    k = max(1, min(lanes, -(-lanes // _REFILL_FRACTION)))

    def write_and_refill(carry):
        lane, lane_inputs, out, next_run, count = carry
        ended = lane.active & lane.done
        # Up to k ended lanes (index `lanes`: none).
        (slots,) = jnp.nonzero(ended, size=k, fill_value=lanes)
        valid = slots < lanes
        at = jnp.minimum(slots, lanes - 1)
        sub = jtu.tree_map(lambda a: a[at], lane)
        sol = v_finish(jtu.tree_map(lambda a: a[at], lane_inputs), sub)
        where = jnp.where(valid, sub.run, n_runs)
        out = jtu.tree_map(lambda o, v: o.at[where].set(v, mode="drop"), out, sol)
        # Each written lane takes the next pending run, in order; the others
        # become free.
        runs = next_run + jnp.cumsum(valid) - 1
        take = valid & (runs < n_runs)
        runs = jnp.where(take, runs, 0)
        fresh_inputs = pick(runs)
        fresh = v_init(fresh_inputs, runs)
        into = jnp.where(take, slots, lanes)
        put = lambda a, v: a.at[into].set(v, mode="drop")  # noqa: E731
        lane = jtu.tree_map(put, lane, fresh)
        lane_inputs = jtu.tree_map(put, lane_inputs, fresh_inputs)
        freed = jnp.where(valid & jnp.invert(take), slots, lanes)
        active = lane.active.at[freed].set(False, mode="drop")
        lane = eqx.tree_at(lambda x: x.active, lane, active)
        return lane, lane_inputs, out, next_run + jnp.sum(take), count

    def body(carry):
        lane, lane_inputs, out, next_run, count = carry
        # The stages and the step control each computed once, in a computation of
        # their own: XLA would otherwise fuse them into each of their consumers (the
        # new state, the error norm, the next step size, ...) and compute them
        # several times over.
        always = next_run >= 0
        staged = _once(always, v_stage, lane_inputs, lane)
        controlled = _once(always, v_control, lane_inputs, lane, *staged[:2])
        lane = v_step(lane_inputs, lane, staged, controlled)
        carry = (lane, lane_inputs, out, next_run, count + 1)
        return jax.lax.cond(
            jnp.any(lane.active & lane.done), write_and_refill, lambda c: c, carry
        )

    def cond(carry):
        return jnp.any(carry[0].active)

    _, _, out, _, count = jax.lax.while_loop(cond, body, state0)
    return (out, count) if diagnostics else out


class _Wrapped(dfx.AbstractTerm):
    """A term wrapped as diffeqsolve wraps every term it is given (for the
    direction of time, here forwards): the same arithmetic, and the same first step
    (diffrax's PID controller selects one only for a bare `ODETerm` and starts
    every wrapped term with a step of 0.01)."""

    term: dfx.AbstractTerm

    def vf(self, t, y, args):
        return self.term.vf(t, y, args)

    def contr(self, t0, t1, **kwargs):
        return self.term.contr(t0, t1, **kwargs)

    def prod(self, vf, control):
        return self.term.prod(vf, control)


def _once(flag, fn, *operands):
    """`fn(*operands)` in a branch of its own (`flag` is always True at run time):
    its outputs are materialised once instead of being recomputed inside every
    fusion that reads them."""
    shapes = jax.eval_shape(fn, *operands)
    zeros = lambda *_: jtu.tree_map(lambda x: jnp.zeros(x.shape, x.dtype), shapes)  # noqa: E731
    return jax.lax.cond(flag, fn, zeros, *operands)


def _clip_to_end(tprev, tnext, t1, t1_clip_floor, keep_step):
    # As diffeqsolve: a next step ending within ~100 ULP of t1 ends at t1.
    clip = tnext > t1_clip_floor
    tclip = jnp.where(keep_step, t1, tprev + 0.5 * (t1 - tprev))
    return jnp.where(clip, tclip, tnext)


def _save_in_step(interpolator, ts, keep_step, tnext, index, ys):
    """The states at the save times this accepted step passed, from its dense
    output (as diffeqsolve's `SaveAt(ts=...)`)."""

    def cond(c):
        i, _ = c
        last = ts.shape[0] - 1
        return keep_step & (i <= last) & (ts[jnp.minimum(i, last)] <= tnext)

    def body(c):
        i, ys = c
        y = interpolator.evaluate(ts[i])
        return i + 1, jtu.tree_map(lambda b, v: b.at[i].set(v), ys, y)

    return jax.lax.while_loop(cond, body, (index, ys))


def _event_mask(old, new, direction):
    if jnp.issubdtype(jnp.result_type(new), jnp.bool_):
        return jnp.asarray(new)
    if direction is None:
        return jnp.sign(old) != jnp.sign(new)
    if direction:
        return (jnp.sign(old) <= 0) & (jnp.sign(new) > 0)
    return (jnp.sign(old) > 0) & (jnp.sign(new) <= 0)


def _locate_event(solver, event, cond_fn, terms, args, s, result):
    """Where in its last step a lane's event happened (diffeqsolve's root find of
    the condition on the step's dense output)."""
    happened = s.event_mask
    interpolator = solver.interpolation_cls(
        t0=s.event_tprev, t1=s.event_tnext, **s.event_dense
    )

    def distance(t, _):
        value = cond_fn(t, interpolator.evaluate(t), args)
        if jnp.issubdtype(jnp.result_type(value), jnp.bool_):
            value = s.event_tnext - t
        return jnp.where(happened, value, s.event_tnext - t)

    if event.root_finder is None:
        return s.tprev, s.y, result
    root = optx.root_find(
        distance,
        event.root_finder,
        y0=s.event_tnext,
        options={"lower": s.event_tprev, "upper": s.event_tnext},
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
