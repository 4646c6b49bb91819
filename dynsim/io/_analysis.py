"""HDF5 storage of analysis results: phase diagrams, branches, cycles, curves,
Lyapunov spectra, early-warning indicators and ramp experiments."""

from __future__ import annotations

import json
from typing import Any

import h5py
import numpy as np

from ..analysis import (
    Bifurcation,
    Branch,
    Curve,
    CycleBranch,
    EWSResult,
    LyapunovSpectrum,
    PhaseDiagram,
    RampExperiment,
)
from ..analysis._phase_diagram import KIND_NAMES
from ._common import dataset, read, read_info, write_info


def _write_phase_diagram(g: h5py.Group, r: PhaseDiagram) -> None:
    write_info(g, "phase_diagram", r.info)
    g.attrs["method"] = r.method
    g.attrs["x_name"] = r.x_name
    g.attrs["y_name"] = r.y_name
    g.attrs["kind_codes"] = json.dumps(KIND_NAMES)
    dataset(g, "x", r.x, [r.x_name])
    dataset(g, "y", r.y, [r.y_name])
    for name in ("growth", "frequency", "kind", "amplitude"):
        dataset(g, name, getattr(r, name), [r.x_name, r.y_name])


def _read_phase_diagram(g: h5py.Group) -> PhaseDiagram:
    return PhaseDiagram(
        x_name=str(g.attrs["x_name"]),
        x=read(g["x"]),
        y_name=str(g.attrs["y_name"]),
        y=read(g["y"]),
        growth=read(g["growth"]),
        frequency=read(g["frequency"]),
        kind=read(g["kind"]),
        amplitude=read(g["amplitude"]),
        method=str(g.attrs["method"]),
        info=read_info(g),
    )


def _write_points(g: h5py.Group, points) -> None:
    g.attrs["points"] = json.dumps([b.to_dict() for b in points])


def _read_points(g: h5py.Group) -> tuple[Bifurcation, ...]:
    return tuple(Bifurcation.from_dict(d) for d in json.loads(g.attrs["points"]))


def _write_branch(g: h5py.Group, r: Branch) -> None:
    write_info(g, "branch", r.info)
    g.attrs["param"] = r.param
    g.attrs["status"] = int(r.status)
    g.attrs["message"] = r.message
    _write_points(g, r.points)
    dataset(g, "p", r.p, ["point"])
    dataset(g, "ys", r.ys, ["point", "state"])
    dataset(g, "eigenvalues", r.eigenvalues, ["point", "eigenvalue"])
    dataset(g, "n_unstable", r.n_unstable, ["point"])


def _read_branch(g: h5py.Group) -> Branch:
    return Branch(
        param=str(g.attrs["param"]),
        p=read(g["p"]),
        ys=read(g["ys"]),
        eigenvalues=read(g["eigenvalues"]),
        n_unstable=read(g["n_unstable"]),
        points=_read_points(g),
        status=int(g.attrs["status"]),
        message=str(g.attrs["message"]),
        info=read_info(g),
    )


_CYCLE_ARRAYS = {
    "p": ["point"],
    "period": ["point"],
    "x0": ["point", "state"],
    "y_max": ["point", "state"],
    "y_min": ["point", "state"],
    "multipliers": ["point", "multiplier"],
    "trivial_error": ["point"],
    "stable": ["point"],
}


def _write_cycles(g: h5py.Group, r: CycleBranch) -> None:
    write_info(g, "cycle_branch", r.info)
    g.attrs["param"] = r.param
    g.attrs["status"] = int(r.status)
    g.attrs["message"] = r.message
    _write_points(g, r.points)
    for name, axes in _CYCLE_ARRAYS.items():
        dataset(g, name, getattr(r, name), axes)


def _read_cycles(g: h5py.Group) -> CycleBranch:
    return CycleBranch(
        param=str(g.attrs["param"]),
        points=_read_points(g),
        status=int(g.attrs["status"]),
        message=str(g.attrs["message"]),
        info=read_info(g),
        **{name: read(g[name]) for name in _CYCLE_ARRAYS},
    )


def _write_curve(g: h5py.Group, r: Curve) -> None:
    write_info(g, "curve", r.info)
    g.attrs["curve_kind"] = r.kind
    g.attrs["params"] = json.dumps(list(r.params))
    g.attrs["status"] = int(r.status)
    g.attrs["message"] = r.message
    dataset(g, "values", r.values, ["point", "parameter"])
    dataset(g, "ys", r.ys, ["point", "state"])
    dataset(g, "frequency", r.frequency, ["point"])


def _read_curve(g: h5py.Group) -> Curve:
    return Curve(
        kind=str(g.attrs["curve_kind"]),
        params=tuple(json.loads(g.attrs["params"])),
        values=read(g["values"]),
        ys=read(g["ys"]),
        frequency=read(g["frequency"]),
        status=int(g.attrs["status"]),
        message=str(g.attrs["message"]),
        info=read_info(g),
    )


def _write_lyapunov(g: h5py.Group, r: LyapunovSpectrum) -> None:
    write_info(g, "lyapunov", r.info)
    g.attrs["method"] = r.method
    g.attrs["units"] = r.units
    g.attrs["axes"] = json.dumps(list(r.params))
    if r.fit_range is not None:
        g.attrs["fit_range"] = np.asarray(r.fit_range, float)
    grid = list(r.params) and ["point"]
    dataset(g, "exponents", r.exponents, [*grid, "exponent"])
    dataset(g, "stderr", r.stderr, [*grid, "exponent"])
    dataset(g, "running", r.running, [*grid, "renormalisation", "exponent"])
    dataset(g, "times", r.times, ["renormalisation"])
    p = g.create_group("params")
    for k, v in r.params.items():
        dataset(p, k, v, ["point"])


def _read_lyapunov(g: h5py.Group) -> LyapunovSpectrum:
    axes = json.loads(g.attrs["axes"])
    return LyapunovSpectrum(
        exponents=read(g["exponents"]),
        stderr=read(g["stderr"]),
        running=read(g["running"]),
        times=read(g["times"]),
        params={k: read(g["params"][k]) for k in axes},
        method=str(g.attrs["method"]),
        info=read_info(g),
        units=str(g.attrs["units"]),
        fit_range=tuple(g.attrs["fit_range"]) if "fit_range" in g.attrs else None,
    )


def _write_ews(g: h5py.Group, r: EWSResult) -> None:
    # Not tied to a model: the provenance attributes say so.
    g.attrs["kind"] = "ews"
    g.attrs["window"] = int(r.window)
    g.attrs["bandwidth"] = -1.0 if r.bandwidth is None else float(r.bandwidth)
    g.attrs["conventions"] = json.dumps(dict(r.conventions))
    g.attrs["names"] = json.dumps(list(r.indicators))
    g.attrs["detrend"] = "none" if r.detrend is None else r.detrend
    two_d = np.atleast_2d
    if r.times is not None:
        dataset(g, "times", np.asarray(r.times), ["time"])
    dataset(g, "trend", two_d(r.trend), ["series", "time"])
    dataset(g, "residuals", two_d(r.residuals), ["series", "time"])
    for group, values in (
        ("indicators", r.indicators),
        ("kendall_tau", r.kendall_tau),
        ("p_value", r.p_value),
    ):
        sub = g.create_group(group)
        for k, v in values.items():
            dataset(sub, k, np.asarray(v), ["series", "time"][-np.ndim(v) - 1 :])


def _read_ews(g: h5py.Group) -> EWSResult:
    bw = float(g.attrs["bandwidth"])
    return EWSResult(
        indicators={k: read(v) for k, v in g["indicators"].items()},
        kendall_tau={k: read(v) for k, v in g["kendall_tau"].items()},
        trend=read(g["trend"]),
        residuals=read(g["residuals"]),
        window=int(g.attrs["window"]),
        bandwidth=None if bw < 0 else bw,
        conventions=json.loads(g.attrs["conventions"]),
        p_value={k: read(v) for k, v in g["p_value"].items()},
        times=read(g["times"]) if "times" in g else None,
        detrend=None if g.attrs["detrend"] == "none" else str(g.attrs["detrend"]),
    )


def _write_ramp(g: h5py.Group, r: RampExperiment) -> None:
    write_info(g, "ramp", r.info)
    g.attrs["param"], g.attrs["state"] = r.param, r.state
    g.attrs["bifurcation"] = r.kind  # "kind" is the run's own kind
    for k in ("start", "stop", "transition", "t_transition"):
        g.attrs[k] = float(getattr(r, k))
    dataset(g, "values", r.values, ["time"])
    dataset(g, "status", r.status, ["run"])
    _write_ews(g.create_group("ews"), r.ews)
    if r.null is not None:
        _write_ews(g.create_group("null"), r.null)


def _read_ramp(g: h5py.Group) -> RampExperiment:
    a = g.attrs
    return RampExperiment(
        ews=_read_ews(g["ews"]),
        null=_read_ews(g["null"]) if "null" in g else None,
        param=str(a["param"]),
        start=float(a["start"]),
        stop=float(a["stop"]),
        values=read(g["values"]),
        transition=float(a["transition"]),
        kind=str(a["bifurcation"]),
        t_transition=float(a["t_transition"]),
        state=str(a["state"]),
        status=read(g["status"]),
        info=read_info(g),
    )


WRITERS: dict[type, Any] = {
    PhaseDiagram: _write_phase_diagram,
    Branch: _write_branch,
    CycleBranch: _write_cycles,
    Curve: _write_curve,
    LyapunovSpectrum: _write_lyapunov,
    EWSResult: _write_ews,
    RampExperiment: _write_ramp,
}
READERS: dict[str, Any] = {
    "phase_diagram": _read_phase_diagram,
    "branch": _read_branch,
    "cycle_branch": _read_cycles,
    "curve": _read_curve,
    "lyapunov": _read_lyapunov,
    "ews": _read_ews,
    "ramp": _read_ramp,
}
