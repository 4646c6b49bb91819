"""dynsim.analysis.selkov — analyses of the Sel'kov cell–bulk models
(`dynsim.models.selkov`): stability phase diagrams of synchronous oscillations, by
the globally coupled eigenvalue problem, the large-D ODE's Jacobian or simulation."""

from ._phase_diagram import (
    ANTI_PHASE as ANTI_PHASE,
    FAILED as FAILED,
    IN_PHASE as IN_PHASE,
    METHODS as METHODS,
    MODE_NAMES as MODE_NAMES,
    STABLE as STABLE,
    PhaseDiagram as PhaseDiagram,
    phase_diagram as phase_diagram,
    ring as ring,
    with_cells as with_cells,
)
