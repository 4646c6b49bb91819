"""Ramped-parameter experiments: noisy runs while a parameter drifts slowly towards a
bifurcation, and the early-warning indicators up to the transition."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax
import numpy as np

from dynsim.models import AdditiveNoise, Ramp
from dynsim.solvers import Status

from .._custom_types import Flow, Key, Span
from .._protocol import AbstractResult, checked, freeze_fields
from .._results import RunInfo
from .._scan import scan
from ._continuation import continuation
from ._ews import EWSResult, ews

#: The bifurcations a ramp is cut at (the first one met from `start`).
TRANSITIONS = ("fold", "hopf", "pitchfork", "transcritical", "branch_point")


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class RampExperiment(AbstractResult):
    """Early-warning indicators of noisy ramps through a bifurcation.

    - `ews`: the indicators of every usable realisation, up to the transition (None
      when every run failed before it); `null`: those of as many runs with the
      parameter held at `start` (or None).
    - `param`, `start`, `stop`: the ramp, linear over `t_span`; `values`: the
      parameter at the kept sample times (`ews.times`).
    - `transition`: the bifurcation's parameter value (located by continuation
      unless given; NaN when none lies on the ramp: the whole series is used) and
      its `bifurcation` ("fold", "hopf", ..., or "given"); `t_transition`: the time
      the ramp reaches it.
    - `state`: the observed state; `run_status`: the solver status of each ramp
      run; `status`: per run, `SUCCESS` where the run is used and its solver
      status where it failed before the transition (left out of `ews`); runs that
      failed after it (past a fold) are used.
    - `info`: provenance of the ramp model and solver.
    """

    ews: EWSResult | None
    null: EWSResult | None
    param: str
    start: float
    stop: float
    values: np.ndarray
    transition: float
    bifurcation: str
    t_transition: float
    state: str
    status: np.ndarray
    run_status: np.ndarray
    info: RunInfo

    kind: ClassVar[str] = "ramp"
    dims: ClassVar = {
        "values": ("time",),
        "status": ("run",),
        "run_status": ("run",),
    }

    def __post_init__(self):
        freeze_fields(self)

    @property
    def message(self) -> str:
        return self.status_message

    def figures(self, **options):
        from ..plot import ews_panel, kendall_summary

        if self.ews is None:
            raise ValueError(f"no figure: {self.message}")
        return [("ews", ews_panel(self)), ("kendall", kendall_summary(self))]

    def __repr__(self) -> str:
        if self.ews is None:
            return (
                f"RampExperiment({self.param} {self.start:g} → {self.stop:g}, "
                f"no usable run; {self.message})"
            )
        taus = ", ".join(
            f"{k}: τ={np.median(v):+.2f}"
            + (
                f" (null {np.median(self.null.kendall_tau[k]):+.2f})"
                if self.null is not None
                else ""
            )
            for k, v in self.ews.kendall_tau.items()
            if k in ("variance", "ac1")
        )
        return (
            f"RampExperiment({self.param} {self.start:g} → {self.stop:g}, "
            f"{self.bifurcation or 'no bifurcation'} at {self.transition:.6g}, "
            f"{np.atleast_2d(self.ews.trend).shape[0]} runs; median {taus})"
        )


def _locate(model, param, start, stop) -> tuple[float, str]:
    """The first bifurcation on the equilibrium branch from `start` towards `stop`."""
    branch = continuation(model, param, (start, stop), progress=False)
    for b in branch.points:
        if b.kind in TRANSITIONS:
            return float(b.value), b.kind
    return float("nan"), ""


def _usable(runs, keep, index, what) -> tuple[np.ndarray, np.ndarray]:
    """The observed state of the runs that are finite up to the transition (a run
    may fail after it, e.g. blow up on the far side of a fold: that is kept), and
    which runs those are."""
    ys = np.asarray(runs.ys)
    series = ys.reshape((-1,) + ys.shape[-2:])[:, keep, index]
    ok = np.all(np.isfinite(series), axis=1)
    return series[ok], ok


def ramp_experiment(
    model: Flow,
    param: str,
    start: float,
    stop: float,
    t_span: Span = (0.0, 1000.0),
    *,
    sigma: float = 0.1,
    realisations: int = 16,
    state: str | int = 0,
    transition: float | None = None,
    null: bool = True,
    saveat: int = 1001,
    solver: str | None = None,
    dt0: float | None = None,
    key: Key | None = None,
    progress: bool | None = None,
    config: str | None = None,
    throw: bool = False,
    **ews_options: Any,
) -> RampExperiment:
    """Simulate `realisations` runs of `model` with additive noise `sigma` while
    `param` moves linearly from `start` to `stop` over `t_span`, and compute the
    early-warning indicators of the observed `state` up to the transition.

    The transition is the first fold, Hopf or branch point on the equilibrium
    branch of `model` from `start` towards `stop`, located by `continuation` from
    the model's initial state, unless `transition` gives its parameter value.

    **Arguments:** `null`: also run as many realisations with the parameter held
    at `start` (the control a trend is judged against); `saveat`: samples over
    `t_span`; `solver`, `dt0`: the SDE solver (default Euler–Maruyama-type with
    dt0 = (t1 − t0)/(20·saveat)); `key`: the PRNG key; `ews_options`: passed to
    `ews` (window, detrend, bandwidth, lags, indicators, ...).

    `throw=True` raises `RuntimeError` (with the `message`) instead of returning a
    result that is not `ok`.

    **Returns:** a `RampExperiment`.

    **Raises:** `ValueError` for an unknown parameter or state, `start == stop`, a
    transition before the ramp has `window` samples. Runs that fail before the
    transition are left out of the indicators (their `status` says why); when every
    run fails, there are none (`ews` is None).
    """
    if start == stop:
        raise ValueError(f"the ramp needs start != stop, got {start} twice")
    if realisations < 1 or not sigma > 0:
        raise ValueError("realisations must be >= 1 and sigma > 0")
    names = tuple(model.state_names)
    if isinstance(state, str):
        if state not in names:
            raise ValueError(f"unknown state {state!r}; the model has {names}")
        index = names.index(state)
    else:
        index = int(state)
        if not 0 <= index < len(names):
            raise ValueError(f"state index {index} out of range for {names}")
    t0, t1 = map(float, t_span)
    ramp = Ramp(model, param, start=start, stop=stop, t0=t0, t1=t1)
    if transition is None:
        transition, kind = _locate(model, param, start, stop)
    else:
        transition, kind = float(transition), "given"
    frac = (transition - start) / (stop - start)
    t_cut = t0 + frac * (t1 - t0) if 0.0 <= frac <= 1.0 else t1
    key = jax.random.key(0) if key is None else key
    k_ramp, k_null = jax.random.split(key)
    opts = dict(
        saveat=saveat,
        solver=solver,
        dt0=(t1 - t0) / (20 * saveat) if dt0 is None else dt0,
        progress=progress,
        realisations=realisations,
    )
    runs = scan(
        AdditiveNoise(ramp, sigma=sigma),
        {},
        (t0, t1),
        key=k_ramp,
        config=config,
        **opts,
    )
    ts = np.asarray(runs.ts)
    keep = ts <= t_cut + 1e-12 * (t1 - t0)
    series, used = _usable(runs, keep, index, "ramp")
    result = ews(series, times=ts[keep], **ews_options) if used.any() else None
    control = None
    if null:
        held = scan(AdditiveNoise(model, sigma=sigma), {}, (t0, t1), key=k_null, **opts)
        held_series, held_ok = _usable(held, keep, index, "null")
        if held_ok.any():
            control = ews(held_series, times=ts[keep], **ews_options)
    solved = np.asarray(runs.status)[0]
    return checked(
        RampExperiment(
            ews=result,
            null=control,
            param=param,
            start=float(start),
            stop=float(stop),
            values=np.asarray(jax.vmap(ramp.value)(ts[keep])),
            transition=transition,
            bifurcation=kind,
            t_transition=float(t_cut),
            state=names[index],
            status=np.where(
                used,
                int(Status.SUCCESS),
                np.where(solved == Status.SUCCESS, int(Status.NONFINITE), solved),
            ),
            run_status=solved,
            info=runs.info,
        ),
        throw,
    )
