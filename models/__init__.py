"""dynsim.models — the dynamical systems dynsim ships, and the contract for your own."""

from ._base import (
    AbstractIMEXModel as AbstractIMEXModel,
)
from ._base import (
    AbstractMap as AbstractMap,
)
from ._base import (
    AbstractModel as AbstractModel,
)
from ._base import (
    AbstractSDEModel as AbstractSDEModel,
)
from ._base import (
    describe as describe,
)
from ._base import (
    param as param,
)
from ._base import (
    parameters as parameters,
)
from ._base import (
    replace_parameters as replace_parameters,
)
from ._classic import (
    Brusselator as Brusselator,
)
from ._classic import (
    Henon as Henon,
)
from ._classic import (
    Lorenz as Lorenz,
)
from ._classic import (
    Lorenz96 as Lorenz96,
)
from ._classic import (
    Rossler as Rossler,
)
from ._classic import (
    VanDerPol as VanDerPol,
)
from ._ecology import MayHarvesting as MayHarvesting
from ._linear import LinearSystem as LinearSystem
from ._linear import OrnsteinUhlenbeck as OrnsteinUhlenbeck
from ._noise import AdditiveNoise as AdditiveNoise
from ._normal_forms import (
    HopfNormalForm as HopfNormalForm,
)
from ._normal_forms import (
    PitchforkNormalForm as PitchforkNormalForm,
)
from ._selkov import Selkov as Selkov
