"""dynsim.solvers — the solver core on diffrax: named solvers, adaptive stepping,
events, SDEs with reproducible Brownian paths, maps, and a status per solve."""

from ._integrate import (
    SaveSpec as SaveSpec,
)
from ._integrate import (
    Solution as Solution,
)
from ._integrate import (
    check_options as check_options,
)
from ._integrate import (
    integrate as integrate,
)
from ._integrate import (
    resolve_solver as resolve_solver,
)
from ._maps import iterate_map as iterate_map
from ._registry import SOLVERS as SOLVERS
from ._registry import SolverInfo as SolverInfo
from ._registry import get_solver as get_solver
from ._status import STATUS_MESSAGES as STATUS_MESSAGES
from ._status import Status as Status
from ._status import status_from_result as status_from_result
