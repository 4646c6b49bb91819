"""dynsim.solvers — the solver core on diffrax: named solvers, adaptive stepping,
events, SDEs with reproducible Brownian paths, maps, and a status per solve."""

from ._ensemble import (
    ensemble_support as ensemble_support,
    integrate_ensemble as integrate_ensemble,
)
from ._imex import (
    LinearKenCarp3 as LinearKenCarp3,
    LinearKenCarp4 as LinearKenCarp4,
    LinearKenCarp5 as LinearKenCarp5,
    LinearTerm as LinearTerm,
)
from ._integrate import integrate as integrate
from ._maps import iterate_map as iterate_map
from ._pallas import BLOCK as BLOCK, integrate_blocks as integrate_blocks
from ._pde import (
    AbstractGrid as AbstractGrid,
    DiskGrid as DiskGrid,
    SquareGrid as SquareGrid,
)
from ._problem import (
    KINDS as KINDS,
    LangevinSpec as LangevinSpec,
    Problem as Problem,
    SaveSpec as SaveSpec,
    SolveOptions as SolveOptions,
    as_float as as_float,
    default_solver as default_solver,
    resolve_solver as resolve_solver,
    solve_options as solve_options,
)
from ._reduce import (
    QUADRATURE_WEIGHTS as QUADRATURE_WEIGHTS,
    SAMPLES_PER_STEP as SAMPLES_PER_STEP,
    AbstractReduction as AbstractReduction,
    Record as Record,
    ReducingSolver as ReducingSolver,
    Segment as Segment,
    StepSamples as StepSamples,
    critical_points as critical_points,
    sample_segment as sample_segment,
    select_carries as select_carries,
)
from ._registry import (
    SOLVERS as SOLVERS,
    SolverInfo as SolverInfo,
    get_solver as get_solver,
)
from ._solution import Solution as Solution
from ._status import (
    STATUS_MESSAGES as STATUS_MESSAGES,
    Status as Status,
    status_from_result as status_from_result,
    status_ok as status_ok,
)
from ._unrolled import explicit_runge_kutta as explicit_runge_kutta
