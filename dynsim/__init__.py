"""dynsim — a simulation engine for coupled ODE / SDE / PDE dynamical systems,
built on JAX, diffrax and equinox."""

from importlib.metadata import PackageNotFoundError, version as _version

from ._precision import _default_precision, set_precision as set_precision

# Double precision unless the user opted out (see `set_precision`); before any array
# is created by the imports below.
_default_precision()

from . import (
    analysis as analysis,
    io as io,
    models as models,
    observables as observables,
    plot as plot,
    solvers as solvers,
)
from ._fit import FitResult as FitResult, fit as fit
from ._results import (
    RunInfo as RunInfo,
    ScanResult as ScanResult,
    Trajectory as Trajectory,
)
from ._scan import scan as scan
from ._simulate import simulate as simulate
from .models import (
    AbstractIMEXModel as AbstractIMEXModel,
    AbstractMap as AbstractMap,
    AbstractModel as AbstractModel,
    AbstractSDEModel as AbstractSDEModel,
    AbstractSemilinearModel as AbstractSemilinearModel,
)
from .solvers import Status as Status

try:
    __version__ = _version("dynsim")
except PackageNotFoundError:  # a source tree that was not installed
    __version__ = "0.0.0+unknown"
