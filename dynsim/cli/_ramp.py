"""The `ramp` task of `dynsim run`: noisy runs while a parameter drifts through a
bifurcation, their early-warning indicators, and the EWS panel."""

from __future__ import annotations

import time
from pathlib import Path

import jax.random as jr

from .. import io
from ..analysis import ramp_experiment
from ..plot import save_figures

#: `[ramp]` keys passed on to `dynsim.analysis.ews`.
EWS_KEYS = ("window", "bandwidth", "detrend", "lags", "indicators")


def run_ramp(cfg, model, out: Path, figures, progress, say) -> tuple[Path, list]:
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
    begin = time.perf_counter()
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
    io.save(result, out, cfg.name, overwrite=True)
    say(f"wrote run {cfg.name!r} to {out}  ({time.perf_counter() - begin:.1f} s)")
    paths: list[Path] = []
    if cfg.figures if figures is None else figures:
        paths = save_figures(result, out.parent, cfg.name)
        for p in paths:
            say(f"figure: {p}")
    return out, paths
