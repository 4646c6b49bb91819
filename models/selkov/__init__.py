"""Sel'kov cell–bulk coupling (Iyaniwura & Ward, SIAM J. Appl. Dyn. Syst. 20(1), 2021;
arXiv 2007.08765): one cell, m cells in a well-mixed bulk, the large-D ODE, the full
2-D PDE–ODE, and the small-ε linear stability theory (GCEP)."""

from ._single import (
    Selkov as Selkov,
    kinetics as kinetics,
    kinetics_jacobian as kinetics_jacobian,
)
from ._wellmixed import SelkovWellMixed as SelkovWellMixed
