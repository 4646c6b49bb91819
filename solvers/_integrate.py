"""One solve of one trajectory, written once; ensembles are `jax.vmap` of this."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import optimistix as optx
from jaxtyping import Array, ArrayLike, PyTree

from ._fusion import cheap_powers
from ._imex import LINEAR_IMEX, LinearTerm
from ._maps import iterate_map
from ._problem import Problem, SolveOptions, _adjoint, resolve_solver
from ._reduce import ReducingSolver
from ._solution import Solution
from ._status import STATUS_MESSAGES, Status, status_from_result


def integrate(
    problem: Problem,
    y0: PyTree[ArrayLike],
    t0: ArrayLike,
    t1: ArrayLike,
    args: Any = None,
    *,
    options: SolveOptions,
    key: Array | None = None,
) -> Solution:
    """Solve `problem` from `y0` at `t0` to `t1` — the one solve every part of dynsim
    goes through (`simulate`, `scan`, the analyses, the neural models).

    **Arguments:**

    - `problem`: a `Problem` (dynsim's models give theirs: `model.problem()`).
    - `y0`, `t0`, `t1`, `args`: the initial value problem (`args` reaches every
      callable of the problem). For a map, `t0` and `t1` are iterate indices.
    - `options`: `SolveOptions` from `solve_options(problem.kind, ...)`.
    - `key`: the PRNG key of an SDE's Brownian motion, a `VirtualBrownianTree`: the
      same key gives the same path, whatever the solver and its steps.

    An IMEX problem with a linear stiff part (`linear_solve`) is solved by the
    `kencarp*` solvers with one structured solve per stage (`LinearKenCarp*`, no
    Newton iterations); other solvers integrate the sum of the two parts. The
    underdamped Langevin splittings (`align`, `should`, `quicsort`) see the split
    state (x, v) of a `"langevin"` problem; every other SDE solver its drift and
    diffusion.

    A solve whose accepted state becomes NaN or infinite, or whose steps keep being
    rejected at a step size of round-off order (a NaN vector field, a finite-time
    blow-up), stops at once with `Status.NONFINITE` instead of spending its step
    budget.

    **Returns:** a `Solution` (its `reductions`: the values of
    `options.saveat.reductions`).

    **Raises:** `ValueError` for an SDE without a key or a solver unfit for the
    problem; with `options.throw`, a runtime error for a failed solve.
    """
    saveat = options.saveat
    if problem.kind == "map":
        return iterate_map(
            problem.vector_field,
            y0,
            int(t1) - int(t0),
            args,
            save_every=saveat.every,
            n0=int(t0),
            reductions=saveat.reductions,
        )
    kind = problem.kind
    adjoint = _adjoint(options.adjoint)
    dsolver, _ = resolve_solver(options.solver, kind, options.forward_only)
    vector_field, stiff = problem.vector_field, problem.stiff
    if problem.linear_solve is not None and type(dsolver) in LINEAR_IMEX:
        dsolver = LINEAR_IMEX[type(dsolver)]()
        stiff = LinearTerm(stiff, *problem.linear_solve)
    dt0 = options.dt0
    split = isinstance(dsolver, dfx.AbstractFosterLangevinSRK)
    if split:
        if problem.langevin is None:
            raise ValueError(
                "the underdamped Langevin solvers need a Langevin model "
                "(e.g. dynsim.models.LangevinOscillators)"
            )
        spec = problem.langevin
        n = jnp.shape(y0)[-1] // 2
        bm = _brownian((n,), key, y0, t0, t1, dt0, dsolver)
        terms = dfx.MultiTerm(
            dfx.UnderdampedLangevinDriftTerm(spec.gamma, spec.u, spec.grad_f),
            dfx.UnderdampedLangevinDiffusionTerm(spec.gamma, spec.u, bm),
        )
        y0 = (y0[..., :n], y0[..., n:])
    elif kind == "imex":
        if isinstance(stiff, LinearTerm):
            terms = dfx.MultiTerm(dfx.ODETerm(vector_field), stiff)
        elif isinstance(dsolver, (dfx.KenCarp3, dfx.KenCarp4, dfx.KenCarp5)):
            terms = dfx.MultiTerm(dfx.ODETerm(vector_field), dfx.ODETerm(stiff))
        else:  # any other solver integrates the sum
            terms = dfx.ODETerm(_Sum(vector_field, stiff))
    elif kind == "ode":
        terms = dfx.ODETerm(vector_field)
    else:
        bm = _brownian(problem.noise_shape, key, y0, t0, t1, dt0, dsolver)
        terms = dfx.MultiTerm(
            dfx.ODETerm(vector_field), dfx.ControlTerm(problem.diffusion, bm)
        )
    controller = step_controller(options, t0, t1)
    if not options.adaptive:
        if isinstance(dsolver, dfx.AbstractImplicitSolver):
            # No controller tolerances to borrow: solve each stage to near round-off.
            eps = float(jnp.finfo(jnp.result_type(float)).eps)
            newton = optx.Newton(rtol=100 * eps, atol=100 * eps)
            dsolver = eqx.tree_at(lambda s: s.root_finder, dsolver, newton)
    event = diffrax_event(options.event)
    dsaveat = saveat.to_diffrax()
    if saveat.reductions:
        dsolver = ReducingSolver(dsolver, tuple(saveat.reductions))
        dsaveat = eqx.tree_at(lambda s: s.solver_state, dsaveat, True)
    sol = dfx.diffeqsolve(
        terms,
        dsolver,
        t0,
        t1,
        dt0,
        y0,
        args,
        saveat=dsaveat,
        stepsize_controller=controller,
        adjoint=adjoint,
        event=event,
        max_steps=options.max_steps,
        throw=False,
        progress_meter=(
            dfx.TqdmProgressMeter(refresh_steps=50)
            if options.progress
            else dfx.NoProgressMeter()
        ),
    )
    ys = jnp.concatenate(sol.ys, axis=-1) if split else sol.ys
    status = status_from_result(sol.result, ys)
    if options.throw:
        ys = eqx.branched_error_if(ys, status > Status.EVENT, status, STATUS_MESSAGES)
    stats = {
        "num_steps": sol.stats["num_steps"],
        "num_accepted_steps": sol.stats["num_accepted_steps"],
        "num_rejected_steps": sol.stats["num_rejected_steps"],
    }
    interp = sol.interpolation if saveat.dense else None
    values = dsolver.finish(sol.solver_state) if saveat.reductions else ()
    return Solution(sol.ts, ys, status, stats, interp, values)


def step_controller(
    options: SolveOptions, t0: ArrayLike, t1: ArrayLike
) -> dfx.AbstractStepSizeController:
    """The step-size controller of a solve: PID at the options' tolerances when
    adaptive, else constant steps; guarded (see `_Guarded`)."""
    scale = jnp.maximum(jnp.abs(jnp.asarray(t0)), jnp.abs(jnp.asarray(t1)))
    if options.adaptive:
        return _GuardedAdaptive(
            dfx.PIDController(
                rtol=jnp.asarray(options.rtol), atol=jnp.asarray(options.atol)
            ),
            scale,
        )
    return _Guarded(dfx.ConstantStepSize(), scale)


def diffrax_event(event: Any) -> dfx.Event | None:
    """A solve's event as a `diffrax.Event`: a condition `c(t, y, args)` stops the
    solve where it changes sign (located by Newton's method on the step's dense
    output) or where it is True."""
    if event is None or isinstance(event, dfx.Event):
        return event
    return dfx.Event(
        _EventCondition(event), root_finder=optx.Newton(rtol=1e-10, atol=1e-10)
    )


class _EventCondition(eqx.Module):
    """A user's condition `c(t, y, args)` in diffrax's event signature."""

    fn: Callable[[Any, Any, Any], Any]

    def __call__(self, t, y, args, **kwargs):
        return self.fn(t, y, args)


def all_finite(tree: PyTree[Array]) -> Array:
    """Whether every number of `tree` is finite."""
    leaves = [jnp.all(jnp.isfinite(x)) for x in jtu.tree_leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


class _Guarded(dfx.AbstractStepSizeController):
    """A step-size controller that stops a solve which cannot go on: an accepted
    state that is not finite, or a step rejected at a size of round-off order
    (`dt <= 100 eps max(|t|, scale)`), ends the solve with diffrax's `nonfinite`
    result (dynsim's `Status.NONFINITE`).

    The second rule is what catches a NaN vector field or a finite-time blow-up with
    an adaptive solver: its error estimate is infinite, so the controller shrinks the
    step until the budget runs out. An infinite error estimate alone is no reason to
    stop: diffrax uses it to shrink the step and recover, and its implicit solvers use
    it to report a failed Newton iteration.
    """

    controller: dfx.AbstractStepSizeController
    scale: Array  # max(|t0|, |t1|): what "round-off sized" is relative to

    def wrap(self, direction):
        return eqx.tree_at(
            lambda g: g.controller, self, self.controller.wrap(direction)
        )

    def init(self, terms, t0, t1, y0, dt0, args, func, error_order):
        return self.controller.init(terms, t0, t1, y0, dt0, args, func, error_order)

    def adapt_step_size(
        self, t0, t1, y0, y1_candidate, args, y_error, error_order, controller_state
    ):
        keep, tprev, tnext, made_jump, state, result = self.adapt(
            t0, t1, y0, y1_candidate, args, y_error, error_order, controller_state
        )
        diverged = keep & jnp.invert(all_finite(y1_candidate))
        result = dfx.RESULTS.where(
            self.stuck(t0, t1, keep) | diverged, dfx.RESULTS.nonfinite, result
        )
        return keep, tprev, tnext, made_jump, state, result

    def adapt(
        self, t0, t1, y0, y1_candidate, args, y_error, error_order, controller_state
    ):
        """The wrapped controller's `adapt_step_size`, its powers of the error
        computed as `exp(c · log x)` (`cheap_powers`: a fifth of a small system's
        step on a CPU, in C's `pow`)."""
        adapt = cheap_powers(type(self.controller).adapt_step_size)
        return adapt(
            self.controller, t0, t1, y0, y1_candidate, args, y_error, error_order,
            controller_state,
        )  # fmt: skip

    def stuck(self, t0, t1, keep):
        """Whether the step `[t0, t1]` was rejected at a size of round-off order (or
        of NaN size)."""
        dt = jnp.abs(t1 - t0)
        eps = jnp.finfo(jnp.result_type(dt)).eps
        floor = (
            100 * eps * jnp.maximum(jnp.maximum(jnp.abs(t0), jnp.abs(t1)), self.scale)
        )
        return jnp.invert(keep) & jnp.invert(dt > floor)


class _GuardedAdaptive(_Guarded, dfx.AbstractAdaptiveStepSizeController):
    """`_Guarded` around an adaptive controller (diffrax reads its tolerances for
    the Newton iterations of implicit solvers)."""

    @property
    def rtol(self):
        return self.controller.rtol  # pyright: ignore

    @property
    def atol(self):
        return self.controller.atol  # pyright: ignore

    @property
    def norm(self):
        return self.controller.norm  # pyright: ignore


def _brownian(noise_shape, key, y0, t0, t1, dt0, dsolver):
    if key is None:
        raise ValueError("an SDE solve needs a PRNG key (key=jax.random.key(seed))")
    dtype = jnp.result_type(*jtu.tree_leaves(y0))
    # The tree resolves the path to a fraction of the step, so the increments a
    # solver sees are exact Brownian increments up to that tolerance, and a key is
    # one path whatever the step sizes. It carries the Lévy area the solver needs
    # and no more (the draws depend on it: solvers needing different areas see
    # different paths from one key).
    levy = getattr(dsolver, "minimal_levy_area", dfx.AbstractBrownianIncrement)
    levy = {
        dfx.AbstractBrownianIncrement: dfx.BrownianIncrement,
        dfx.AbstractSpaceTimeLevyArea: dfx.SpaceTimeLevyArea,
        dfx.AbstractSpaceTimeTimeLevyArea: dfx.SpaceTimeTimeLevyArea,
    }.get(levy, levy)
    return dfx.VirtualBrownianTree(
        t0,
        t1,
        tol=jnp.abs(jnp.asarray(dt0)) / 8,
        shape=jax.ShapeDtypeStruct(noise_shape, dtype),
        key=key,
        levy_area=levy,
    )


class _Sum(eqx.Module):
    f: Callable
    g: Callable

    def __call__(self, t, y, args):
        return jtu.tree_map(jnp.add, self.f(t, y, args), self.g(t, y, args))
