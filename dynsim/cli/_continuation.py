"""The `continuation` task of `dynsim run`: branches, switched branches, cycles and
two-parameter curves, each a run of the results file."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._run import Outcome


def run_continuation(cfg, model, progress, say, **_) -> Outcome:
    from ..analysis import (
        bifurcation_curve,
        continuation,
        cycle_continuation,
        switch_branch,
    )

    c = cfg.continuation
    param, span = c["param"], tuple(c["span"])
    opts = {k: c[k] for k in ("ds", "ds_max", "max_points", "n_eigenvalues") if k in c}
    say(f"continuation of {cfg.model_name} in {param} over {span} ...")
    outcome = Outcome()
    runs: list[tuple[str, Any]] = []

    def keep(what: str, suffix: str, result: Any) -> bool:
        """Record a result: kept when it holds anything, a failure when not ok."""
        usable = bool(np.size(getattr(result, "p", getattr(result, "values", []))))
        if not result.ok:
            say(f"  {what}: {result.message}")
            outcome.failures.append(f"{what}: {result.message}")
        if usable:
            say(f"  {result}")
            runs.append((suffix, result))
        return usable

    branch = continuation(model, param, span, y0=c.get("y0"), progress=progress, **opts)
    if not keep("the continuation", "branch", branch):
        outcome.usable = False
        return outcome
    branches = [branch]
    if c.get("switch", True):
        for i, bp in enumerate(b for b in branch.points if b.direction is not None):
            for direction, tag in ((1, "a"), (-1, "b")):
                other = switch_branch(
                    branch, bp, direction=direction, progress=progress, **opts
                )
                if keep(f"switching at {bp!r} ({tag})", f"branch{i + 1}{tag}", other):
                    branches.append(other)
    if c.get("cycles", False):
        hopfs = [h for b in branches for h in b.special("hopf")]
        for i, h in enumerate(hopfs):
            if h.criticality == "degenerate":
                say(f"  no cycles from the degenerate {h!r}")
                continue
            cyc = cycle_continuation(
                model,
                param,
                tuple(c.get("cycle_span", span)),
                hopf=h,
                method=c.get("cycle_method", "collocation"),
                progress=progress,
                **{k: c[f"cycle_{k}"] for k in ("intervals",) if f"cycle_{k}" in c},
            )
            keep(f"cycles from {h!r}", f"cycles{i + 1}", cyc)
    if "curve_param" in c:
        spans = {param: span, c["curve_param"]: tuple(c["curve_span"])}
        starts = [p for b in branches for p in b.points if p.kind in ("hopf", "fold")]
        for i, pt in enumerate(starts):
            if pt.criticality == "degenerate" and pt.kind == "hopf":
                continue
            curve = bifurcation_curve(branch, pt, c["curve_param"], spans)
            keep(f"the curve through {pt!r}", f"curve{i + 1}", curve)
    outcome.runs = [(f"{cfg.name}_{suffix}", r) for suffix, r in runs]
    return outcome
