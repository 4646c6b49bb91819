"""Figures of chaos and early-warning analyses: Lyapunov exponents, the
early-warning panel, and the Kendall τ of ramps against their null runs."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ._plots import _new_axes, _style, _title


def lyapunov(result: Any, *, ax: Axes | None = None) -> Figure:
    """Lyapunov exponents: for one model the running estimates against time (their
    convergence), for a parameter scan the exponents against the parameter with
    their standard errors."""
    fig, ax = _new_axes(ax, size=(5.4, 3.8))
    k = result.exponents.shape[-1]
    if result.method == "rosenstein":
        _divergence_curve(ax, result)
    elif not result.params:
        for i in range(k):
            ax.plot(result.times, result.running[:, i], lw=1.0, label=f"λ{i + 1}")
        ax.set_xscale("log")
        ax.set_xlabel("averaging time")
    else:
        name = next(iter(result.params))
        p = np.asarray(result.params[name])
        for i in range(k):
            ax.errorbar(
                p,
                result.exponents[:, i],
                yerr=result.stderr[:, i],
                fmt=".-",
                ms=3,
                lw=0.8,
                label=f"λ{i + 1}",
            )
        ax.axhline(0.0, color="0.5", lw=0.6)
        ax.set_xlabel(name)
    if result.method != "rosenstein":
        ax.set_ylabel(f"exponent ({result.units.split(',')[0]})")
    ax.set_title(_title(result.info))
    ax.legend(frameon=False, fontsize=8)
    _style(ax)
    return fig


def _divergence_curve(ax: Axes, result: Any) -> None:
    """Rosenstein's mean log divergence with the fitted line over its range."""
    curves = np.asarray(result.running)[..., 0].reshape(-1, result.times.size)
    slopes = np.atleast_1d(result.exponents[..., 0])
    t0, t1 = result.fit_range
    use = (result.times >= t0) & (result.times <= t1)
    for i, (curve, lam) in enumerate(zip(curves, slopes, strict=True)):
        ax.plot(result.times, curve, lw=1.0, color=f"C{i % 10}")
        tt = result.times[use]
        fit = curve[use].mean() + lam * (tt - tt.mean())
        ax.plot(
            tt,
            fit,
            "--",
            lw=1.0,
            color="k",
            label=f"slope {lam:.4f}" if i < 4 else None,
        )
    ax.axvspan(t0, t1, color="0.92", zorder=0)
    ax.set_xlabel("time")
    ax.set_ylabel("⟨ln divergence⟩")


def ews_panel(result: Any, series: int = 0, names: Any = None) -> Figure:
    """The classic early-warning panel for one series of an `EWSResult` or a
    `RampExperiment`: the series and its trend (for a ramp, with the parameter on
    the top axis), then each indicator (default variance and lag-1
    autocorrelation) against time, with its Kendall τ — and, when there are
    several series, which one is drawn and the median τ over all of them (the
    number a summary quotes)."""
    ramp = result if result.kind == "ramp" else None
    r = ramp.ews if ramp is not None else result
    trend = np.atleast_2d(r.trend)[series]
    res = np.atleast_2d(r.residuals)[series]
    names = (
        list(names)
        if names is not None
        else [k for k in ("variance", "ac1") if k in r.indicators]
    )
    fig = Figure(figsize=(5.4, 1.6 * (len(names) + 1.5)), dpi=150, layout="constrained")
    axes = fig.subplots(len(names) + 1, 1, sharex=True)
    t = np.arange(trend.size) if r.times is None else np.asarray(r.times)
    n_series = np.atleast_2d(r.trend).shape[0]
    which = f"series {series + 1} of {n_series}" if n_series > 1 else "series"
    axes[0].plot(t, trend + res, lw=0.7, color="0.3", label=which)
    axes[0].plot(t, trend, lw=1.2, color="C3", label="trend")
    axes[0].legend(frameon=False, fontsize=7)
    if ramp is not None:
        axes[0].set_ylabel(ramp.state)
        # The ramp is linear in time: p = p₀ + rate (t − t₀), both ways unclipped.
        p0, rate = ramp.values[0], (ramp.values[-1] - ramp.values[0]) / (t[-1] - t[0])
        top = axes[0].secondary_xaxis(
            "top",
            functions=(
                lambda x: p0 + rate * (x - t[0]),
                lambda p: t[0] + (p - p0) / rate,
            ),
        )
        top.set_xlabel(ramp.param)
    for ax, name in zip(axes[1:], names, strict=True):
        values = np.atleast_2d(r.indicators[name])[series]
        taus = np.atleast_1d(r.kendall_tau[name])
        tau = taus[series]
        ax.plot(t, values, lw=1.0, color="C0")
        ax.set_ylabel(name)
        text = f"Kendall τ = {tau:+.2f}"
        if taus.size > 1:
            text += f" (series {series + 1}); median {np.nanmedian(taus):+.2f} over "
            text += f"{taus.size} series"
        ax.text(0.02, 0.85, text, transform=ax.transAxes, fontsize=7)
    axes[-1].set_xlabel("time" if r.times is not None else "index")
    for ax in axes:
        _style(ax)
    return fig


def kendall_summary(result: Any, names: Any = None) -> Figure:
    """Kendall τ of each indicator over the realisations of a `RampExperiment`,
    the ramp against its null runs (parameter held fixed): one dot per run."""
    names = list(names) if names is not None else list(result.ews.kendall_tau)
    fig, ax = _new_axes(None, size=(1.0 + 0.75 * len(names), 3.2))
    rng = np.random.default_rng(0)
    groups = [("ramp", result.ews, "C3", -0.17)]
    if result.null is not None:
        groups.append(("null", result.null, "0.45", 0.17))
    for label, r, colour, shift in groups:
        for i, name in enumerate(names):
            tau = np.atleast_1d(r.kendall_tau[name])
            x = i + shift + rng.uniform(-0.07, 0.07, tau.size)
            ax.plot(x, tau, ".", ms=4, color=colour, label=label if i == 0 else None)
            ax.plot(
                [i + shift - 0.12, i + shift + 0.12],
                [np.median(tau)] * 2,
                color=colour,
                lw=1.5,
            )
    ax.axhline(0.0, color="0.7", lw=0.6)
    ax.set_xticks(range(len(names)), names, rotation=30, fontsize=8)
    ax.set_ylim(-1, 1)
    ax.set_ylabel("Kendall τ")
    to = (
        f"{result.bifurcation} at {result.transition:.4g}"
        if result.bifurcation
        else "the end"
    )
    ax.set_title(f"{result.param} ramped to the {to}", fontsize=9)
    ax.legend(frameon=False, fontsize=7)
    _style(ax)
    return fig
