"""The figures of a results file, drawn the same way by `dynsim run` (after saving)
and `dynsim plot` (later): runs written from one config are drawn together, as that
config's task draws them (all phase-diagram methods in one figure, every branch of
a continuation in one bifurcation diagram), with the config's `[plot]` settings."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any


class NoFigure(ValueError):
    """A run that has no standard figure; the message says why."""


def draw(
    path: Path,
    names: list[str],
    outdir: Path,
    say: Callable[[str], None],
) -> tuple[list[Path], list[str]]:
    """Draw the figures of the runs `names` of the file at `path` into `outdir`.

    **Returns:** the PNG paths written, and the runs that have no figure (each
    reported through `say` with the reason).
    """
    from .. import io

    groups: dict[str | None, list[str]] = {}
    for name in names:
        config = io.attributes(path, name).get("config")
        groups.setdefault(config if isinstance(config, str) else None, []).append(name)
    outdir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    undrawn: list[str] = []
    for config, members in groups.items():
        cfg = _parse(config)
        if cfg is not None and cfg.task in _DRAWERS:
            paths += _DRAWERS[cfg.task]()(path, members, outdir, cfg)
            continue
        for name in members:
            try:
                paths += _one(path, name, outdir, cfg)
            except NoFigure as e:
                say(f"no figure for run {name!r}: {e}")
                undrawn.append(name)
    return paths, undrawn


def _diagram_drawer():
    from ._diagram import draw_diagram

    return draw_diagram


#: Tasks whose runs make one figure together: task -> (a function giving) the drawer.
_DRAWERS: dict[str, Callable[[], Callable[..., list]]] = {
    "phase_diagram": lambda: _phase_diagrams,
    "continuation": lambda: _continuation,
    "bifurcation_diagram": _diagram_drawer,
}


def _parse(config: str | None) -> Any:
    if config is None:
        return None
    from ._config import ConfigError, parse_config

    try:
        return parse_config(config, "<stored config>", check_model=False)
    except ConfigError:
        return None  # written by another version: draw the runs one by one


def _one(path: Path, name: str, outdir: Path, cfg: Any) -> list[Path]:
    from .. import io
    from ..models import from_description
    from ..plot import save_figures

    result = io.load(path, name)
    model = None
    info = getattr(result, "info", None)
    if info is not None and (cfg is None or cfg.curves):
        try:
            model = from_description(info.params)
        except (ValueError, TypeError):
            model = None  # a user's own model type: no closed-form curves
    try:
        return save_figures(
            result,
            outdir,
            name,
            curves_for=model,
            threshold=None if cfg is None else cfg.threshold,
        )
    except ValueError as e:
        raise NoFigure(str(e)) from None


def _phase_diagrams(path: Path, names: list[str], outdir: Path, cfg: Any) -> list:
    from .. import io
    from ..plot import phase_diagram

    # In the config's method order, the reference method first.
    order = {f"{cfg.name}_{m}": i for i, m in enumerate(cfg.phase_methods)}
    names = sorted(names, key=lambda n: order.get(n, len(order)))
    results = [io.load(path, n) for n in names]
    figure = outdir / f"{cfg.name}_phase_diagram.png"
    phase_diagram(*results).savefig(figure)
    return [figure]


def _continuation(path: Path, names: list[str], outdir: Path, cfg: Any) -> list:
    from .. import io
    from ..analysis import Curve
    from ..plot import bifurcation_diagram

    results = [io.load(path, n) for n in sorted(names, key=_run_order(cfg.name))]
    curves = [r for r in results if isinstance(r, Curve)]
    branches = [r for r in results if not isinstance(r, Curve)]
    paths = []
    if branches:
        figure = outdir / f"{cfg.name}_bifurcation.png"
        state = cfg.continuation.get("state")
        bifurcation_diagram(*branches, state=state).savefig(figure)
        paths.append(figure)
    if curves:
        figure = outdir / f"{cfg.name}_curves.png"
        bifurcation_diagram(*curves).savefig(figure)
        paths.append(figure)
    return paths


def _run_order(stem: str) -> Callable[[str], tuple]:
    # branch, branch1a, branch1b, ..., cycles1, ..., curve1, ...: as they were made.
    kinds = ("branch", "cycles", "curve")

    def key(name: str) -> tuple:
        suffix = name[len(stem) + 1 :]
        for i, kind in enumerate(kinds):
            if suffix.startswith(kind):
                rest = suffix[len(kind) :]
                digits = "".join(c for c in rest if c.isdigit())
                return (i, int(digits) if digits else 0, rest)
        return (len(kinds), 0, suffix)

    return key
