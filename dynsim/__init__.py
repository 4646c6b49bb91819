"""dynsim — a simulation engine for coupled ODE / SDE / PDE dynamical systems,
built on JAX, diffrax and equinox."""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

from ._precision import _default_precision
from ._precision import set_precision as set_precision

_default_precision()

from . import io as io  # noqa: E402
from . import models as models
from . import plot as plot
from . import solvers as solvers
from ._results import (  # noqa: E402
    RunInfo as RunInfo,
)
from ._results import (
    ScanResult as ScanResult,
)
from ._results import (
    Trajectory as Trajectory,
)
from ._simulate import simulate as simulate  # noqa: E402
from .models import (  # noqa: E402
    AbstractIMEXModel as AbstractIMEXModel,
)
from .models import (
    AbstractMap as AbstractMap,
)
from .models import (
    AbstractModel as AbstractModel,
)
from .models import (
    AbstractSDEModel as AbstractSDEModel,
)
from .solvers import Status as Status  # noqa: E402

try:
    __version__ = _version("dynsim")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"
