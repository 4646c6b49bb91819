"""One lane of the ensemble executor (`_ensemble.py`): a run's solve written for
one run — its start (`init`), one step (`step`) and its `Solution` (`finish`) —
with what they share (the solver, the guarded controller, the times, the state's
packing into components), for the executor to vmap over its lanes.

Every lane goes through diffrax's own solver step and controller with the same
arithmetic as `integrate`, and diffrax's bookkeeping of a step (`_step_rules.py`),
so a run takes the same steps as its generic solve and ends in the same state.
"""

from __future__ import annotations

from collections.abc import Callable

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import optimistix as optx
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Bool, Int, PyTree

from ._fusion import componentwise, computed_together, fits_together
from ._integrate import all_finite, diffrax_event, step_controller
from ._problem import Problem, resolve_solver
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
from ._unrolled import AbstractUnrolledERK, compensated

#: The largest state (numbers) the executor takes; a lane holds it component by
#: component.
MAX_STATE = 64

#: `setup(run_inputs) -> (problem, y0)`: one run's problem and start from its
#: inputs (one slice of the batch's inputs along their leading axis).
Setup = Callable[[PyTree[Array]], tuple[Problem, PyTree[Array]]]


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
    lost: PyTree[Array] | None  # the state's sums' lost bits (compensated steps)
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


class LaneProgram:
    """A batch's per-lane programs — `init`, `step`, `finish`, each written for one
    lane (one run) — and what they share: the solver, the guarded controller, the
    times, the state's packing into components."""

    def __init__(
        self,
        setup: Setup,
        one_input: PyTree,
        t0,
        t1,
        args,
        options,
        together: bool | None = None,
    ):
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
        # Single-precision steps of the unrolled solvers carry the bits their
        # sums lose (`_unrolled.compensated`): a lane keeps them with its state.
        # (Decided on the packed state, which `ravel_pytree` gives one dtype.)
        unrolled = isinstance(self.solver, AbstractUnrolledERK)
        self.compensated = unrolled and compensated(self.pack(promoted))
        cond_fn = None if self.event is None else self.event.cond_fn
        self.cond_fn = (
            None
            if cond_fn is None
            else (lambda t, y, args: cond_fn(t, self.unpack(y), args))
        )
        # A step's outputs (new state, error estimate and, where it is read, the
        # dense output: every stage) computed in one loop (`computed_together`;
        # `together`, default on a CPU, whose XLA backend has no multi-output
        # fusion of its own), where they are few enough numbers and the vector
        # field computes component by component; else, where the dense output is
        # read, each stage computed once (`computed_once`).
        if together is None:
            together = jax.default_backend() == "cpu"
        if together:
            terms, y0 = self.terms(one_input)
            together = componentwise(terms.vf, self.t0, y0, args)
            if together and self.dense:
                # (Decided before the step, which computes its stages once where
                # they are not computed together: a trace of the step for its
                # outputs' sizes, which `computed_together` checks by itself where
                # nothing else depends on them — a tenth of E1's first call.)
                outputs = eqx.filter_eval_shape(
                    lambda: self.outputs(
                        *self.solver_step(terms, self.t0, self.t1, y0, self.no_loss(y0))
                    )
                )
                together = fits_together(outputs)
        self.together = together

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
                lambda: self.solver_step(terms, t0, tnext, y0, self.no_loss(y0))[2]
            )
            event = _Event(value, mask, t0, t0, jtu.tree_map(_zeros_like, dense_struct))
        zero = jnp.asarray(0, jnp.int32)
        lane = _Lane(
            run=jnp.asarray(run, jnp.int32),
            held=jnp.asarray(True),
            running=jnp.asarray(True),
            y=y0,
            lost=self.no_loss(y0),
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

    def outputs(self, y1, y_error, dense_info, solver_state, _):
        """What a step computes that its consumers read: the new state, the error
        estimate where the step size adapts (constant steps never read it: left
        out, XLA does not compute it, where `computed_together` would), the dense
        output where it is read, and the bits the new state's sums lost where steps
        are compensated."""
        lost = solver_state[1] if self.compensated else None
        y_error = y_error if self.options.adaptive else None
        return y1, y_error, dense_info if self.dense else None, lost

    def no_loss(self, y):
        """A start's lost bits (`_Lane.lost`): none yet, or None where steps are
        not compensated."""
        return jtu.tree_map(_zeros_like, y) if self.compensated else None

    def solver_step(self, terms, t0, t1, y, lost):
        """The solver's step from `y` (and, compensated, its sums' `lost` bits),
        evaluating its first stage afresh: every step is taken as if after a jump
        (`made_jump=True`), so that no stage is carried from step to step — XLA
        would compute the whole step once more for each component of a carried
        stage; the first stage is the same number as the last one that FSAL would
        carry over."""
        struct = eqx.filter_eval_shape(self.solver.init, terms, t0, t1, y, self.args)
        if self.compensated:
            state = jtu.tree_map(_zeros_like, struct[0]), lost
        else:
            state = jtu.tree_map(_zeros_like, struct)
        return self.solver.step(terms, t0, t1, y, self.args, state, True)

    def step(self, run_inputs, s: _Lane) -> _Lane:
        """One lane's next step (nothing changes in a lane that is not running)."""
        solver, args, t1 = self.solver, self.args, self.t1
        terms, _ = self.terms(run_inputs, once=self.dense and not self.together)
        y1, y_error, dense_info, solver_state, solver_result = self.solver_step(
            terms, s.tprev, s.tnext, s.y, s.lost
        )
        outputs = self.outputs(y1, y_error, dense_info, solver_state, solver_result)
        if self.together:
            outputs = computed_together(outputs)
        y1, y_error, dense, lost = outputs
        dense_info = dense_info if dense is None else dense
        y_error = jtu.tree_map(lambda x: jnp.where(jnp.isnan(x), jnp.inf, x), y_error)
        # The guarded controller (`step_controller`) stops a solve whose accepted
        # state is not finite; here that is found on the state the loop holds, one
        # iteration later (the same step counts): testing the new state inside the
        # step would make XLA compute the step once more.
        diverged = s.running & jnp.invert(all_finite(s.y))
        moving = s.running & jnp.invert(diverged)
        keep, tprev, tnext, made_jump, cstate, controller_result = (
            self.controller.adapt(
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
        lost = jtu.tree_map(lambda a, b: jnp.where(accept, a, b), lost, s.lost)
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
            lost=lost,
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


def _zeros_like(s):
    return jnp.zeros(s.shape, s.dtype)


def _flat(y: PyTree[Array]) -> Array:
    return ravel_pytree(y)[0]
