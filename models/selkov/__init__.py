"""Sel'kov cell–bulk coupling (Iyaniwura & Ward, SIAM J. Appl. Dyn. Syst. 20(1), 2021;
arXiv 2007.08765): one cell, m cells in a well-mixed bulk, the large-D ODE, the full
2-D PDE–ODE, and the small-ε linear stability theory (GCEP)."""

from ._cell_bulk import SelkovCellBulk as SelkovCellBulk
from ._disk import (
    neumann_green as neumann_green,
    neumann_green_matrix as neumann_green_matrix,
    neumann_regular as neumann_regular,
    reduced_wave_green as reduced_wave_green,
    reduced_wave_matrix as reduced_wave_matrix,
    reduced_wave_regular as reduced_wave_regular,
)
from ._gcep import (
    GCEPMode as GCEPMode,
    SmallEpsSteadyState as SmallEpsSteadyState,
    discrete_eigenvalues as discrete_eigenvalues,
    gcep as gcep,
    gcep_matrix as gcep_matrix,
    nonlinear_eigenvalues as nonlinear_eigenvalues,
    small_eps_steady_state as small_eps_steady_state,
)
from ._large_d import SelkovLargeD as SelkovLargeD
from ._single import (
    Selkov as Selkov,
    kinetics as kinetics,
    kinetics_jacobian as kinetics_jacobian,
)
from ._wellmixed import SelkovWellMixed as SelkovWellMixed
