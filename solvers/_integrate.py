"""One solve of one trajectory, written once; ensembles are `jax.vmap` of this."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
import optimistix as optx
from jaxtyping import Array, ArrayLike, Int, PyTree, Real

from ._imex import LINEAR_IMEX, LinearTerm
from ._reduce import AbstractReduction, ReducingSolver
from ._registry import SolverInfo, get_solver
from ._status import STATUS_MESSAGES, Status, status_from_result

AdjointName = Literal["forward", "recursive", "backsolve", "direct"]


class Solution(eqx.Module):
    """The raw outcome of `integrate`.

    - `ts`: save times, shape `(times,)`.
    - `ys`: states at `ts`, a PyTree with leading axis `times`.
    - `status`: an integer `Status` code (0 = success).
    - `stats`: accepted / rejected / total step counts.
    - `interpolation`: dense output (a diffrax interpolation) when asked for, else None.
    - `reductions`: the values of the running reductions asked for, in order.
    """

    ts: Real[Array, " times"]
    ys: PyTree[Array]
    status: Int[Array, ""]
    stats: dict[str, Array]
    interpolation: dfx.DenseInterpolation | None = None
    reductions: tuple[PyTree[Array], ...] = ()


class LangevinSpec(eqx.Module):
    """Underdamped Langevin dynamics in diffrax's form, dx = v dt,
    dv = −γ v dt − u ∇f(x) dt + √(2γu) dW, for the Langevin splitting solvers
    (`align`, `should`, `quicsort`). The state is one flat array [x, v].

    - `gamma`, `u`: scalars or one value per position.
    - `grad_f`: ∇f(x, args).
    """

    gamma: Any
    u: Any
    grad_f: Callable[[Any, Any], Any]


class SaveSpec(eqx.Module):
    """Where to save: at `ts` (an array of times) or, if `ts` is None, at t1 only;
    `dense=True` adds the dense interpolant."""

    ts: Real[Array, " times"] | None = None
    dense: bool = eqx.field(default=False, static=True)

    def to_diffrax(self) -> dfx.SaveAt:
        if self.ts is None:
            return dfx.SaveAt(t1=True, dense=self.dense)
        return dfx.SaveAt(ts=self.ts, dense=self.dense)


def _check_nonnegative(name: str, value: Any) -> None:
    # Tier-one check: only Python / concrete values can be inspected before tracing.
    if isinstance(value, jax.core.Tracer):
        return
    v = np.asarray(value)
    if v.ndim != 0:
        raise ValueError(f"{name} must be a scalar, got shape {v.shape}")
    if not bool(np.isfinite(v)) or float(v) < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {float(v)}")


def _is_zero(value: Any) -> bool:
    if isinstance(value, jax.core.Tracer):
        return False
    return float(np.asarray(value)) == 0.0


def resolve_solver(
    solver: str | dfx.AbstractSolver, kind: str, forward_only: bool
) -> tuple[dfx.AbstractSolver, SolverInfo | None]:
    """A diffrax solver for a problem of `kind` ("ode", "imex", "sde", "langevin").

    **Raises:** `ValueError` for an unknown name or a solver unfit for the problem.
    """
    if isinstance(solver, dfx.AbstractSolver):
        return solver, None
    info = get_solver(solver)
    usable = _usable_kinds(info)
    if kind not in usable:
        fit = [n for n, i in _solvers_for(kind)]
        raise ValueError(
            f"solver {solver!r} cannot solve a {kind.upper()} problem; "
            f"use one of: {', '.join(fit)}"
        )
    return info.make(forward_only), info


def _usable_kinds(info: SolverInfo) -> set[str]:
    # ODE solvers integrate the sum of an IMEX split; SDE solvers any Langevin model.
    usable = set(info.kinds)
    if "ode" in usable:
        usable.add("imex")
    if "sde" in usable:
        usable.add("langevin")
    return usable


def _solvers_for(kind: str):
    from ._registry import SOLVERS

    for name, info in SOLVERS.items():
        if kind in _usable_kinds(info):
            yield name, info


def check_options(
    solver: str | dfx.AbstractSolver,
    kind: str,
    *,
    rtol: Any,
    atol: Any,
    dt0: Any,
    adaptive: bool,
    max_steps: int,
    forward_only: bool = True,
) -> dfx.AbstractSolver:
    """Validate solve options before tracing and return the diffrax solver.

    **Raises:** `ValueError` naming the offending option and what is allowed.
    """
    _check_nonnegative("rtol", rtol)
    _check_nonnegative("atol", atol)
    if adaptive and _is_zero(rtol) and _is_zero(atol):
        raise ValueError(
            "rtol and atol are both 0: no step can meet a zero tolerance; give rtol "
            "> 0 or atol > 0 (e.g. rtol=1e-6, atol=1e-9)"
        )
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps <= 0:
        raise ValueError(f"max_steps must be a positive int, got {max_steps!r}")
    dsolver, info = resolve_solver(solver, kind, forward_only)
    if info is not None and adaptive and not info.adaptive:
        raise ValueError(
            f"solver {info.name!r} has no error estimate, so it cannot adapt its step; "
            "pass adaptive=False and a step dt0"
        )
    if not adaptive and dt0 is None:
        raise ValueError("a fixed-step solve (adaptive=False) needs a step dt0")
    if kind in ("sde", "langevin") and dt0 is None:
        raise ValueError("an SDE solve needs a step dt0 (the initial or fixed step)")
    if dt0 is not None and not isinstance(dt0, jax.core.Tracer):
        if not float(dt0) > 0:
            raise ValueError(f"dt0 must be > 0, got {float(dt0)}")
    return dsolver


def _adjoint(adjoint: AdjointName | dfx.AbstractAdjoint | None) -> dfx.AbstractAdjoint:
    if isinstance(adjoint, dfx.AbstractAdjoint):
        return adjoint
    table = {
        None: dfx.ForwardMode,
        "forward": dfx.ForwardMode,
        "recursive": dfx.RecursiveCheckpointAdjoint,
        "backsolve": dfx.BacksolveAdjoint,
        "direct": dfx.DirectAdjoint,
    }
    if adjoint not in table:
        raise ValueError(
            f"unknown adjoint {adjoint!r}; use one of 'forward' (no reverse-mode "
            "gradients, fastest), 'recursive', 'backsolve', 'direct', or a "
            "diffrax.AbstractAdjoint"
        )
    return table[adjoint]()


def integrate(
    vector_field: Callable[[Any, PyTree, Any], PyTree],
    y0: PyTree[ArrayLike],
    t0: ArrayLike,
    t1: ArrayLike,
    args: Any = None,
    *,
    solver: str | dfx.AbstractSolver = "tsit5",
    rtol: ArrayLike = 1e-6,
    atol: ArrayLike = 1e-9,
    dt0: ArrayLike | None = None,
    adaptive: bool = True,
    saveat: SaveSpec | None = None,
    max_steps: int = 100_000,
    stiff_field: Callable[[Any, PyTree, Any], PyTree] | None = None,
    linear_solve: tuple[Callable[..., Any], Callable[..., Any]] | None = None,
    diffusion: Callable[[Any, PyTree, Any], Any] | None = None,
    noise_shape: tuple[int, ...] | None = None,
    key: Array | None = None,
    event: dfx.Event | Callable[..., Any] | None = None,
    adjoint: AdjointName | dfx.AbstractAdjoint | None = None,
    throw: bool = False,
    langevin: LangevinSpec | None = None,
    reductions: tuple[AbstractReduction, ...] = (),
    progress: bool = False,
) -> Solution:
    """Integrate dy = f(t, y) dt [+ g(t, y) dW] from t0 to t1 with diffrax.

    **Arguments:**

    - `vector_field`: f(t, y, args); with `stiff_field` it is the nonstiff part.
    - `y0`, `t0`, `t1`, `args`: the initial value problem.
    - `solver`: a registry name (`dynsim.solvers.SOLVERS`) or a diffrax solver.
    - `rtol`, `atol`: tolerances of the PID step-size controller (adaptive solves).
    - `dt0`: initial step (adaptive; None picks one automatically) or the fixed step.
    - `adaptive`: adaptive step control (default) or a constant step `dt0`.
    - `saveat`: a `SaveSpec` (default: the state at t1 only).
    - `max_steps`: the step budget; exceeding it gives `Status.MAX_STEPS`.
    - `stiff_field`: the stiff part g(t, y, args) for IMEX solvers (`kencarp*`).
    - `linear_solve`: `(factor, solve)` when the stiff part is linear, g = A y:
      `factor(c, args)` prepares and `solve(factor, r, args)` returns x with
      x − c A x = r. The `kencarp*` solvers then do one such solve per stage
      (`LinearKenCarp*`) instead of Newton iterations with a dense Jacobian.
    - `diffusion`, `noise_shape`, `key`: an SDE's diffusion and its Brownian motion,
      a `VirtualBrownianTree` drawn from `key`: the same key gives the same path,
      whatever the solver and its steps.
    - `event`: a `diffrax.Event`, or a function `c(t, y, args)` whose sign change
      (located by Newton's method) or `True` value stops the solve (`Status.EVENT`).
    - `adjoint`: None / "forward" (forward-mode autodiff only, the cheapest loop), or
      "recursive" / "backsolve" / "direct" / a diffrax adjoint for reverse mode.
    - `throw`: raise on failure instead of returning a non-success status.
    - `langevin`: the same SDE as underdamped Langevin dynamics (a `LangevinSpec`),
      integrated by the Langevin splitting solvers on the split state (x, v); any
      other solver integrates `vector_field` and `diffusion` as given.
    - `reductions`: running reductions (`AbstractReduction`) folded over every
      accepted step inside the solver loop; their values are `Solution.reductions`.
    - `progress`: a progress bar over [t0, t1] during the solve (diffrax's tqdm
      meter; under `vmap` it follows the slowest trajectory).

    A solve whose accepted state becomes NaN or infinite, or whose steps keep being
    rejected at a step size of round-off order (a NaN vector field, a finite-time
    blow-up), stops at once with `Status.NONFINITE` instead of spending its step
    budget.

    **Returns:** a `Solution`.

    **Raises:** `ValueError` for invalid settings (negative tolerances, a missing step
    for fixed-step or SDE solves, a solver unfit for the problem, ...).
    """
    saveat = SaveSpec() if saveat is None else saveat
    if langevin is not None:
        kind = "langevin"
    elif diffusion is not None:
        kind = "sde"
    else:
        kind = "imex" if stiff_field is not None else "ode"
    adjoint_ = _adjoint(adjoint)
    dsolver = check_options(
        solver,
        kind,
        rtol=rtol,
        atol=atol,
        dt0=dt0,
        adaptive=adaptive,
        max_steps=max_steps,
        forward_only=isinstance(adjoint_, dfx.ForwardMode),
    )
    if linear_solve is not None and type(dsolver) in LINEAR_IMEX:
        dsolver = LINEAR_IMEX[type(dsolver)]()
        stiff_field = LinearTerm(stiff_field, *linear_solve)
    split = isinstance(dsolver, dfx.AbstractFosterLangevinSRK)
    if split:
        if langevin is None:
            raise ValueError(
                "the underdamped Langevin solvers need a Langevin model "
                "(e.g. dynsim.models.LangevinOscillators)"
            )
        n = jnp.shape(y0)[-1] // 2
        bm = _brownian((n,), key, y0, t0, t1, dt0, dsolver)
        terms = dfx.MultiTerm(
            dfx.UnderdampedLangevinDriftTerm(
                langevin.gamma, langevin.u, langevin.grad_f
            ),
            dfx.UnderdampedLangevinDiffusionTerm(langevin.gamma, langevin.u, bm),
        )
        y0 = (y0[..., :n], y0[..., n:])
    else:
        terms = _terms(
            vector_field,
            stiff_field,
            diffusion,
            noise_shape,
            key,
            y0,
            t0,
            t1,
            dt0,
            dsolver,
            kind,
        )
    scale = jnp.maximum(jnp.abs(jnp.asarray(t0)), jnp.abs(jnp.asarray(t1)))
    if adaptive:
        controller = _GuardedAdaptive(dfx.PIDController(rtol=rtol, atol=atol), scale)
    else:
        controller = _Guarded(dfx.ConstantStepSize(), scale)
        if isinstance(dsolver, dfx.AbstractImplicitSolver):
            # No controller tolerances to borrow: solve each stage to near round-off.
            eps = float(jnp.finfo(jnp.result_type(float)).eps)
            newton = optx.Newton(rtol=100 * eps, atol=100 * eps)
            dsolver = eqx.tree_at(lambda s: s.root_finder, dsolver, newton)
    if event is not None and not isinstance(event, dfx.Event):
        event = dfx.Event(event, root_finder=optx.Newton(rtol=1e-10, atol=1e-10))
    dsaveat = saveat.to_diffrax()
    if reductions:
        dsolver = ReducingSolver(dsolver, tuple(reductions))
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
        adjoint=adjoint_,
        event=event,
        max_steps=max_steps,
        throw=False,
        progress_meter=(
            dfx.TqdmProgressMeter(refresh_steps=50)
            if progress
            else dfx.NoProgressMeter()
        ),
    )
    ys = jnp.concatenate(sol.ys, axis=-1) if split else sol.ys
    status = status_from_result(sol.result, ys)
    if throw:
        ys = eqx.branched_error_if(ys, status > Status.EVENT, status, STATUS_MESSAGES)
    stats = {
        "num_steps": sol.stats["num_steps"],
        "num_accepted_steps": sol.stats["num_accepted_steps"],
        "num_rejected_steps": sol.stats["num_rejected_steps"],
    }
    interp = sol.interpolation if saveat.dense else None
    values = dsolver.finish(sol.solver_state) if reductions else ()
    return Solution(sol.ts, ys, status, stats, interp, values)


def _all_finite(tree: PyTree[Array]) -> Array:
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
        keep, tprev, tnext, made_jump, state, result = self.controller.adapt_step_size(
            t0, t1, y0, y1_candidate, args, y_error, error_order, controller_state
        )
        dt = jnp.abs(t1 - t0)
        eps = jnp.finfo(jnp.result_type(dt)).eps
        floor = (
            100 * eps * jnp.maximum(jnp.maximum(jnp.abs(t0), jnp.abs(t1)), self.scale)
        )
        stuck = jnp.invert(keep) & jnp.invert(dt > floor)  # also catches a NaN step
        diverged = keep & jnp.invert(_all_finite(y1_candidate))
        result = dfx.RESULTS.where(stuck | diverged, dfx.RESULTS.nonfinite, result)
        return keep, tprev, tnext, made_jump, state, result


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


def _terms(vf, stiff, diffusion, noise_shape, key, y0, t0, t1, dt0, dsolver, kind):
    drift = dfx.ODETerm(vf)
    if kind == "imex":
        if isinstance(stiff, LinearTerm):
            return dfx.MultiTerm(drift, stiff)
        if isinstance(dsolver, (dfx.KenCarp3, dfx.KenCarp4, dfx.KenCarp5)):
            return dfx.MultiTerm(drift, dfx.ODETerm(stiff))
        # Any other solver integrates the sum.
        return dfx.ODETerm(_Sum(vf, stiff))
    if kind == "ode":
        return drift
    if noise_shape is None:
        raise ValueError("an SDE solve needs the noise_shape of its Brownian motion")
    bm = _brownian(noise_shape, key, y0, t0, t1, dt0, dsolver)
    return dfx.MultiTerm(drift, dfx.ControlTerm(diffusion, bm))


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
