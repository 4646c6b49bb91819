"""dynsim.plot — figures of results, as a scientist would print them."""

from ._basins import (
    basin_fractions as basin_fractions,
    basins as basins,
    branch_basins as branch_basins,
    uncertainty as uncertainty,
)
from ._bifurcation import (
    bifurcation_diagram as bifurcation_diagram,
    orbit_diagram as orbit_diagram,
)
from ._indicators import (
    ews_panel as ews_panel,
    kendall_summary as kendall_summary,
    lyapunov as lyapunov,
)
from ._plots import (
    phase_diagram as phase_diagram,
    phase_portrait as phase_portrait,
    save_figures as save_figures,
    scan_figures as scan_figures,
    scan_heatmap as scan_heatmap,
    scan_line as scan_line,
    time_series as time_series,
)
