"""The `dynsim` command line: run, demo, inspect, plot.

Heavy imports (JAX, the solvers, matplotlib) happen inside the commands, so that
`dynsim --help` and `dynsim --version` answer at once.

Exit codes: 0 success; 2 a usage error (bad arguments, config or file: nothing
computed); 3 results written but some points or runs failed; 4 no usable result
(every point failed, or nothing could be drawn); 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

DEMO_CONFIG = "demo.toml"
EXIT_OK, EXIT_USAGE, EXIT_PARTIAL, EXIT_FAILED, EXIT_INTERRUPTED = 0, 2, 3, 4, 130

_EPILOG = """\
exit codes:
  0    success
  2    usage error: bad arguments, config or results file (nothing computed)
  3    results written, but some points or runs failed (see the summary)
  4    no usable result (every point failed, or nothing to draw)
  130  interrupted (Ctrl-C)
"""


def _say(msg: str) -> None:
    print(msg, flush=True)


def _cmd_run(args: argparse.Namespace) -> int:
    from ._config import load_config
    from ._run import execute

    cfg = load_config(args.config)
    _, _, code = execute(
        cfg,
        output=args.output,
        figures=False if args.no_figures else None,
        overwrite=args.overwrite,
        scheduler=args.scheduler,
        say=_say,
    )
    return code


def _cmd_demo(args: argparse.Namespace) -> int:
    from importlib import resources

    from ._config import parse_config
    from ._run import execute

    text = resources.files("dynsim.configs").joinpath(DEMO_CONFIG).read_text()
    cfg = parse_config(text, DEMO_CONFIG)
    output = Path(args.output_dir) / cfg.output.name if args.output_dir else None
    _say(f"dynsim demo: the embedded config {DEMO_CONFIG}")
    # The demo is run again and again: it replaces its own earlier results.
    _, _, code = execute(cfg, output=output, overwrite=True, say=_say)
    return code


def _cmd_inspect(args: argparse.Namespace) -> int:
    import json
    from collections.abc import Mapping

    import numpy as np

    from .. import io
    from .._store import unfinished

    path = Path(args.file)
    pending = unfinished(path)
    for name, done, total in pending:
        _say(
            f"  {name}: unfinished scan, {done} of {total} chunks done, "
            f"{total - done} pending (the same command again resumes it)"
        )
    if not path.exists():
        if pending:
            return EXIT_OK
        raise FileNotFoundError(f"no such file: {path}")
    listing = io.runs(path)
    _say(f"{path}: dynsim results file with {len(listing)} run(s)")
    for name in listing:
        result = io.load(path, name)
        attrs = io.attributes(path, name)
        _say(f"  {name}: {result!r}")
        if "model" in attrs:  # not an analysis of data
            _say(
                f"    model   {attrs['model']}  params "
                f"{json.dumps(attrs['model_params'].get('params', {}))}"
            )
            _say(f"    solver  {json.dumps(attrs['solver'])}")
            _say(
                f"    created {attrs['created']}  versions "
                f"{', '.join(f'{k} {v}' for k, v in attrs['versions'].items())}"
            )
        if not result.ok:
            from ._run import failure_summary

            params = getattr(result, "params", None)
            per_point = isinstance(params, Mapping) and np.ndim(result.status) >= 1
            per_point = per_point and all(
                np.shape(v) == np.shape(result.status) for v in params.values()
            )
            if per_point:
                _say(f"    failed points: {failure_summary(result)}")
            else:
                _say(f"    not ok: {result.message}")
    return EXIT_OK


def _cmd_plot(args: argparse.Namespace) -> int:
    from .. import io
    from ._figures import draw

    path = Path(args.file)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    listing = io.runs(path)
    if args.run is not None and args.run not in listing:
        raise KeyError(f"{path} has no run {args.run!r}; runs: {', '.join(listing)}")
    names = [args.run] if args.run else list(listing)
    outdir = Path(args.out) if args.out else path.parent
    paths, undrawn = draw(path, names, outdir, _say)
    for p in paths:
        _say(f"figure: {p}")
    if not paths:
        return EXIT_FAILED
    return EXIT_PARTIAL if undrawn else EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    from importlib.metadata import PackageNotFoundError, version

    try:
        own = version("dynsim")
    except PackageNotFoundError:
        own = "unknown"
    parser = argparse.ArgumentParser(
        prog="dynsim",
        description="Simulate, scan and analyse dynamical systems (JAX + diffrax).",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"dynsim {own}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "run",
        help="run a TOML config (simulate, scan, phase diagram, continuation, ramp)",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("config", help="path to the config file")
    p.add_argument("--output", type=Path, help="HDF5 file (overrides [run] output)")
    p.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace this config's runs (and figures) from an earlier run",
    )
    p.add_argument(
        "--scheduler",
        help="run a scan's chunks on a Dask cluster: a scheduler address "
        "(tcp://host:8786) or local:N (N local worker processes); overrides "
        "[execution] scheduler",
    )
    p.set_defaults(func=_cmd_run)
    p = sub.add_parser("demo", help="run the embedded default config")
    p.add_argument("--output-dir", help="directory for the results (default results/)")
    p.set_defaults(func=_cmd_demo)
    p = sub.add_parser("inspect", help="summarise a results file")
    p.add_argument("file")
    p.set_defaults(func=_cmd_inspect)
    p = sub.add_parser(
        "plot", help="draw the figures of a results file (those `run` drew)"
    )
    p.add_argument("file")
    p.add_argument("--run", help="one run name (default: all)")
    p.add_argument("--out", help="directory for the PNGs (default: beside the file)")
    p.set_defaults(func=_cmd_plot)
    return parser


def main(argv: list[str] | None = None) -> int:
    """The `dynsim` command. **Returns:** the exit code (see the module doc)."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("dynsim: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`dynsim inspect ... | head`): stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except Exception as e:
        message = _usage_error(e)
        if message is None:
            raise
        print(f"dynsim: error: {message}", file=sys.stderr)
        return EXIT_USAGE


def _usage_error(e: Exception) -> str | None:
    """The one-line message of an error that is the user's to fix, else None."""
    from ._config import ConfigError

    if isinstance(e, KeyError) and e.args:
        return str(e.args[0])
    if isinstance(e, (ConfigError, FileNotFoundError, ValueError)):
        return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if isinstance(e, MemoryError):
        return str(e) or "out of memory"
    return None
