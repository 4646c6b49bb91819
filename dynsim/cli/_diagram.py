"""The `bifurcation_diagram` task of `dynsim run`: every branch reachable from the
equilibria of the span's start, each streamed into the results file as it finishes
(a re-run reloads the finished ones)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ._run import Outcome, _with_config


def run_diagram(
    cfg, model, progress, say, *, out: Path, overwrite: bool, **_
) -> Outcome:
    from .. import io
    from ..analysis import bifurcation_diagram

    c = cfg.bifurcation_diagram
    param, span = c["param"], tuple(c["span"])
    prefix = f"{cfg.name}_"
    if overwrite and out.exists():
        io.delete(out, [n for n in io.runs(out) if n.startswith(prefix)])
    eq = {k: c[k] for k in ("ds_max", "max_points") if k in c}
    cyc = {"max_points": c["cycle_max_points"]} if "cycle_max_points" in c else {}
    say(f"bifurcation diagram of {cfg.model_name} in {param} over {span} ...")
    diagram = bifurcation_diagram(
        model,
        param,
        span,
        depth=c.get("depth", 2),
        cycles=c.get("cycles", True),
        store=out,
        name=prefix,
        continuation_options=eq,
        cycle_options=cyc,
        progress=progress,
    )
    outcome = Outcome()
    for branch, result in diagram.branches.items():
        say(f"  {branch}: {result}")
        if not result.ok:
            outcome.failures.append(f"{branch}: {result.message}")
        # Streamed without the config: recorded now (what `dynsim plot` reads).
        io.update_info(out, prefix + branch, _with_config(result, cfg.text).info)
        outcome.runs.append((prefix + branch, result))
    outcome.saved = {name for name, _ in outcome.runs}
    if diagram.dropped:
        say(f"  retraced, not kept: {', '.join(diagram.dropped)}")
    outcome.usable = bool(outcome.runs)
    return outcome


def draw_diagram(path: Path, names: list[str], outdir: Path, cfg: Any) -> list[Path]:
    """One figure of every branch of the diagram."""
    from .. import io
    from ..plot import bifurcation_diagram

    figure = outdir / f"{cfg.name}_bifurcation.png"
    results = [io.load(path, n) for n in names]
    state = cfg.bifurcation_diagram.get("state")
    bifurcation_diagram(*results, state=state).savefig(figure)
    return [figure]
