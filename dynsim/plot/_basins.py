"""The figure of a basins result: each start coloured by its attractor."""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure

from ._plots import _new_axes, _style, _title


def basins(result, *, ax: Axes | None = None) -> Figure:
    """The basins of a 2-D grid of starts as an image (one colour per attractor,
    grey: not converged, black: failed), each attractor's point marked where it
    lies in the plane; for random starts, the starts as dots in the plane of the
    first two components. The legend gives each basin's fraction ± its standard
    error."""
    fig, ax = _new_axes(ax, size=(5.0, 4.2))
    names = list(result.starts)
    labels = np.asarray(result.labels)
    n = len(result.attractors)
    colours = ["black", "0.75"] + [f"C{i % 10}" for i in range(n)]
    cmap = ListedColormap(colours)
    norm = BoundaryNorm(np.arange(-1.5, n + 1.5), cmap.N)
    if result.grid and labels.ndim == 2:
        x, y = (np.asarray(result.starts[k]) for k in names)
        ax.pcolormesh(x, y, labels.T, cmap=cmap, norm=norm, shading="nearest",
                      rasterized=True)  # fmt: skip
    elif len(names) >= 2:
        x, y = (np.asarray(result.starts[k]) for k in names[:2])
        ax.scatter(x, y, c=labels.ravel(), cmap=cmap, norm=norm, s=4, lw=0)
    else:
        raise ValueError("a basins figure needs starts in two components")
    state_names = list(result.info.state_names)
    index = [state_names.index(k) for k in names[:2]]
    for a in range(n):
        share = result.fraction(a + 1)
        err = result.stderr.get(str(a + 1), 0.0)
        px, py = result.attractors[a, index]
        ax.plot(px, py, "o", mfc=colours[a + 2], mec="k", ms=6,
                label=f"attractor {a + 1}: {share:.3f} ± {err:.3f}")  # fmt: skip
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    ax.set_title(_title(result.info))
    ax.legend(frameon=False, fontsize=7, loc="upper right")
    _style(ax)
    return fig
