"""Publication-style figures of results (matplotlib's object API; no global state)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .._results import ScanResult, Trajectory


def _new_axes(ax: Axes | None, size=(5.0, 3.6)) -> tuple[Figure, Axes]:
    if ax is not None:
        fig = ax.get_figure()
        assert isinstance(fig, Figure)
        return fig, ax
    fig = Figure(figsize=size, dpi=150, layout="constrained")
    return fig, fig.add_subplot()


def _style(ax: Axes) -> None:
    ax.spines["top"].set_visible(False)
    ax.spines["right"].set_visible(False)


def _title(info) -> str:
    return info.model.rsplit(".", 1)[-1]


def time_series(
    traj: Trajectory, states: Sequence[str] | None = None, *, ax: Axes | None = None
) -> Figure:
    """The state components against time (or iterate index for maps)."""
    fig, ax = _new_axes(ax)
    names = traj.state_names
    states = list(states) if states is not None else list(names[:8])
    ts = np.asarray(traj.ts)
    finite = np.isfinite(ts)
    map_like = traj.info.solver_settings.get("name") == "iterate"
    for name in states:
        y = np.asarray(traj[name])
        if map_like:
            ax.plot(ts[finite], y[finite], ".", ms=2, label=name)
        else:
            ax.plot(ts[finite], y[finite], lw=1.0, label=name)
    ax.set_xlabel("iterate n" if map_like else "time t")
    ax.set_ylabel("state")
    ax.set_title(_title(traj.info))
    if len(states) > 1:
        ax.legend(frameon=False, fontsize=8)
    _style(ax)
    return fig


def phase_portrait(
    traj: Trajectory,
    x: str | None = None,
    y: str | None = None,
    *,
    ax: Axes | None = None,
) -> Figure:
    """One state component against another."""
    names = traj.state_names
    if len(names) < 2:
        raise ValueError("a phase portrait needs at least two state components")
    x = names[0] if x is None else x
    y = names[1] if y is None else y
    fig, ax = _new_axes(ax, size=(4.2, 3.8))
    xs, ys = np.asarray(traj[x]), np.asarray(traj[y])
    keep = np.isfinite(xs) & np.isfinite(ys)
    map_like = traj.info.solver_settings.get("name") == "iterate"
    if map_like:
        ax.plot(xs[keep], ys[keep], ".", ms=1.5, color="k")
    else:
        ax.plot(xs[keep], ys[keep], lw=0.7, color="k")
        ax.plot(xs[keep][:1], ys[keep][:1], "o", color="C3", ms=4, label="start")
        ax.legend(frameon=False, fontsize=8)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(_title(traj.info))
    _style(ax)
    return fig


def scan_heatmap(
    result: ScanResult,
    observable: str,
    *,
    x: str | None = None,
    y: str | None = None,
    component: int | None = None,
    curves: Mapping[str, tuple[Any, Any]] | None = None,
    threshold: float | None = None,
    ax: Axes | None = None,
) -> Figure:
    """A 2-D grid scan's observable as a colour map over (x, y), with failed points
    hatched, optional theory curves `label -> (x_values, y_values)` overlaid and,
    with `threshold`, the contour where the observable crosses it."""
    if not result.grid or len(result.axes) != 2:
        raise ValueError("a heat map needs a 2-D grid scan")
    if observable not in result.values:
        raise KeyError(
            f"no observable {observable!r}; have {', '.join(result.values) or 'none'}"
        )
    x = result.axes[0] if x is None else x
    y = result.axes[1] if y is None else y
    if {x, y} != set(result.axes):
        raise ValueError(f"x and y must be the scan axes {result.axes}")
    z = result.reshape(result.values[observable])
    if z.ndim == 3:
        z = z[..., 0 if component is None else component]
    if result.axes.index(x) == 0:
        z = z.T  # rows are y, columns are x
    xs, ys = result.axis_values(x), result.axis_values(y)
    fig, ax = _new_axes(ax, size=(5.2, 4.0))
    mesh = ax.pcolormesh(xs, ys, z, shading="nearest", cmap="magma", rasterized=True)
    fig.colorbar(mesh, ax=ax, label=observable)
    failed = ~result.reshape(result.ok_mask)
    if result.axes.index(x) == 0:
        failed = failed.T
    if failed.any():
        ax.contourf(
            xs,
            ys,
            failed.astype(float),
            levels=[0.5, 1.5],
            colors="none",
            hatches=["xxx"],
        )
    if threshold is not None and np.nanmax(z) > threshold > np.nanmin(z):
        ax.contour(
            xs, ys, z, levels=[threshold], colors="w", linewidths=0.8, linestyles=":"
        )
    for i, (label, (cx, cy)) in enumerate((curves or {}).items()):
        cx, cy = np.asarray(cx), np.asarray(cy)
        ax.plot(cx, cy, ls="--", lw=1.6, color=("c", "lime", "w")[i % 3], label=label)
    if curves:
        ax.legend(frameon=True, fontsize=8, loc="best")
    ax.set_xlim(xs.min(), xs.max())
    ax.set_ylim(ys.min(), ys.max())
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(f"{_title(result.info)}: {observable}")
    return fig


def scan_line(
    result: ScanResult,
    observable: str,
    *,
    component: int | None = None,
    ax: Axes | None = None,
) -> Figure:
    """A 1-D scan's observable against its parameter."""
    if len(result.axes) != 1:
        raise ValueError("a line plot needs a 1-D scan")
    p = result.axes[0]
    v = np.asarray(result.values[observable])
    if v.ndim == 2:
        v = v[:, 0 if component is None else component]
    fig, ax = _new_axes(ax)
    order = np.argsort(result.params[p])
    ax.plot(result.params[p][order], v[order], ".-", ms=3, lw=0.8, color="k")
    bad = ~result.ok_mask
    if bad.any():
        ax.plot(
            result.params[p][bad], np.zeros(bad.sum()), "x", color="C3", label="failed"
        )
        ax.legend(frameon=False)
    ax.set_xlabel(p)
    ax.set_ylabel(observable)
    ax.set_title(_title(result.info))
    _style(ax)
    return fig


def save_figures(
    result: Any, directory: str | Path, stem: str, **options: Any
) -> list[Path]:
    """Draw a result's standard figures (its `figures(**options)`) and save them as
    PNG files `<stem>_<suffix>.png`.

    **Arguments:** `result` (any `dynsim.AbstractResult`); `directory` and file
    `stem`; `options` for the result's `figures` (a scan takes `curves_for`, a model
    whose `analytic_curves` are overlaid on 2-D heat maps, and `threshold` for
    heat-map contours; other results ignore what they do not use).

    **Returns:** the paths written.

    **Raises:** `ValueError` saying why when the result has no standard figure
    (e.g. a scan over three parameters), `TypeError` for a non-result.
    """
    from .._protocol import AbstractResult

    if not isinstance(result, AbstractResult):
        raise TypeError(f"no figures for a {type(result).__name__}: not a result")
    figs = result.figures(**options)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for suffix, fig in figs:
        path = directory / f"{stem}_{suffix}.png"
        fig.savefig(path)
        paths.append(path)
    return paths


def scan_figures(
    result: ScanResult, *, curves_for: Any = None, threshold: float | None = None
) -> list[tuple[str, Figure]]:
    """A scan's standard figures: per observable a heat map (2-D grid), an orbit
    diagram (1-D scan of a sequence-valued observable) or a line (1-D scan).

    **Raises:** `ValueError` saying why when there is none.
    """
    from ._bifurcation import orbit_diagram

    figs: list[tuple[str, Figure]] = []
    for name in result.values:
        if result.grid and len(result.axes) == 2:
            x, y = result.axes
            curves = None
            if curves_for is not None:
                curves = curves_for.analytic_curves(x, y, result.axis_values(y))
            figs.append(
                (
                    name,
                    scan_heatmap(
                        result, name, x=x, y=y, curves=curves, threshold=threshold
                    ),
                )
            )
        elif len(result.axes) == 1 and np.ndim(result.values[name]) == 2:
            figs.append((name, orbit_diagram(result, name)))
        elif len(result.axes) == 1:
            figs.append((name, scan_line(result, name)))
    if figs:
        return figs
    if not result.values:
        raise ValueError(
            "a scan of saved states (no observables) has no standard figure; "
            "draw result.ys, or scan with observables"
        )
    raise ValueError(
        f"a scan over {len(result.axes)} parameters "
        f"({', '.join(result.axes)}) has no standard figure: heat maps need a "
        "2-D grid scan, line plots and orbit diagrams a 1-D scan"
    )


_KIND_COLOURS = {1: "#3b75af", 2: "#e1812c"}
_KIND_LABELS = {1: "in-phase", 2: "anti-phase"}


def _count_axis(values: np.ndarray) -> bool:
    """An axis of counts (e.g. the number of cells m): integers one apart."""
    v = np.asarray(values, float)
    return (
        v.size >= 2
        and np.allclose(v, np.round(v))
        and np.allclose(np.diff(np.sort(v)), 1.0)
    )


def _nearest_mode(mode: np.ndarray) -> np.ndarray:
    """The mode of every cell: its own where unstable, else that of the nearest
    unstable cell (so that a mode's shading ends where its growth rate crosses 0,
    not at cell edges)."""
    unstable = np.argwhere((mode == 1) | (mode == 2))
    if unstable.size == 0:
        return mode.copy()
    grid = np.indices(mode.shape).reshape(2, -1).T
    d = ((grid[:, None, :] - unstable[None, :, :]) ** 2).sum(-1)
    nearest = unstable[np.argmin(d, axis=1)]
    return mode[nearest[:, 0], nearest[:, 1]].reshape(mode.shape)


def _log_ticks(axis, values: np.ndarray) -> None:
    """Readable ticks on a log axis spanning less than two decades."""
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    if np.log10(values.max() / values.min()) < 2:
        axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        fmt = ScalarFormatter()
        fmt.set_scientific(False)
        axis.set_major_formatter(fmt)
        axis.set_minor_formatter(NullFormatter())


def phase_diagram(*results: Any, ax: Axes | None = None) -> Figure:
    """Stability lobes: the first result's unstable regions shaded by mode (in-phase,
    anti-phase), bounded by its Re λ = 0 contour; further results overlaid
    (eigenvalue methods as contours, simulations as markers). An axis of counts
    (the number of cells m) is drawn as discrete cells, not interpolated."""
    if not results:
        raise ValueError("phase_diagram needs at least one PhaseDiagram")
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    fig, ax = _new_axes(ax, size=(5.4, 4.2))
    base = results[0]
    xs, ys = base.x, base.y
    X, Y = np.meshgrid(xs, ys, indexing="ij")
    discrete = _count_axis(xs) or _count_axis(ys)
    smooth = not discrete and np.isfinite(base.growth).all()
    handles = []
    mode = _nearest_mode(base.mode) if smooth else base.mode
    counts = _count_axis(xs) != _count_axis(ys) and np.isfinite(base.growth).all()
    for code, colour in _KIND_COLOURS.items():
        if not (base.mode == code).any():
            continue
        if smooth:
            # Shade where this mode grows: its edge is the Re λ = 0 contour itself.
            z = np.where(mode == code, base.growth, -np.abs(base.growth))
            ax.contourf(X, Y, z, levels=[0.0, np.inf], colors=[colour], alpha=0.35)
        elif counts:
            _count_bars(ax, base, _nearest_mode(base.mode) == code, colour)
        else:
            mask = np.where(base.mode == code, 1.0, np.nan)
            ax.pcolormesh(
                X, Y, mask, shading="nearest", cmap=_solid(colour), alpha=0.35
            )
        handles.append(
            Patch(
                color=colour, alpha=0.35, label=f"{_KIND_LABELS[code]} ({base.method})"
            )
        )
    failed = base.mode == 3
    if failed.any():
        handles.append(
            ax.scatter(
                X[failed], Y[failed], s=14, marker="s", facecolors="none",
                edgecolors="C3", linewidths=0.8, label=f"failed ({base.method})",
            )
        )  # fmt: skip
    styles = ["-", "--", ":", "-."]
    for i, r in enumerate(results):
        Xr, Yr = np.meshgrid(r.x, r.y, indexing="ij")
        if r.method == "simulate" or discrete:
            markers = ((1, "o"), (2, "x")) if r.method == "simulate" else ()
            for code, marker in markers:
                sel = r.mode == code
                if sel.any():
                    h = ax.scatter(
                        Xr[sel],
                        Yr[sel],
                        s=9,
                        marker=marker,
                        color="k",
                        linewidths=0.8,
                        label=f"oscillates, {_KIND_LABELS[code]} (simulation)",
                    )
                    handles.append(h)
        elif np.isfinite(r.growth).any() and np.nanmax(r.growth) > 0 > np.nanmin(
            r.growth
        ):
            ax.contour(
                Xr,
                Yr,
                r.growth,
                levels=[0.0],
                colors="k",
                linestyles=styles[i % 4],
                linewidths=1.2,
            )
            handles.append(
                Line2D(
                    [], [], color="k", ls=styles[i % 4], label=f"Re λ = 0 ({r.method})"
                )
            )
    for values, axis, scale in (
        (xs, ax.xaxis, ax.set_xscale),
        (ys, ax.yaxis, ax.set_yscale),
    ):
        if _count_axis(values):
            axis.set_major_locator(_integer_locator())
        elif (
            values.size > 2
            and np.all(values > 0)
            and np.allclose(np.diff(np.log(values)), np.log(values[1] / values[0]))
        ):
            scale("log")
            _log_ticks(axis, values)
    ax.set_xlabel(base.x_name)
    ax.set_ylabel(base.y_name)
    ax.set_title(f"{_title(base.info)}: where the steady state is unstable")
    ax.legend(handles=handles, fontsize=7, frameon=True, loc="best")
    return fig


def _intervals(values: np.ndarray, g: np.ndarray) -> list[tuple[float, float]]:
    """Where g > 0 along `values`, with the ends interpolated linearly at g = 0."""
    out = []
    inside = g > 0
    i = 0
    while i < g.size:
        if not inside[i]:
            i += 1
            continue
        j = i
        while j + 1 < g.size and inside[j + 1]:
            j += 1

        def cross(a, b):
            return values[a] + (values[b] - values[a]) * g[a] / (g[a] - g[b])

        lo = values[i] if i == 0 else cross(i - 1, i)
        hi = values[j] if j == g.size - 1 else cross(j, j + 1)
        out.append((float(lo), float(hi)))
        i = j + 1
    return out


def _count_bars(ax: Axes, r: Any, mask: np.ndarray, colour: str) -> None:
    """One bar per count (m cells) spanning where Re λ > 0 along the other axis,
    its ends interpolated at Re λ = 0 along that axis only."""
    along_y = _count_axis(r.x)
    counts, other = (r.x, r.y) if along_y else (r.y, r.x)
    g = r.growth if along_y else r.growth.T
    m = mask if along_y else mask.T
    for k, count in enumerate(counts):
        for lo, hi in _intervals(other, np.where(m[k], g[k], -np.abs(g[k]))):
            if along_y:
                ax.bar(count, hi - lo, bottom=lo, width=0.8, color=colour, alpha=0.35)
            else:
                ax.barh(count, hi - lo, left=lo, height=0.8, color=colour, alpha=0.35)


def _integer_locator():
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(integer=True)


def _solid(colour: str):
    from matplotlib.colors import ListedColormap

    return ListedColormap([colour])
