"""Readers of runs written with format version 1 (before the result protocol), when
each result type had its own layout. Runs of version 2 are read generically
(`_generic.py`); a version-1 run is one without the `fields` attribute."""

from __future__ import annotations

import json

import h5py
import numpy as np

from .._results import ScanResult, Trajectory
from ..analysis import (
    Bifurcation,
    Branch,
    Curve,
    CycleBranch,
    EWSResult,
    LyapunovSpectrum,
    RampExperiment,
)
from ..analysis.selkov import PhaseDiagram
from ..solvers import Status
from ._common import FormatError, read, read_info

# Version 1 stored continuation statuses in their own numbering.
_V1_CONTINUATION = {
    0: Status.SPAN_REACHED,
    1: Status.MAX_POINTS,
    2: Status.STEP_TOO_SMALL,
    3: Status.NO_CONVERGENCE,
    4: Status.CLOSED,
    5: Status.TURNED_BACK,
}


def _continuation_status(code: int) -> int:
    return int(_V1_CONTINUATION[code])


def _read_phase_diagram(g: h5py.Group) -> PhaseDiagram:
    return PhaseDiagram(
        x_name=str(g.attrs["x_name"]),
        x=read(g["x"]),
        y_name=str(g.attrs["y_name"]),
        y=read(g["y"]),
        growth=read(g["growth"]),
        frequency=read(g["frequency"]),
        mode=read(g["kind"]),
        amplitude=read(g["amplitude"]),
        method=str(g.attrs["method"]),
        info=read_info(g),
    )


def _read_points(g: h5py.Group) -> tuple[Bifurcation, ...]:
    return tuple(Bifurcation.from_dict(d) for d in json.loads(g.attrs["points"]))


def _read_branch(g: h5py.Group) -> Branch:
    return Branch(
        param=str(g.attrs["param"]),
        p=read(g["p"]),
        ys=read(g["ys"]),
        eigenvalues=read(g["eigenvalues"]),
        n_unstable=read(g["n_unstable"]),
        points=_read_points(g),
        status=_continuation_status(int(g.attrs["status"])),
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


def _read_cycles(g: h5py.Group) -> CycleBranch:
    return CycleBranch(
        param=str(g.attrs["param"]),
        points=_read_points(g),
        status=_continuation_status(int(g.attrs["status"])),
        message=str(g.attrs["message"]),
        info=read_info(g),
        **{name: read(g[name]) for name in _CYCLE_ARRAYS},
    )


def _read_curve(g: h5py.Group) -> Curve:
    return Curve(
        bifurcation=str(g.attrs["curve_kind"]),
        params=tuple(json.loads(g.attrs["params"])),
        values=read(g["values"]),
        ys=read(g["ys"]),
        frequency=read(g["frequency"]),
        status=_continuation_status(int(g.attrs["status"])),
        message=str(g.attrs["message"]),
        info=read_info(g),
    )


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
        bifurcation=str(a["bifurcation"]),
        t_transition=float(a["t_transition"]),
        state=str(a["state"]),
        status=np.zeros_like(read(g["status"])),
        run_status=read(g["status"]),
        info=read_info(g),
    )


def _read_trajectory(g: h5py.Group) -> Trajectory:
    return Trajectory(
        ts=read(g["ts"]),
        ys=read(g["ys"]),
        status=read(g["status"]),
        stats={k: read(v) for k, v in g["stats"].items()},
        info=read_info(g),
    )


def _read_scan(g: h5py.Group) -> ScanResult:
    axes = tuple(json.loads(g.attrs["axes"]))
    return ScanResult(
        # Parameter datasets in the scan's axis order (HDF5 lists them by name).
        params={k: read(g["params"][k]) for k in axes},
        axes=axes,
        shape=tuple(json.loads(g.attrs["shape"])),
        grid=bool(g.attrs["grid"]),
        status=read(g["status"]),
        stats={k: read(v) for k, v in g["stats"].items()},
        values={k: read(v) for k, v in g["observables"].items()},
        ts=read(g["ts"]) if "ts" in g else None,
        ys=read(g["ys"]) if "ys" in g else None,
        info=read_info(g),
        realisations=int(g.attrs.get("realisations", 1)),
    )


READERS = {
    "trajectory": _read_trajectory,
    "scan": _read_scan,
    "phase_diagram": _read_phase_diagram,
    "branch": _read_branch,
    "cycle_branch": _read_cycles,
    "curve": _read_curve,
    "lyapunov": _read_lyapunov,
    "ews": _read_ews,
    "ramp": _read_ramp,
}


def read_v1(g: h5py.Group):
    """The result in a version-1 run group.

    **Raises:** `FormatError` for an unknown kind.
    """
    kind = str(g.attrs.get("kind", ""))
    reader = READERS.get(kind)
    if reader is None:
        raise FormatError(f"{g.file.filename}:{g.name}: unknown result kind {kind!r}")
    return reader(g)
