"""Bifurcation diagrams: branches of equilibria and cycles, two-parameter curves,
and scan-based orbit diagrams."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .._results import ScanResult
from ..analysis import Branch, Curve, CycleBranch
from ._plots import _new_axes, _style, _title

_MARKERS = {
    "fold": ("o", "tab:red"),
    "hopf": ("s", "tab:blue"),
    "branch_point": ("D", "tab:green"),
    "pitchfork": ("D", "tab:green"),
    "transcritical": ("D", "tab:olive"),
    "cycle_fold": ("o", "tab:purple"),
    "period_doubling": ("^", "tab:orange"),
}


def _state_index(result: Any, state: str | int | None) -> tuple[int, str]:
    names = result.info.state_names
    if state is None:
        return 0, names[0]
    if isinstance(state, str):
        if state not in names:
            raise ValueError(
                f"unknown state {state!r}; states: {', '.join(names[:10])}"
            )
        return names.index(state), state
    return int(state), names[int(state)]


def _segments(x: np.ndarray, y: np.ndarray, stable: np.ndarray, cuts=None):
    """Runs of equal stability, each sharing its end point with the next. `cuts`:
    index i -> (x, y) of a located special point between points i − 1 and i where
    the stability changes: the runs then meet there, so that the line style changes
    at the bifurcation and not at the next computed point."""
    x, y, stable = list(x), list(y), list(stable)
    cuts = cuts or {}
    start = 0
    for i in range(1, len(x) + 1):
        if i < len(x) and stable[i] == stable[start]:
            continue
        if i < len(x) and i in cuts:
            xb, yb = cuts[i]
            yield (
                np.array(x[start:i] + [xb]),
                np.array(y[start:i] + [yb]),
                bool(stable[start]),
            )
            # The next run starts at the point, with the stability that follows it.
            x[i - 1], y[i - 1], stable[i - 1] = xb, yb, stable[i]
            start = i - 1
        else:
            stop = min(i + 1, len(x))
            yield np.array(x[start:stop]), np.array(y[start:stop]), bool(stable[start])
            start = i


def _cuts(r, values: np.ndarray, idx: int | None = None) -> dict:
    """Where a branch's stability changes at a located point: index -> (p, y), with
    y the point's own state component `idx`, or (envelopes of cycles, idx None)
    interpolated on the drawn curve."""
    out = {}
    for b in r.points:
        i = int(b.index)
        if not 0 < i < len(r.p) or r.stable[i - 1] == r.stable[i]:
            continue
        if idx is not None:
            yb = float(b.y[idx])
        else:
            p0, p1 = r.p[i - 1], r.p[i]
            # At a fold p hardly moves between the two points: keep the point
            # between them (extrapolating in p would throw it far off).
            w = 0.5 if p1 == p0 else float(np.clip((b.value - p0) / (p1 - p0), 0, 1))
            yb = float(values[i - 1] + w * (values[i] - values[i - 1]))
        out[i] = (float(b.value), yb)
    return out


def bifurcation_diagram(
    *results: Branch | CycleBranch | Curve,
    state: str | int | None = None,
    ax: Axes | None = None,
) -> Figure:
    """The diagram a paper prints: branches of equilibria (one state against the
    parameter; stable solid, unstable dashed), cycles as their max/min envelopes,
    and labelled special points (LP fold, H Hopf, PF pitchfork, BP branch point,
    LPC fold of cycles, PD period doubling). Two-parameter `Curve`s are drawn in
    their parameter plane instead (all results must then be curves)."""
    if not results:
        raise ValueError("bifurcation_diagram needs at least one result")
    if all(isinstance(r, Curve) for r in results):
        return _curves(results, ax)
    if any(isinstance(r, Curve) for r in results):
        raise ValueError("draw two-parameter curves apart from one-parameter branches")
    fig, ax = _new_axes(ax, size=(5.4, 4.0))
    idx, name = _state_index(results[0], state)
    labelled: set[str] = set()
    for i, r in enumerate(results):
        colour = f"C{i}"
        if isinstance(r, Branch):
            cuts = _cuts(r, r.ys[:, idx], idx)
            for x, y, stable in _segments(r.p, r.ys[:, idx], r.stable, cuts):
                ax.plot(x, y, color=colour, lw=1.4, ls="-" if stable else "--")
        elif isinstance(r, CycleBranch):
            for env in (r.y_max, r.y_min):
                cuts = _cuts(r, env[:, idx])
                for x, y, stable in _segments(r.p, env[:, idx], r.stable, cuts):
                    ax.plot(x, y, color=colour, lw=1.0, ls="-" if stable else ":")
        else:
            raise TypeError(f"cannot draw a {type(r).__name__}")
        for b in r.points:
            marker, c = _MARKERS[b.kind]
            ax.plot(b.value, b.y[idx], marker, color=c, ms=5, zorder=5)
            text = b.label + (f" ({b.criticality[:3]}.)" if b.criticality else "")
            ax.annotate(
                text,
                (b.value, b.y[idx]),
                xytext=(4, 4),
                textcoords="offset points",
                fontsize=7,
            )
            labelled.add(b.kind)
    handles = [
        Line2D([], [], color="k", ls="-", label="stable"),
        Line2D([], [], color="k", ls="--", label="unstable equilibria"),
    ]
    if any(isinstance(r, CycleBranch) for r in results):
        handles.append(
            Line2D([], [], color="k", ls=":", label="unstable cycles (max/min)")
        )
    ax.legend(handles=handles, frameon=False, fontsize=7)
    ax.set_xlabel(results[0].param)
    ax.set_ylabel(name)
    ax.set_title(_title(results[0].info))
    _style(ax)
    return fig


def _curves(curves, ax) -> Figure:
    fig, ax = _new_axes(ax, size=(5.0, 4.0))
    names = {"hopf": "Hopf", "fold": "fold", "cycle_fold": "fold of cycles"}
    for i, c in enumerate(curves):
        ax.plot(
            c.values[:, 0],
            c.values[:, 1],
            color=f"C{i}",
            lw=1.4,
            label=f"{names[c.bifurcation]} curve",
        )
        for q in c.points:
            ax.plot(*q.values, "o", color="k", ms=4, zorder=3)
            ax.annotate(q.label, q.values, xytext=(4, 4),
                        textcoords="offset points", fontsize=8)  # fmt: skip
    ax.set_xlabel(curves[0].params[0])
    ax.set_ylabel(curves[0].params[1])
    ax.set_title(_title(curves[0].info))
    ax.legend(frameon=False, fontsize=8)
    _style(ax)
    return fig


def orbit_diagram(
    result: ScanResult, observable: str = "peaks", *, ax: Axes | None = None
) -> Figure:
    """The orbit diagram of a one-parameter scan: each point's local maxima after
    the transient (a `Peaks` observable) against the parameter."""
    if len(result.axes) != 1:
        raise ValueError("an orbit diagram needs a scan over one parameter")
    if observable not in result.values:
        raise ValueError(
            f"no observable {observable!r}; the scan has: {', '.join(result.values)}"
        )
    fig, ax = _new_axes(ax, size=(6.0, 4.0))
    p = np.asarray(result.params[result.axes[0]], float)
    peaks = np.asarray(result.values[observable], float)
    x = np.broadcast_to(p[:, None], peaks.shape)
    ok = np.isfinite(peaks)
    ax.plot(x[ok], peaks[ok], ",", color="k", alpha=0.6, rasterized=True)
    ax.set_xlabel(result.axes[0])
    ax.set_ylabel(f"{observable} (local maxima)")
    ax.set_title(_title(result.info))
    _style(ax)
    return fig
