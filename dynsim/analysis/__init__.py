"""dynsim.analysis — analyses of models: stability phase diagrams (more to come)."""

from ._phase_diagram import (
    ANTI_PHASE as ANTI_PHASE,
    IN_PHASE as IN_PHASE,
    METHODS as METHODS,
    STABLE as STABLE,
    PhaseDiagram as PhaseDiagram,
    phase_diagram as phase_diagram,
)
