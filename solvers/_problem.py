"""What the solver core integrates (`Problem`) and how (`SolveOptions`).

A `Problem` is the equation in the pieces diffrax needs, with its kind decided once
by whoever builds it (dynsim's models present themselves as problems through
`model.problem()`); the solver core knows problems, never models. `SolveOptions`
are checked once, by `solve_options`, before anything is traced.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Real

from ._reduce import AbstractReduction
from ._registry import SOLVERS, SolverInfo, get_solver

Kind = Literal["ode", "imex", "sde", "langevin", "map"]
KINDS: tuple[Kind, ...] = ("ode", "imex", "sde", "langevin", "map")
AdjointName = Literal["forward", "recursive", "backsolve", "direct"]


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


class Problem(eqx.Module):
    """A dynamical system as the solver core sees it.

    - `kind`: `"ode"` dy = f dt; `"imex"` f = `vector_field` (explicit) + `stiff`
      (implicit); `"sde"` dy = f dt + g dW; `"langevin"` an SDE that is also
      underdamped Langevin dynamics (`langevin`); `"map"` y_{n+1} = `vector_field`
      (n, y_n, args).
    - `vector_field(t, y, args)`: the drift (the nonstiff part for IMEX, the step for
      maps); callables may be bound methods of equinox modules, whose arrays are
      then traced data (a new parameter value never recompiles).
    - `stiff(t, y, args)`: the stiff part (IMEX).
    - `linear_solve`: `(factor(c, args), solve(factor, r, args))` when the stiff part
      is linear, g = A y, with x − c A x = r solved fast (semilinear models).
    - `diffusion(t, y, args)`, `noise_shape`: an SDE's diffusion and the shape of its
      Brownian motion.
    - `langevin`: a `LangevinSpec` (kind `"langevin"`).
    """

    kind: Kind = eqx.field(static=True)
    vector_field: Callable[..., Any]
    stiff: Callable[..., Any] | None = None
    linear_solve: tuple[Callable[..., Any], Callable[..., Any]] | None = None
    diffusion: Callable[..., Any] | None = None
    noise_shape: tuple[int, ...] | None = eqx.field(static=True, default=None)
    langevin: LangevinSpec | None = None

    def __check_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown problem kind {self.kind!r}; kinds: {KINDS}")
        if self.kind == "imex" and self.stiff is None:
            raise ValueError("an IMEX problem needs its stiff part")
        if self.kind in ("sde", "langevin") and (
            self.diffusion is None or self.noise_shape is None
        ):
            raise ValueError("an SDE problem needs a diffusion and a noise_shape")
        if self.kind == "langevin" and self.langevin is None:
            raise ValueError("a Langevin problem needs its LangevinSpec")

    @property
    def stochastic(self) -> bool:
        return self.kind in ("sde", "langevin")


class SaveSpec(eqx.Module):
    """What a solve returns besides its status: the states at `ts` (an array of
    times; None: at t1 only), the dense interpolant (`dense`), and running
    `reductions` folded over every accepted step. For maps, `every`: keep every
    `every`-th iterate (0: the last only)."""

    ts: Real[Array, " times"] | None = None
    dense: bool = eqx.field(default=False, static=True)
    reductions: tuple[AbstractReduction, ...] = ()
    every: int = eqx.field(default=0, static=True)

    def to_diffrax(self) -> dfx.SaveAt:
        if self.ts is None:
            return dfx.SaveAt(t1=True, dense=self.dense)
        return dfx.SaveAt(ts=self.ts, dense=self.dense)


class SolveOptions(eqx.Module):
    """How to solve, checked once by `solve_options`: the solver (a registry name or
    a diffrax solver), the tolerances of adaptive PID step control, the initial or
    fixed step `dt0`, the step budget, the adjoint (None: forward mode only, the
    cheapest loop), what to save (`SaveSpec`), an event `c(t, y, args)` that stops
    the solve where it changes sign or is True, `throw` (raise on failure instead of
    returning a status), and a progress bar over [t0, t1]."""

    solver: str | dfx.AbstractSolver = eqx.field(static=True)
    rtol: Array
    atol: Array
    dt0: Array | None
    adaptive: bool = eqx.field(static=True)
    max_steps: int = eqx.field(static=True)
    adjoint: AdjointName | dfx.AbstractAdjoint | None = eqx.field(static=True)
    saveat: SaveSpec = SaveSpec()
    event: Any = None
    throw: bool = eqx.field(static=True, default=False)
    progress: bool = eqx.field(static=True, default=False)

    @property
    def forward_only(self) -> bool:
        return self.adjoint in (None, "forward") or isinstance(
            self.adjoint, dfx.ForwardMode
        )


def default_solver(kind: Kind) -> str:
    """Tsit5 for ODEs and IMEX splits (as one field), Euler–Maruyama for SDEs."""
    return "euler" if kind in ("sde", "langevin") else "tsit5"


def as_float(value: Any, dtype: Any = None) -> Any:
    """`value` as a float array: NumPy when concrete (no device dispatch, which
    costs more than a small scan's solve), JAX when traced."""
    dtype = jnp.result_type(float) if dtype is None else dtype
    if isinstance(value, jax.core.Tracer):
        return jnp.asarray(value, dtype)
    return np.asarray(value, dtype)


def _concrete(value: Any) -> np.ndarray | None:
    if isinstance(value, jax.core.Tracer):
        return None
    return np.asarray(value)


def _check_tolerance(name: str, value: Any) -> None:
    v = _concrete(value)
    if v is None:
        return
    if v.ndim != 0:
        raise ValueError(f"{name} must be a scalar, got shape {v.shape}")
    if not bool(np.isfinite(v)) or float(v) < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {float(v)}")


def usable_kinds(info: SolverInfo) -> set[str]:
    """The problems a registry solver can solve: ODE solvers integrate the sum of an
    IMEX split, SDE solvers any Langevin problem."""
    usable = set(info.kinds)
    if "ode" in usable:
        usable.add("imex")
    if "sde" in usable:
        usable.add("langevin")
    return usable


def resolve_solver(
    solver: str | dfx.AbstractSolver, kind: str, forward_only: bool
) -> tuple[dfx.AbstractSolver, SolverInfo | None]:
    """A diffrax solver for a problem of `kind`.

    **Raises:** `ValueError` for an unknown name or a solver unfit for the problem.
    """
    if isinstance(solver, dfx.AbstractSolver):
        return solver, None
    info = get_solver(solver)
    if kind not in usable_kinds(info):
        fit = [n for n, i in SOLVERS.items() if kind in usable_kinds(i)]
        raise ValueError(
            f"solver {solver!r} cannot solve a {kind.upper()} problem; "
            f"use one of: {', '.join(fit)}"
        )
    return info.make(forward_only), info


def solve_options(
    kind: Kind,
    *,
    solver: str | dfx.AbstractSolver | None = None,
    rtol: ArrayLike = 1e-6,
    atol: ArrayLike = 1e-9,
    dt0: ArrayLike | None = None,
    adaptive: bool | None = None,
    max_steps: int = 100_000,
    adjoint: AdjointName | dfx.AbstractAdjoint | None = None,
    saveat: SaveSpec | None = None,
    event: Any = None,
    throw: bool = False,
    progress: bool = False,
) -> SolveOptions:
    """Check the options of a solve of a `kind` problem and fill in the defaults
    (solver: `default_solver(kind)`; adaptive: True for ODEs, False for SDEs).

    **Raises:** `ValueError` naming the offending option and what is allowed.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown problem kind {kind!r}; kinds: {KINDS}")
    dtype = jnp.result_type(float)
    saveat = SaveSpec() if saveat is None else saveat
    if kind == "map":  # a map has no step control: only what to save
        return SolveOptions(
            solver="iterate",
            rtol=jnp.asarray(0.0, dtype),
            atol=jnp.asarray(0.0, dtype),
            dt0=None,
            adaptive=False,
            max_steps=1,
            adjoint=None,
            saveat=saveat,
        )
    solver = default_solver(kind) if solver is None else solver
    stochastic = kind in ("sde", "langevin")
    adaptive = (not stochastic) if adaptive is None else bool(adaptive)
    _check_tolerance("rtol", rtol)
    _check_tolerance("atol", atol)
    r, a = _concrete(rtol), _concrete(atol)
    if adaptive and r is not None and a is not None and float(r) == float(a) == 0:
        raise ValueError(
            "rtol and atol are both 0: no step can meet a zero tolerance; give rtol "
            "> 0 or atol > 0 (e.g. rtol=1e-6, atol=1e-9)"
        )
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps <= 0:
        raise ValueError(f"max_steps must be a positive int, got {max_steps!r}")
    _adjoint(adjoint)  # a known adjoint
    forward_only = adjoint in (None, "forward") or isinstance(adjoint, dfx.ForwardMode)
    _, info = resolve_solver(solver, kind, forward_only)
    if info is not None and adaptive and not info.adaptive:
        raise ValueError(
            f"solver {info.name!r} has no error estimate, so it cannot adapt its step; "
            "pass adaptive=False and a step dt0"
        )
    if not adaptive and dt0 is None:
        raise ValueError("a fixed-step solve (adaptive=False) needs a step dt0")
    if stochastic and dt0 is None:
        raise ValueError("an SDE solve needs a step dt0 (the initial or fixed step)")
    d = None if dt0 is None else _concrete(dt0)
    if d is not None and not float(d) > 0:
        raise ValueError(f"dt0 must be > 0, got {float(d)}")
    return SolveOptions(
        solver=solver,
        rtol=as_float(rtol, dtype),
        atol=as_float(atol, dtype),
        dt0=None if dt0 is None else as_float(dt0, dtype),
        adaptive=adaptive,
        max_steps=max_steps,
        adjoint=adjoint,
        saveat=saveat,
        event=event,
        throw=throw,
        progress=progress,
    )


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
