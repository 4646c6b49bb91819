"""`dynsim run`: check everything a config's run needs, compute, save, draw.

Nothing is computed before the run is known to be able to finish: the config, the
parameter names, the run names, the output location (creatable, writable, a
readable dynsim file if it exists) and whether the file already holds this config's
runs (refused unless `--overwrite`) are checked first.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ._config import ConfigError, RunConfig

#: Exit codes of `dynsim run` (and `demo`, `plot`).
EXIT_OK = 0  # every point / run succeeded
EXIT_USAGE = 2  # bad arguments, config or file: nothing computed
EXIT_PARTIAL = 3  # results written, but some points or runs failed
EXIT_FAILED = 4  # no usable result (every point failed, nothing to draw)
EXIT_INTERRUPTED = 130  # Ctrl-C


@dataclasses.dataclass
class Outcome:
    """What a task produced: runs to save (name -> result) and how it went."""

    runs: list[tuple[str, Any]] = dataclasses.field(default_factory=list)
    failures: list[str] = dataclasses.field(default_factory=list)
    usable: bool = True
    saved: set[str] = dataclasses.field(default_factory=set)  # streamed into the file

    @property
    def code(self) -> int:
        if not self.usable:
            return EXIT_FAILED
        return EXIT_PARTIAL if self.failures else EXIT_OK


def planned_runs(cfg: RunConfig) -> tuple[list[str], str | None]:
    """The run names a config writes, and the prefix of runs whose number is only
    known afterwards (continuation: `<name>_branch`, `<name>_cycles1`, ...)."""
    if cfg.task == "phase_diagram":
        return [f"{cfg.name}_{m}" for m in cfg.phase_methods], None
    if cfg.task == "continuation":
        return [f"{cfg.name}_branch"], f"{cfg.name}_"
    if cfg.task == "bifurcation_diagram":
        # Its branches already in the file are the finished part of an earlier run
        # of it, reloaded (with --overwrite: recomputed).
        return [], None
    return [cfg.name], None


def preflight(cfg: RunConfig, out: Path, overwrite: bool) -> list[str]:
    """Refuse, before any compute, a run that could not be saved or would replace
    finished work.

    **Returns:** the runs of this config already in the file (to be replaced).
    **Raises:** `ConfigError` naming the problem.
    """
    from .. import io
    from ..io import check_name

    model = cfg.build_model()
    _check_parameters(cfg, model)
    names, prefix = planned_runs(cfg)
    for name in names:
        try:
            check_name(name)
        except ValueError as e:
            raise ConfigError(f"[run] name: {e}") from None
    parent = out.parent if str(out.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(
            f"cannot create the output directory {parent}: {e.strerror}"
        ) from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"the output directory {parent} is not writable")
    if not out.exists():
        return []
    if out.is_dir():
        raise ConfigError(f"the output {out} is a directory, not an HDF5 file")
    if not os.access(out, os.R_OK | os.W_OK):
        raise ConfigError(f"the output file {out} is not writable")
    existing = io.runs(out)  # FormatError / DamagedFileError: never overwritten
    clash = [n for n in existing if n in names or (prefix and n.startswith(prefix))]
    if clash and not overwrite:
        listed = ", ".join(repr(n) for n in clash[:6]) + (
            " ..." if len(clash) > 6 else ""
        )
        raise ConfigError(
            f"{out} already holds run(s) {listed} from an earlier run of this config; "
            "pass --overwrite to replace them, or set another [run] name or --output"
        )
    return clash


def _check_parameters(cfg: RunConfig, model: Any) -> None:
    from ..models import check_parameter_names

    where = {
        "scan": ("[scan] params", list(cfg.scan_params)),
        "phase_diagram": (
            "[phase_diagram] params",
            [p for p in cfg.phase_params if p != "m"],
        ),
        "continuation": (
            "[continuation]",
            [cfg.continuation.get("param")]
            + (
                [cfg.continuation["curve_param"]]
                if "curve_param" in cfg.continuation
                else []
            ),
        ),
        "ramp": ("[ramp] param", [cfg.ramp.get("param")]),
        "bifurcation_diagram": (
            "[bifurcation_diagram]",
            [cfg.bifurcation_diagram.get("param")],
        ),
    }.get(cfg.task)
    if where is None:
        return
    section, names = where
    try:
        check_parameter_names(model, names)
    except ValueError as e:
        raise ConfigError(f"{section}: {e}") from None


def execute(
    cfg: RunConfig,
    *,
    output: Path | None = None,
    figures: bool | None = None,
    overwrite: bool = False,
    progress: bool = True,
    scheduler: str | None = None,
    say: Callable[[str], None] = print,
) -> tuple[Path, list[Path], int]:
    """Run a validated config: check, compute, save to HDF5, draw the figures.

    **Returns:** the HDF5 path, the figure paths and the exit code (`EXIT_OK`,
    `EXIT_PARTIAL` when some points or runs failed, `EXIT_FAILED` when nothing
    usable came out).

    **Raises:** `ConfigError` (nothing computed) for a run that cannot be saved or
    would replace an earlier run without `overwrite`.
    """
    from .. import io

    out = Path(output) if output is not None else cfg.output
    scheduler = scheduler if scheduler is not None else cfg.scheduler
    if scheduler is not None and cfg.task != "scan":
        raise ConfigError(
            f"a scheduler runs the chunks of scans; task {cfg.task!r} has none "
            "(remove --scheduler / [execution] scheduler)"
        )
    stale = preflight(cfg, out, overwrite)
    model = cfg.build_model()
    start = time.perf_counter()
    with _cluster(scheduler, say) as client:
        outcome = _TASKS[cfg.task](
            cfg, model, progress, say, out=out, overwrite=overwrite, client=client
        )
    elapsed = time.perf_counter() - start
    if not outcome.runs:
        say(f"nothing to save ({'; '.join(outcome.failures) or 'no result'})")
        return out, [], EXIT_FAILED
    written = {name for name, _ in outcome.runs}
    if stale:
        io.delete(out, [n for n in stale if n not in written])
    for name, result in outcome.runs:
        if name not in outcome.saved:
            io.save(_with_config(result, cfg.text), out, name, overwrite=overwrite)
    what = (
        f"run {outcome.runs[0][0]!r}"
        if len(outcome.runs) == 1
        else f"{len(outcome.runs)} runs"
    )
    say(f"wrote {what} to {out}  ({elapsed:.1f} s)")
    for line in outcome.failures:
        say(f"  failed: {line}")
    paths: list[Path] = []
    code = outcome.code
    if cfg.figures if figures is None else figures:
        from ._figures import draw

        paths, _ = draw(out, [n for n, _ in outcome.runs], out.parent, say)
        for p in paths:
            say(f"figure: {p}")
    return out, paths, code


@contextlib.contextmanager
def _cluster(scheduler: str | None, say) -> Iterator[Any]:
    """A Dask client for `scheduler` (None: no cluster), closed afterwards."""
    if scheduler is None:
        yield None
        return
    from .._executor import client_for

    client, cluster = client_for(scheduler)
    n = len(client.scheduler_info().get("workers", {}))
    say(f"on the Dask cluster {scheduler} ({n} workers)")
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _with_config(result: Any, text: str) -> Any:
    """The result with the config text in its provenance (what `dynsim plot` reads
    to draw the runs of one config together, as `run` did)."""
    info = getattr(result, "info", None)
    if info is None or info.config == text:
        return result
    return dataclasses.replace(result, info=dataclasses.replace(info, config=text))


# -- tasks ---------------------------------------------------------------------


def _simulate(cfg: RunConfig, model: Any, progress: bool, say, **_) -> Outcome:
    import jax.random as jr

    from .._simulate import simulate

    solver = dict(cfg.solver)
    name = solver.pop("name", None)
    result = simulate(
        model,
        cfg.t_span,
        saveat=cfg.saveat,
        solver=name,
        key=jr.key(cfg.seed),
        throw=False,
        **solver,
    )
    say(f"simulated {result}")
    outcome = Outcome([(cfg.name, result)])
    if not result.ok:
        outcome.failures.append(f"the simulation: {result.message}")
        outcome.usable = False
    return outcome


def _scan(
    cfg: RunConfig,
    model: Any,
    progress: bool,
    say,
    *,
    out: Path,
    overwrite: bool,
    client: Any = None,
) -> Outcome:
    """A scan streamed into the results file: resumed when killed, saved there."""
    import jax.random as jr

    from .._scan import plan_scan, run_scan

    solver = dict(cfg.solver)
    name = solver.pop("name", None)
    n = (
        math.prod(v.size for v in cfg.scan_params.values())
        if cfg.scan_grid
        else len(next(iter(cfg.scan_params.values())))
    )
    axes = ", ".join(cfg.scan_params)
    say(f"scanning {n:,} points of {cfg.model_name} over {axes} ...")
    plan = plan_scan(
        model,
        cfg.scan_params,
        cfg.t_span,
        grid=cfg.scan_grid,
        observables=cfg.observables or None,
        samples=cfg.samples,
        saveat=cfg.saveat,
        solver=name,
        key=jr.key(cfg.seed),
        chunk_size=cfg.chunk_size,
        progress=progress,
        config=cfg.text,
        **solver,
    )
    # Streamed into the file and not read back: memory bounded by a chunk.
    run_scan(
        plan,
        progress=progress,
        store=out,
        name=cfg.name,
        overwrite=overwrite,
        client=client,
        load=False,
    )
    n, failed, summary = stored_failures(out, cfg.name)
    say(f"done: {n:,} points, {n - failed:,} succeeded")
    outcome = Outcome([(cfg.name, None)], saved={cfg.name})
    if failed:
        outcome.failures.append(summary)
        outcome.usable = failed < n
    return outcome


def stored_failures(path: Path, name: str) -> tuple[int, int, str]:
    """(runs, failed runs, their summary as `failure_summary` words it) of a scan
    in a results file, read in slabs (memory bounded whatever the scan's size)."""
    import h5py
    import numpy as np

    from ..solvers import Status, status_ok

    slab = 1 << 20
    counts: dict[int, int] = {}
    lo: dict[str, float] = {}
    hi: dict[str, float] = {}
    with h5py.File(path, "r") as f:
        g = f[name]
        status = g["status"]
        params = g["params"]
        n = int(np.prod(status.shape))
        per_point = status.shape[1] if status.ndim > 1 else 1
        for i in range(0, status.shape[0], max(1, slab // per_point)):
            s = status[i : i + max(1, slab // per_point)].reshape(-1, per_point)
            bad = ~status_ok(s)
            for c, k in zip(*np.unique(s[bad], return_counts=True), strict=True):
                counts[int(c)] = counts.get(int(c), 0) + int(k)
            rows = bad.any(axis=1)
            if rows.any():
                for p in params:
                    v = params[p][i : i + len(rows)][rows]
                    lo[p] = min(lo.get(p, np.inf), float(v.min()))
                    hi[p] = max(hi.get(p, -np.inf), float(v.max()))
    failed = sum(counts.values())
    by = ", ".join(f"{Status(c).name.lower()}={k}" for c, k in sorted(counts.items()))
    ranges = ", ".join(f"{p} in [{lo[p]:.4g}, {hi[p]:.4g}]" for p in lo)
    return n, failed, f"{failed} of {n} points ({by}); {ranges}"


def failure_summary(result: Any) -> str:
    """'3 of 400 points (max_steps=2, nonfinite=1); a in [1, 1.5], b in [3, 4]'."""
    import numpy as np

    from ..solvers import Status

    failed = ~np.asarray(result.ok_mask)
    codes, counts = np.unique(np.asarray(result.status)[failed], return_counts=True)
    by = ", ".join(
        f"{Status(int(c)).name.lower()}={k}" for c, k in zip(codes, counts, strict=True)
    )
    ranges = ", ".join(
        f"{p} in [{np.min(v[failed]):.4g}, {np.max(v[failed]):.4g}]"
        for p, v in result.params.items()
    )
    return f"{int(failed.sum())} of {failed.size} points ({by}); {ranges}"


def _phase_diagrams(cfg: RunConfig, model: Any, progress: bool, say, **_) -> Outcome:
    from ..analysis.selkov import phase_diagram

    t0, t1 = cfg.t_span
    t_from = (
        cfg.phase_t_from if cfg.phase_t_from is not None else t0 + 2 * (t1 - t0) / 3
    )
    solver = dict(cfg.solver)
    outcome = Outcome()
    for method in cfg.phase_methods:
        start = time.perf_counter()
        say(
            f"phase diagram of {cfg.model_name} over "
            f"{' x '.join(cfg.phase_params)} by {method} ..."
        )
        pd = phase_diagram(
            model,
            cfg.phase_params,
            method=method,
            t_span=cfg.t_span,
            t_from=t_from,
            threshold=cfg.phase_threshold,
            ring_radius=cfg.phase_ring_radius,
            solver=solver.get("name"),
            rtol=solver.get("rtol", 1e-6),
            atol=solver.get("atol", 1e-9),
            progress=progress,
            config=cfg.text,
        )
        say(f"  {pd}  ({time.perf_counter() - start:.1f} s)")
        outcome.runs.append((f"{cfg.name}_{method}", pd))
    return outcome


def _continuation(cfg: RunConfig, model: Any, progress: bool, say, **_) -> Outcome:
    from ._continuation import run_continuation

    return run_continuation(cfg, model, progress, say)


def _bifurcation_diagram(cfg: RunConfig, model: Any, progress: bool, say, **kw):
    from ._diagram import run_diagram

    return run_diagram(cfg, model, progress, say, **kw)


def _ramp(cfg: RunConfig, model: Any, progress: bool, say, **_) -> Outcome:
    from ._ramp import run_ramp

    return run_ramp(cfg, model, progress, say)


_TASKS: dict[str, Callable[..., Outcome]] = {
    "simulate": _simulate,
    "scan": _scan,
    "phase_diagram": _phase_diagrams,
    "continuation": _continuation,
    "bifurcation_diagram": _bifurcation_diagram,
    "ramp": _ramp,
}
