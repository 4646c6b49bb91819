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


def basin_fractions(result, *, ax: Axes | None = None) -> Figure:
    """The basin fractions of a global continuation against the parameter, stacked
    (one band per attractor, grey: not converged, black: failed)."""
    fig, ax = _new_axes(ax, size=(5.5, 3.6))
    x = np.asarray(result.values)
    fractions = np.asarray(result.fractions)
    bands = [fractions[:, a] for a in range(fractions.shape[1])]
    colours = [f"C{a % 10}" for a in range(len(bands))]
    labels = [f"attractor {a + 1}" for a in range(len(bands))]
    bands += [np.asarray(result.unconverged), np.asarray(result.failed)]
    colours += ["0.75", "black"]
    labels += ["not converged", "failed"]
    ax.stackplot(x, *bands, colors=colours, labels=labels, step="mid")
    ax.set_xlim(x.min(), x.max())
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel(result.param)
    ax.set_ylabel("basin fraction")
    ax.set_title(_title(result.info))
    handles, names = ax.get_legend_handles_labels()
    keep = [i for i, b in enumerate(bands) if np.any(b > 0)]
    ax.legend([handles[i] for i in keep], [names[i] for i in keep], frameon=False,
              fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))  # fmt: skip
    _style(ax)
    return fig


def uncertainty(result, *, ax: Axes | None = None) -> Figure:
    """The uncertain fraction of starts against the perturbation ε on log axes,
    with its standard errors and the fitted power law ε^α."""
    fig, ax = _new_axes(ax, size=(4.6, 3.6))
    eps, f = np.asarray(result.eps), np.asarray(result.uncertain)
    err = np.asarray(result.stderr)
    seen = f > 0
    ax.errorbar(eps[seen], f[seen], yerr=err[seen], fmt="o", color="C0", ms=4,
                capsize=2, label="uncertain fraction")  # fmt: skip
    if np.isfinite(result.alpha):
        ax.plot(eps, result.fitted(eps), "-", color="C1", lw=1,
                label=f"ε^α, α = {result.alpha:.3f} ± {result.alpha_stderr:.3f}"
                f" (d = {result.dimension:.3f})")  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("perturbation ε (relative to the region)")
    ax.set_ylabel("uncertain fraction f(ε)")
    ax.set_title(_title(result.info))
    ax.legend(frameon=False, fontsize=7, loc="lower right")
    _style(ax)
    return fig


def branch_basins(result, *, state: str | int | None = None) -> Figure:
    """A branch annotated with basin fractions: above, its bifurcation diagram with
    the points used coloured by the fraction of starts reaching them; below, the
    fractions ± standard errors against the parameter."""
    from ._bifurcation import _state_index, bifurcation_diagram

    fig = Figure(figsize=(5.4, 6.0), dpi=150, layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    branch = result.branch
    bifurcation_diagram(branch, state=state, ax=top)
    idx, _ = _state_index(branch, state)
    ys = branch.y_max if hasattr(branch, "y_max") else branch.ys
    dots = top.scatter(result.values, np.asarray(ys)[result.index, idx],
                       c=result.fractions, cmap="viridis", vmin=0.0, vmax=1.0,
                       s=36, edgecolors="k", linewidths=0.5, zorder=6)  # fmt: skip
    fig.colorbar(dots, ax=top, label="basin fraction")
    top.set_xlabel("")
    for k in np.unique(result.piece):
        on = result.piece == k
        bottom.errorbar(result.values[on], result.fractions[on],
                        yerr=result.stderr[on], fmt="o-", ms=4, capsize=2,
                        color="C0", lw=1)  # fmt: skip
    bottom.set_ylim(-0.02, 1.02)
    bottom.set_xlabel(branch.param)
    bottom.set_ylabel("basin fraction")
    _style(bottom)
    return fig
