"""The `continuation` task of `dynsim run`: branches, switched branches, cycles and
two-parameter curves, each saved as a run, and the bifurcation diagram."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import io
from ..analysis import (
    bifurcation_curve,
    continuation,
    cycle_continuation,
    switch_branch,
)
from ..plot import bifurcation_diagram


def run_continuation(
    cfg, model, out: Path, figures, progress, say
) -> tuple[Path, list]:
    c = cfg.continuation
    param, span = c["param"], tuple(c["span"])
    opts = {k: c[k] for k in ("ds", "ds_max", "max_points", "k") if k in c}
    say(f"continuation of {cfg.model_name} in {param} over {span} ...")
    branch = continuation(model, param, span, y0=c.get("y0"), progress=progress, **opts)
    say(f"  {branch}")
    runs: list[tuple[str, Any]] = [("branch", branch)]
    branches = [branch]
    if c.get("switch", True):
        for i, bp in enumerate(b for b in branch.points if b.direction is not None):
            for direction, tag in ((1, "a"), (-1, "b")):
                try:
                    other = switch_branch(branch, bp, direction=direction, **opts)
                except RuntimeError as e:
                    say(f"  switching at {bp!r} ({tag}) failed: {e}")
                    continue
                say(f"  switched at {bp!r}: {other}")
                runs.append((f"branch{i + 1}{tag}", other))
                branches.append(other)
    cycles = []
    if c.get("cycles", False):
        hopfs = [h for b in branches for h in b.special("hopf")]
        for i, h in enumerate(hopfs):
            if h.criticality == "degenerate":
                say(f"  no cycles from the degenerate {h!r}")
                continue
            try:
                cyc = cycle_continuation(
                    model,
                    param,
                    tuple(c.get("cycle_span", span)),
                    hopf=h,
                    progress=progress,
                )
            except RuntimeError as e:
                say(f"  cycles from {h!r} failed: {e}")
                continue
            say(f"  cycles from {h!r}: {cyc}")
            runs.append((f"cycles{i + 1}", cyc))
            cycles.append(cyc)
    curves = []
    if "curve_param" in c:
        spans = {param: span, c["curve_param"]: tuple(c["curve_span"])}
        starts = [p for b in branches for p in b.points if p.kind in ("hopf", "fold")]
        for i, pt in enumerate(starts):
            if pt.criticality == "degenerate" and pt.kind == "hopf":
                continue
            try:
                curve = bifurcation_curve(branch, pt, c["curve_param"], spans)
            except RuntimeError as e:
                say(f"  the curve through {pt!r} failed: {e}")
                continue
            say(f"  {curve}")
            runs.append((f"curve{i + 1}", curve))
            curves.append(curve)
    for suffix, result in runs:
        io.save(result, out, f"{cfg.name}_{suffix}", overwrite=True)
    say(f"wrote {len(runs)} run(s) to {out}")
    paths: list[Path] = []
    if cfg.figures if figures is None else figures:
        out.parent.mkdir(parents=True, exist_ok=True)
        path = out.parent / f"{cfg.name}_bifurcation.png"
        bifurcation_diagram(*branches, *cycles, state=c.get("state")).savefig(path)
        paths.append(path)
        if curves:
            path = out.parent / f"{cfg.name}_curves.png"
            bifurcation_diagram(*curves).savefig(path)
            paths.append(path)
        for p in paths:
            say(f"figure: {p}")
    return out, paths
