"""dynsim.analysis — analyses of models: continuation and bifurcations, equilibria
and eigenvalues, Lyapunov exponents, early-warning signals; `dynsim.analysis.selkov`
holds the analyses of the Sel'kov cell–bulk models (stability phase diagrams)."""

from . import selkov as selkov
from ._basins import Basins as Basins, basins as basins
from ._branch import (
    Bifurcation as Bifurcation,
    Branch as Branch,
    Codim2Point as Codim2Point,
    Curve as Curve,
    CycleBranch as CycleBranch,
)
from ._branch_basins import (
    BranchBasins as BranchBasins,
    branch_basins as branch_basins,
)
from ._codim2 import bifurcation_curve as bifurcation_curve
from ._continuation import continuation as continuation, switch_branch as switch_branch
from ._cycles import (
    cycle_continuation as cycle_continuation,
    periodic_orbit_guess as periodic_orbit_guess,
)
from ._diagram import Diagram as Diagram, bifurcation_diagram as bifurcation_diagram
from ._ews import (
    EWSResult as EWSResult,
    ews as ews,
    kendall_tau as kendall_tau,
)
from ._global_continuation import (
    GlobalContinuation as GlobalContinuation,
    global_continuation as global_continuation,
)
from ._linalg import (
    Equilibrium as Equilibrium,
    eigenvalues as eigenvalues,
    equilibrium as equilibrium,
    jacobian as jacobian,
)
from ._lyapunov import (
    LyapunovSpectrum as LyapunovSpectrum,
    kaplan_yorke as kaplan_yorke,
    lyapunov_spectrum as lyapunov_spectrum,
    max_lyapunov as max_lyapunov,
)
from ._normal_form import (
    first_lyapunov as first_lyapunov,
    second_lyapunov as second_lyapunov,
)
from ._poincare import PoincareSection as PoincareSection, poincare as poincare
from ._ramp import (
    TRANSITIONS as TRANSITIONS,
    RampExperiment as RampExperiment,
    ramp_experiment as ramp_experiment,
)
from ._rosenstein import delay_embed as delay_embed, rosenstein as rosenstein
from ._uncertainty import (
    UncertaintyExponent as UncertaintyExponent,
    uncertainty_exponent as uncertainty_exponent,
)
from ._zero_one import ZeroOneTest as ZeroOneTest, zero_one_test as zero_one_test
