"""The `ramp` task of `dynsim run`: noisy runs while a parameter drifts through a
bifurcation, and their early-warning indicators."""

from __future__ import annotations

import jax.random as jr
import numpy as np

from ._run import Outcome

#: `[ramp]` keys passed on to `dynsim.analysis.ews`.
EWS_KEYS = ("window", "bandwidth", "detrend", "lags", "indicators")


def run_ramp(cfg, model, progress, say, **_) -> Outcome:
    from ..analysis import ramp_experiment
    from ..solvers import Status

    c = dict(cfg.ramp)
    start, stop = c["span"]
    options = {k: c[k] for k in EWS_KEYS if k in c}
    if options.get("detrend") == "none":
        options["detrend"] = None
    solver = dict(cfg.solver)
    say(
        f"ramping {c['param']} of {cfg.model_name} from {start:g} to {stop:g} over "
        f"t = {cfg.t_span}, {c.get('realisations', 16)} noisy runs ..."
    )
    result = ramp_experiment(
        model,
        c["param"],
        start,
        stop,
        cfg.t_span,
        sigma=c.get("sigma", 0.1),
        realisations=c.get("realisations", 16),
        state=c.get("state", 0),
        transition=c.get("transition"),
        null=c.get("null", True),
        saveat=cfg.saveat or 1001,
        solver=solver.get("name"),
        dt0=solver.get("dt0"),
        key=jr.key(cfg.seed),
        progress=progress,
        config=cfg.text,
        **options,
    )
    say(f"  {result}")
    outcome = Outcome([(cfg.name, result)])
    kept = 0 if result.ews is None else np.atleast_2d(result.ews.trend).shape[0]
    outcome.usable = kept > 0
    if kept < result.status.size:
        bad = result.status[result.status != Status.SUCCESS]
        outcome.failures.append(
            f"{result.status.size - kept} of {result.status.size} ramp runs failed "
            f"before the transition (status {sorted(set(bad.tolist()))})"
        )
    return outcome
