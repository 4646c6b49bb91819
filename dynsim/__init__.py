"""dynsim — a simulation engine for coupled ODE / SDE / PDE dynamical systems,
built on JAX, diffrax and equinox.

The package loads its parts on first use (`dynsim.simulate`, `dynsim.models`, ...),
so that `import dynsim` — and the `dynsim` command's `--help` — stay fast; JAX is
switched to double precision on import all the same (see `set_precision`).
"""

import importlib
from importlib.metadata import PackageNotFoundError, version as _version
from typing import TYPE_CHECKING, Any

from ._precision import _default_precision, set_precision as set_precision

# Double precision unless the user opted out (see `set_precision`); before any JAX
# array exists.
_default_precision()

# Public name -> (module, attribute); None: the module itself.
_LAZY: dict[str, tuple[str, str | None]] = {
    "analysis": ("dynsim.analysis", None),
    "io": ("dynsim.io", None),
    "models": ("dynsim.models", None),
    "observables": ("dynsim.observables", None),
    "plot": ("dynsim.plot", None),
    "solvers": ("dynsim.solvers", None),
    "FitResult": ("dynsim._fit", "FitResult"),
    "fit": ("dynsim._fit", "fit"),
    "RunInfo": ("dynsim._results", "RunInfo"),
    "ScanResult": ("dynsim._results", "ScanResult"),
    "Trajectory": ("dynsim._results", "Trajectory"),
    "scan": ("dynsim._scan", "scan"),
    "plan_scan": ("dynsim._scan", "plan_scan"),
    "ScanPlan": ("dynsim._scan_plan", "ScanPlan"),
    "AbstractSystem": ("dynsim.models", "AbstractSystem"),
    "simulate": ("dynsim._simulate", "simulate"),
    "AbstractIMEXModel": ("dynsim.models", "AbstractIMEXModel"),
    "AbstractMap": ("dynsim.models", "AbstractMap"),
    "AbstractModel": ("dynsim.models", "AbstractModel"),
    "AbstractSDEModel": ("dynsim.models", "AbstractSDEModel"),
    "AbstractSemilinearModel": ("dynsim.models", "AbstractSemilinearModel"),
    "Status": ("dynsim.solvers", "Status"),
    "AbstractResult": ("dynsim._protocol", "AbstractResult"),
    "Gridded": ("dynsim._protocol", "Gridded"),
    "result_types": ("dynsim._protocol", "result_types"),
}

__all__ = sorted([*_LAZY, "set_precision", "__version__"])


def __getattr__(name: str) -> Any:
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'dynsim' has no attribute {name!r}") from None
    value = importlib.import_module(module)
    if attr is not None:
        value = getattr(value, attr)
    globals()[name] = value  # resolved once
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # what the names are, for type checkers and editors
    from . import (
        analysis as analysis,
        io as io,
        models as models,
        observables as observables,
        plot as plot,
        solvers as solvers,
    )
    from ._fit import FitResult as FitResult, fit as fit
    from ._protocol import (
        AbstractResult as AbstractResult,
        Gridded as Gridded,
        result_types as result_types,
    )
    from ._results import (
        RunInfo as RunInfo,
        ScanResult as ScanResult,
        Trajectory as Trajectory,
    )
    from ._scan import plan_scan as plan_scan, scan as scan
    from ._scan_plan import ScanPlan as ScanPlan
    from ._simulate import simulate as simulate
    from .models import (
        AbstractIMEXModel as AbstractIMEXModel,
        AbstractMap as AbstractMap,
        AbstractModel as AbstractModel,
        AbstractSDEModel as AbstractSDEModel,
        AbstractSemilinearModel as AbstractSemilinearModel,
        AbstractSystem as AbstractSystem,
    )
    from .solvers import Status as Status

try:
    __version__ = _version("dynsim")
except PackageNotFoundError:  # a source tree that was not installed
    __version__ = "0.0.0+unknown"
