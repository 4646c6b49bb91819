"""Solver names -> diffrax solvers (docs/solvers.md).

The table is an immutable mapping built once at import; pass a `diffrax.AbstractSolver`
instance wherever a name is accepted to use anything not listed here.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Literal

import diffrax as dfx
import equinox as eqx
import optimistix as optx

from ._unrolled import UnrolledDopri5, UnrolledDopri8, UnrolledTsit5

Kind = Literal["ode", "imex", "sde", "langevin"]


class SolverInfo(eqx.Module):
    """What the solver core needs to know about a named solver.

    - `name`: the registry name.
    - `make`: `make(forward_only)` -> the diffrax solver. Forward-only solves use
      `scan_kind="lax"` for the Runge–Kutta stage loop, which is cheaper than the
      checkpointed loop that reverse-mode autodiff needs.
    - `kinds`: the problems it solves: `"ode"` (one vector field, explicit or
      implicit), `"imex"` (a nonstiff part explicit and a stiff part implicit), `"sde"`,
      `"langevin"` (underdamped Langevin dynamics only; every SDE solver solves those
      too).
    - `adaptive`: whether it carries an embedded error estimate for step control.
    - `order`: the order of convergence on ODEs (`None` if it solves no ODE).
    - `sde_order`: the strong order on SDEs with general noise (`None` if no SDEs).
    - `calculus`: `"ito"` or `"stratonovich"` for SDE solvers, else `None`.
    """

    name: str
    make: Callable[[bool], dfx.AbstractSolver] = eqx.field(static=True)
    kinds: tuple[Kind, ...]
    adaptive: bool
    order: float | None
    sde_order: float | None = None
    calculus: Literal["ito", "stratonovich"] | None = None


def _rk(cls: type) -> Callable[[bool], dfx.AbstractSolver]:
    return lambda forward_only: cls(scan_kind="lax" if forward_only else None)


def _plain(cls: type) -> Callable[[bool], dfx.AbstractSolver]:
    return lambda forward_only: cls()


def _implicit(cls: type) -> Callable[[bool], dfx.AbstractSolver]:
    # Full Newton (a fresh Jacobian every iteration) at the step controller's
    # tolerances. diffrax's default, VeryChord, keeps the first Jacobian; on stiff
    # problems with strong coupling it stalls and the controller then rejects step
    # after step (Robertson: 1238 steps against 118 with Newton; a stiff IMEX split
    # with KenCarp4 at rtol 1e-8: no progress in 1e5 steps against 1138).
    root_finder = dfx.with_stepsize_controller_tols(optx.Newton)()

    def make(forward_only: bool) -> dfx.AbstractSolver:
        scan_kind = "lax" if forward_only else None
        if cls is dfx.ImplicitEuler:
            return cls(root_finder=root_finder)
        return cls(scan_kind=scan_kind, root_finder=root_finder)

    return make


_ODE: tuple[Kind, ...] = ("ode",)
_IMEX: tuple[Kind, ...] = ("imex",)
_SDE: tuple[Kind, ...] = ("sde",)
_BOTH: tuple[Kind, ...] = ("ode", "sde")
_LANGEVIN: tuple[Kind, ...] = ("langevin",)

_TABLE = [
    # Stages unrolled into one fused computation: see `_unrolled.py`.
    SolverInfo("tsit5", lambda forward_only: UnrolledTsit5(), _ODE, True, 5),
    SolverInfo("dopri5", lambda forward_only: UnrolledDopri5(), _ODE, True, 5),
    SolverInfo("dopri8", lambda forward_only: UnrolledDopri8(), _ODE, True, 8),
    SolverInfo("bosh3", _rk(dfx.Bosh3), _ODE, True, 3),
    SolverInfo("midpoint", _rk(dfx.Midpoint), _ODE, True, 2),
    # Heun on an SDE converges to the Stratonovich solution (strong order 1/2).
    SolverInfo("heun", _rk(dfx.Heun), _BOTH, True, 2, 0.5, "stratonovich"),
    # Euler on an SDE is Euler–Maruyama (Itô, strong order 1/2).
    SolverInfo("euler", _plain(dfx.Euler), _BOTH, False, 1, 0.5, "ito"),
    SolverInfo("implicit_euler", _implicit(dfx.ImplicitEuler), _ODE, True, 1),
    SolverInfo("kvaerno3", _implicit(dfx.Kvaerno3), _ODE, True, 3),
    SolverInfo("kvaerno4", _implicit(dfx.Kvaerno4), _ODE, True, 4),
    SolverInfo("kvaerno5", _implicit(dfx.Kvaerno5), _ODE, True, 5),
    SolverInfo("kencarp3", _implicit(dfx.KenCarp3), _IMEX, True, 3),
    SolverInfo("kencarp4", _implicit(dfx.KenCarp4), _IMEX, True, 4),
    SolverInfo("kencarp5", _implicit(dfx.KenCarp5), _IMEX, True, 5),
    SolverInfo("euler_maruyama", _plain(dfx.Euler), _SDE, False, None, 0.5, "ito"),
    SolverInfo("milstein", _plain(dfx.ItoMilstein), _SDE, False, None, 1.0, "ito"),
    SolverInfo(
        "euler_heun", _plain(dfx.EulerHeun), _SDE, False, None, 0.5, "stratonovich"
    ),
    # SRA1 and ShARK: strong order 1.5 for additive noise (Rößler 2010; Foster 2023).
    SolverInfo("sra", _rk(dfx.SRA1), _SDE, True, None, 1.5, "ito"),
    SolverInfo("shark", _rk(dfx.ShARK), _SDE, True, None, 1.5, "ito"),
    SolverInfo("spark", _rk(dfx.SPaRK), _SDE, True, None, 0.5, "stratonovich"),
    # Underdamped Langevin splittings (Foster, Lyons & Oberhauser 2021–24): strong
    # order 2 (ALIGN, with an error estimate) and 3 (ShOULD, QUICSORT, fixed step).
    SolverInfo("align", lambda fo: dfx.ALIGN(0.1), _LANGEVIN, True, None, 2.0, "ito"),
    SolverInfo(
        "should", lambda fo: dfx.ShOULD(0.01), _LANGEVIN, False, None, 3.0, "ito"
    ),
    SolverInfo(
        "quicsort", lambda fo: dfx.QUICSORT(0.1), _LANGEVIN, False, None, 3.0, "ito"
    ),
]

SOLVERS: types.MappingProxyType[str, SolverInfo] = types.MappingProxyType(
    {info.name: info for info in _TABLE}
)


def get_solver(name: str) -> SolverInfo:
    """Look up a solver by name.

    **Raises:** `ValueError` naming the unknown solver and listing the known ones.
    """
    try:
        return SOLVERS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown solver {name!r}; known solvers: {', '.join(SOLVERS)}"
        ) from None
