"""The ensemble executor: many small forward solves in one loop over steps.

`jax.vmap` of a solve (the generic path: `vmap(integrate)`) is a vmapped while loop,
and a vmapped while loop runs every lane until the slowest member of the batch has
finished: in an orbit diagram, where step counts differ several-fold between
periodic and chaotic members, most lanes idle. The executor turns the solve inside
out. One trajectory's *step* — diffrax's solver step (tableau, error estimate, dense
output), its step-size controller and error norm, diffrax's bookkeeping of a step
(`_step_rules.py`: the last step clipped to t1, NaN errors rejected, first failure
kept), the running reductions, saving at given times and event detection — is
written once (`LaneProgram`) and vmapped over a fixed number of *lanes* inside a loop
over steps that is not itself vmapped. Each lane carries its own time, step size,
controller state, status and step counts; a state of up to `MAX_STATE` numbers is
held component by component (struct of arrays: every component of all lanes is one
vector, so the stages, the error norm and the controller are elementwise across the
lanes and XLA fuses a whole step into a few loops over the lanes).

*Lane refill.* When a lane's solve ends, the lane waits (masked) until `lanes/4`
lanes are idle; then the loop leaves its inner loop over steps, every ended lane
writes its outputs (saved states, reductions, status, step counts) into the results
at its run's index, and up to `lanes/4` idle lanes load the next pending runs.
Lanes thus never idle for long while work remains: the loop's lane-steps (lanes ×
iterations) are the sum of the members' own steps, a short wait per run and a
tail, the last solves of the batch. Writing and refilling between inner loops keeps
the inner loop a pure step (the refill runs once per `lanes/4` finished runs, not
on every step), and refilling `lanes/4` lanes at a time staggers the lanes' runs,
so that they do not end in waves. The batch weighs a refill's cost against the
lanes' waits: on a CPU a refill costs as much as 1.5–3 steps of the loop (it
touches every lane's fields and the results), and a wait grows with the batch.
Against `lanes/8`, E1 (1 024 Lorenz runs, ρ ∈ [0, 21], t ∈ [0, 1], two devices)
runs 10 % faster in float32 and 3 % in float64 (E1 at 16 384 runs: 12 % and 2 %),
with the same loop iterations; where neighbouring runs differ (the same runs
shuffled, or van der Pol with μ ∈ [0.1, 8] shuffled) the loop takes 1–4 % more
iterations and 1–8 % less time, and E2's lane-steps are unchanged. `lanes/2` (half
as many refills) makes E1's kernel at N = 1 024 7 % faster (the same iterations),
but Lorenz runs with ρ ∈ [0, 200] shuffled (4 096 runs, t ∈ [0, 20], two devices)
then take 14 % more iterations than with `lanes/4` (43.9 k against 38.3 k per
device; `lanes/8`: 35.7 k; in order all three take 33.7 k).

A batch with a lane for every run has nothing to refill: its program is the loop over
steps alone (the same steps; a smaller program, which XLA compiles faster).

*Two steps per iteration.* With few lanes (at most 512 bytes of each number: 64
float64 or 128 float32 lanes, what a CPU device gets for up to 512 runs of a chunk,
`dynsim._scan_plan.ensemble_lanes`) a step's arithmetic is short and the loop's cost
is mostly XLA's runtime, per program of the loop's body: on a CPU a step compiled
into some twenty small loops (a loop per field of the lane: XLA's CPU backend has no
multi-output fusion) and the loop's condition into four more. There the lanes take
two steps per iteration of the loop over steps, each step's whole lane computed in
one loop (`_fusion.computed_together`): the first step's lane goes to new buffers
and the second writes back into the loop's own, where a single step's would have to
be copied back field by field, so the body is 7 programs for two steps instead of
48. A lane that ends in the first step waits out the second (its counts do not
change): the same steps and states (bit for bit in the tests and in E1). E1's kernel
at N = 1 024 on a 2-core AMD EPYC (two devices, interleaved in one process) took
3–34 % less time: adaptive float32 1.43 → 1.22 ms, float64 2.81 → 2.72 ms; fixed
steps, float64 15.8 → 11.7 ms, float32 11.6 → 7.6 ms; its first call compiled
0.3–0.8 s longer (the step compiled twice; it is traced once, jitted inside the loop
so that the second step reuses the first's trace: E1's first call traces in
0.44–0.46 s instead of 0.62–0.86 s). With wide lanes the arithmetic dominates
and the doubled step does not pay: at N = 16 384 (1 024 lanes per device) 7 %
faster, as fast and 5 % slower (adaptive float64, float32, fixed float64), so they
take one step per iteration. Few lanes are refilled in one loop too (each lane's
fields and inputs, fresh or kept, `computed_together`): E1's kernel at N = 1 024
5 % faster in both precisions, where at N = 16 384 it was 2–20 % slower.

Because every lane goes through diffrax's own step and controller with the same
arithmetic as `integrate`, a member takes the same steps as its generic solve (to
round-off, where XLA fuses the arithmetic differently) and ends in the same state.

The executor solves forward-only ODEs with explicit Runge–Kutta solvers; for
anything else (`ensemble_support` says why) callers use the generic path.
"""

from __future__ import annotations

from typing import Any

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
from jaxtyping import Array, ArrayLike, Int, PyTree

from ._fusion import computed_together
from ._integrate import diffrax_event
from ._lanes import MAX_STATE, LaneProgram, Setup
from ._problem import Problem, SolveOptions, resolve_solver
from ._solution import Solution
from ._unrolled import explicit_runge_kutta

#: Lanes are refilled in batches of 1/_REFILL_FRACTION of the lanes.
_REFILL_FRACTION = 4
#: Lanes of at most this many bytes of each number take two steps per iteration of
#: the loop over steps (module doc), on a backend that computes lanes together.
_FEW_LANES_BYTES = 512


def _any(flags: Array) -> Array:
    """`jnp.any(flags)` of a vector of booleans, as a sum of integers: XLA's CPU
    backend compiles a reduction of booleans over a thousand lanes into a loop
    that LLVM takes 0.12 s to compile (E1's first call), a sum in 0.01 s."""
    return jnp.sum(flags, dtype=jnp.int32) > 0


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
    if not explicit_runge_kutta(solver):
        return f"{type(solver).__name__} is not an explicit Runge–Kutta method"
    event = diffrax_event(options.event)
    if event is not None and not callable(event.cond_fn):
        return "an event with several conditions"
    return None


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
    program = LaneProgram(setup, one, t0, t1, args, options)
    v_init = jax.vmap(program.init)
    v_step = jax.vmap(program.step)
    v_finish = jax.vmap(program.finish)
    pick = lambda runs: jtu.tree_map(lambda a: jnp.asarray(a)[runs], inputs)  # noqa: E731
    zero = jnp.asarray(0, jnp.int32)
    # The loop's steps are counted for the diagnostics alone (elsewhere the count
    # stays 0, and XLA drops the addition: one operation less on every step).
    tick = jnp.asarray(1 if diagnostics else 0, jnp.int32)

    if lanes == n_runs:
        # Every run on a lane of its own from the start: nothing to refill (module
        # doc; a first scan of 16 Lorenz runs on one CPU device compiles in 0.84 s
        # instead of 1.09 s: `benchmarks/first_scan.py`).
        runs = jnp.arange(n_runs, dtype=jnp.int32)
        run_inputs = pick(runs)

        def step_all(carry):
            lane, count = carry
            return v_step(run_inputs, lane), count + tick

        lane, count = jax.lax.while_loop(
            lambda carry: _any(carry[0].running),
            step_all,
            (v_init(run_inputs, runs), zero),
        )
        out = v_finish(run_inputs, lane)
        return (out, count) if diagnostics else out

    # The results start as zeros; every lane starts free (holding no run) and the
    # first refills load the first runs.
    def started_and_finished():
        lane = program.init(one, 0)
        return lane, program.finish(one, lane)

    lane_struct, out_struct = eqx.filter_eval_shape(started_and_finished)
    out = jtu.tree_map(lambda s: jnp.zeros((n_runs,) + s.shape, s.dtype), out_struct)
    free = jtu.tree_map(lambda s: jnp.zeros((lanes,) + s.shape, s.dtype), lane_struct)
    free = eqx.tree_at(lambda x: x.run, free, jnp.full(lanes, n_runs, jnp.int32))
    state0 = (free, pick(jnp.zeros(lanes, jnp.int32)), out, zero, zero)
    # Lanes written and refilled at once.
    k = max(1, min(lanes, -(-lanes // _REFILL_FRACTION)))
    # Few lanes take two steps per iteration, each lane computed in one loop (module
    # doc); `program.together`: where the backend and vector field gain from it.
    few = lanes * jnp.dtype(program.tdtype).itemsize <= _FEW_LANES_BYTES
    few = few and program.together
    if few:
        # (Traced once for both steps: the second call reuses the first's trace.)
        v_whole = jax.jit(jax.vmap(lambda i, s: computed_together(program.step(i, s))))
        steps_per_iteration = 2

        def advance(lane_inputs, lane):
            return v_whole(lane_inputs, v_whole(lane_inputs, lane))

    else:
        advance, steps_per_iteration = v_step, 1

    def stepping(carry):
        lane, _, _, next_run, _ = carry
        idle = jnp.sum(jnp.invert(lane.running), dtype=jnp.int32)
        refill_due = (next_run < n_runs) & (idle >= k)
        return (idle < lanes) & jnp.invert(refill_due)

    def step(carry):
        lane, lane_inputs, out, next_run, count = carry
        lane = advance(lane_inputs, lane)
        return lane, lane_inputs, out, next_run, count + steps_per_iteration * tick

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

        # (With few lanes each lane's fields and inputs, fresh or kept, are
        # computed in one loop: module doc.)
        def kept(t, new, old):
            kept = jtu.tree_map(lambda f, o: jnp.where(t, f, o), new, old)
            return computed_together(kept) if few else kept

        lane, lane_inputs = jax.vmap(kept)(
            take, (fresh, fresh_inputs), (lane, lane_inputs)
        )
        next_run = next_run + jnp.sum(take, dtype=jnp.int32)
        return lane, lane_inputs, out, next_run, count

    def pending(carry):
        lane, _, _, next_run, _ = carry
        return _any(lane.held) | (next_run < n_runs)

    def batch(carry):
        return write_and_refill(jax.lax.while_loop(stepping, step, carry))

    _, _, out, _, count = jax.lax.while_loop(pending, batch, state0)
    return (out, count) if diagnostics else out
