"""dynsim.models — the dynamical systems dynsim ships, and the contract for your own."""

from . import selkov as selkov
from ._base import (
    AbstractIMEXModel as AbstractIMEXModel,
    AbstractMap as AbstractMap,
    AbstractModel as AbstractModel,
    AbstractPredictor as AbstractPredictor,
    AbstractSDEModel as AbstractSDEModel,
    AbstractSemilinearModel as AbstractSemilinearModel,
    AbstractSystem as AbstractSystem,
    check_parameter_names as check_parameter_names,
    describe as describe,
    from_description as from_description,
    model_class as model_class,
    param as param,
    parameters as parameters,
    replace_parameters as replace_parameters,
    rollout as rollout,
)
from ._classic import (
    Brusselator as Brusselator,
    Henon as Henon,
    Lorenz as Lorenz,
    Lorenz96 as Lorenz96,
    Rossler as Rossler,
    VanDerPol as VanDerPol,
)
from ._ecology import MayHarvesting as MayHarvesting
from ._langevin import (
    AbstractLangevinModel as AbstractLangevinModel,
    LangevinOscillators as LangevinOscillators,
)
from ._learning import (
    DeepLinearGradientFlow as DeepLinearGradientFlow,
    TeacherStudentFlow as TeacherStudentFlow,
)
from ._linear import (
    LinearSystem as LinearSystem,
    OrnsteinUhlenbeck as OrnsteinUhlenbeck,
)
from ._ltc import LTC as LTC, CfC as CfC
from ._neural import (
    LatentODE as LatentODE,
    NeuralODE as NeuralODE,
    NeuralSDE as NeuralSDE,
)
from ._noise import AdditiveNoise as AdditiveNoise
from ._normal_forms import (
    HopfNormalForm as HopfNormalForm,
    PitchforkNormalForm as PitchforkNormalForm,
)
from ._ramp import Ramp as Ramp
from ._wiring import Wiring as Wiring, fully_connected as fully_connected, ncp as ncp
from .selkov import (
    Selkov as Selkov,
    SelkovCellBulk as SelkovCellBulk,
    SelkovLargeD as SelkovLargeD,
    SelkovWellMixed as SelkovWellMixed,
)
