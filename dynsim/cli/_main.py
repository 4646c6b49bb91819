"""The `dynsim` command line: run, demo, inspect, plot."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from importlib import resources
from pathlib import Path

import jax.random as jr
import numpy as np

from .. import io
from .._results import ScanResult, Trajectory
from .._scan import scan
from .._simulate import simulate
from ..analysis import phase_diagram
from ..models import from_description
from ..plot import phase_diagram as plot_phase_diagram, save_figures
from ..solvers import Status
from ._config import ConfigError, RunConfig, load_config, parse_config
from ._continuation import run_continuation
from ._ramp import run_ramp

DEMO_CONFIG = "demo.toml"


def _say(msg: str) -> None:
    print(msg, flush=True)


def execute(
    cfg: RunConfig,
    *,
    output: Path | None = None,
    figures: bool | None = None,
    progress: bool = True,
) -> tuple[Path, list[Path]]:
    """Run a validated config: simulate or scan, save to HDF5, draw figures.

    **Returns:** the HDF5 path and the figure paths.
    """
    model = cfg.build_model()
    out = Path(output) if output is not None else cfg.output
    solver = dict(cfg.solver)
    name = solver.pop("name", None)
    key = jr.key(cfg.seed)
    start = time.perf_counter()
    if cfg.task == "phase_diagram":
        return _phase_diagrams(cfg, model, out, figures, progress)
    if cfg.task == "continuation":
        return run_continuation(cfg, model, out, figures, progress, _say)
    if cfg.task == "ramp":
        return run_ramp(cfg, model, out, figures, progress, _say)
    if cfg.task == "simulate":
        result = simulate(
            model,
            cfg.t_span,
            saveat=cfg.saveat,
            solver=name,
            key=key,
            throw=False,
            **solver,
        )
        _say(f"simulated {result}")
    else:
        n = (
            int(np.prod([v.size for v in cfg.scan_params.values()]))
            if (cfg.scan_grid)
            else len(next(iter(cfg.scan_params.values())))
        )
        _say(
            f"scanning {n} points of {cfg.model_name} over "
            f"{', '.join(cfg.scan_params)} ..."
        )
        result = scan(
            model,
            cfg.scan_params,
            cfg.t_span,
            grid=cfg.scan_grid,
            observables=cfg.observables or None,
            samples=cfg.samples,
            saveat=cfg.saveat,
            solver=name,
            key=key,
            chunk_size=cfg.chunk_size,
            progress=progress,
            config=cfg.text,
            **solver,
        )
        _say(f"done: {result}")
    elapsed = time.perf_counter() - start
    if isinstance(result, Trajectory):
        info = dataclasses.replace(result.info, config=cfg.text)
        result = Trajectory(result.ts, result.ys, result.status, result.stats, info)
    io.save(result, out, cfg.name, overwrite=True)
    _say(f"wrote run {cfg.name!r} to {out}  ({elapsed:.1f} s)")
    paths: list[Path] = []
    if cfg.figures if figures is None else figures:
        paths = save_figures(
            result,
            out.parent,
            cfg.name,
            curves_for=model if cfg.curves else None,
            threshold=cfg.threshold,
        )
        for p in paths:
            _say(f"figure: {p}")
    return out, paths


def _phase_diagrams(cfg, model, out, figures, progress):
    t0, t1 = cfg.t_span
    t_from = (
        cfg.phase_t_from if cfg.phase_t_from is not None else t0 + 2 * (t1 - t0) / 3
    )
    solver = dict(cfg.solver)
    results = []
    for method in cfg.phase_methods:
        start = time.perf_counter()
        _say(
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
        name = f"{cfg.name}_{method}"
        io.save(pd, out, name, overwrite=True)
        _say(f"  {pd}  ({time.perf_counter() - start:.1f} s) -> run {name!r} in {out}")
        results.append(pd)
    paths: list[Path] = []
    if cfg.figures if figures is None else figures:
        out.parent.mkdir(parents=True, exist_ok=True)
        path = out.parent / f"{cfg.name}_phase_diagram.png"
        plot_phase_diagram(*results).savefig(path)
        paths.append(path)
        _say(f"figure: {path}")
    return out, paths


def _cmd_run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    execute(cfg, output=args.output, figures=False if args.no_figures else None)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    text = resources.files("dynsim.configs").joinpath(DEMO_CONFIG).read_text()
    cfg = parse_config(text, DEMO_CONFIG)
    output = Path(args.output_dir) / cfg.output.name if args.output_dir else None
    _say(f"dynsim demo: the embedded config {DEMO_CONFIG}")
    execute(cfg, output=output)
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    path = Path(args.file)
    listing = io.runs(path)
    _say(f"{path}: dynsim results file with {len(listing)} run(s)")
    for name in listing:
        result = io.load(path, name)
        attrs = io.attributes(path, name)
        _say(f"  {name}: {result!r}")
        if "model" not in attrs:  # an analysis of data, not of a model
            continue
        _say(
            f"    model   {attrs['model']}  params "
            f"{json.dumps(attrs['model_params'].get('params', {}))}"
        )
        _say(f"    solver  {json.dumps(attrs['solver'])}")
        _say(
            f"    created {attrs['created']}  versions "
            f"{', '.join(f'{k} {v}' for k, v in attrs['versions'].items())}"
        )
        if isinstance(result, ScanResult) and result.n_failed:
            codes = np.unique(result.status[~result.ok])
            _say(
                f"    failed points: {result.n_failed} "
                f"({', '.join(Status(int(c)).name.lower() for c in codes)})"
            )
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    path = Path(args.file)
    names = [args.run] if args.run else list(io.runs(path))
    outdir = Path(args.out) if args.out else path.parent
    for name in names:
        result = io.load(path, name)
        model = None
        info = getattr(result, "info", None)  # data analyses have no model
        try:
            model = from_description(info.params) if info is not None else None
        except (ValueError, TypeError):
            pass  # a user's own model type: no closed-form curves to overlay
        stem = name if path.stem == name else f"{path.stem}_{name}"
        for p in save_figures(result, outdir, stem, curves_for=model):
            _say(f"figure: {p}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dynsim",
        description="Simulate, scan and analyse dynamical systems (JAX + diffrax).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "run", help="run a TOML config (simulate, scan, phase diagram, continuation)"
    )
    p.add_argument("config", help="path to the config file")
    p.add_argument("--output", type=Path, help="HDF5 file (overrides [run] output)")
    p.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    p.set_defaults(func=_cmd_run)
    p = sub.add_parser("demo", help="run the embedded default config")
    p.add_argument("--output-dir", help="directory for the results (default results/)")
    p.set_defaults(func=_cmd_demo)
    p = sub.add_parser("inspect", help="summarise a results file")
    p.add_argument("file")
    p.set_defaults(func=_cmd_inspect)
    p = sub.add_parser("plot", help="draw the figures of a results file")
    p.add_argument("file")
    p.add_argument("--run", help="one run name (default: all)")
    p.add_argument("--out", help="directory for the PNGs (default: beside the file)")
    p.set_defaults(func=_cmd_plot)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, io.FormatError, FileNotFoundError, KeyError, ValueError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"dynsim: error: {msg}", file=sys.stderr)
        return 2
