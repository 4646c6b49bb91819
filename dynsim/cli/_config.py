"""Run configurations (TOML): parsing and validation.

A config names a model, a task (`simulate` or `scan`), the solver and the output.
Every key is checked against the schema below: a misspelt or misplaced key is a
`ConfigError` whose one-line message names the key and the allowed ones.

```toml
[run]
name = "selkov"                      # run (group) name in the HDF5 file
task = "scan"                        # "simulate" | "scan"
output = "results/selkov.h5"         # relative to the working directory
figures = true
seed = 0                             # PRNG seed for SDE models

[model]
name = "Selkov"                      # a class of dynsim.models
params = { zeta = 0.15 }             # constructor arguments; a table with a
                                     # `name` key builds a nested model

[solver]
name = "tsit5"
rtol = 1e-6
atol = 1e-9

[time]
t_span = [0.0, 600.0]
saveat = 2000                        # simulate: number of saved points

[scan]
grid = true
params.alpha = { start = 0.0, stop = 1.0, num = 60 }   # or a list of values
params.mu = [0.5, 1.0, 2.0]
observables.amplitude = { kind = "amplitude", state = "v", t_from = 400.0 }

[plot]
curves = true                        # overlay the model's closed-form curves
threshold = 0.01                     # contour level on heat maps
```

Other tasks have their own section instead of `[scan]`: `[phase_diagram]`,
`[continuation]` and `[ramp]` (a noisy ramp through a bifurcation and its
early-warning indicators):

```toml
[ramp]
param = "h"                          # the parameter ramped linearly over t_span
span = [1.0, 3.0]                    # from, to
sigma = 0.1                          # additive noise on every state
realisations = 16
state = "x"                          # the observed state
transition = 2.604                   # optional: else located by continuation
null = true                          # also runs with the parameter held fixed
window = 0.25                        # ews options: window, bandwidth, detrend,
detrend = "gaussian"                 # lags, indicators
```
"""

from __future__ import annotations

import dataclasses
import difflib
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from dynsim.analysis.selkov import METHODS
from dynsim.models import model_class
from dynsim.observables import OBSERVABLE_KINDS, AbstractObservable, observable
from dynsim.solvers import SOLVERS


class ConfigError(ValueError):
    """An invalid run configuration; the message names the offending key."""


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


Check = tuple[Callable[[Any], bool], str]
_STR: Check = (lambda v: isinstance(v, str), "a string")
_BOOL: Check = (lambda v: isinstance(v, bool), "true or false")
_NUM: Check = (_is_number, "a number")
_POS_INT: Check = (lambda v: _is_int(v) and v > 0, "a positive integer")
_TABLE: Check = (lambda v: isinstance(v, dict), "a table")
_PAIR: Check = (
    lambda v: isinstance(v, list) and len(v) == 2 and all(map(_is_number, v)),
    "a pair of numbers [t0, t1]",
)

TASKS = (
    "simulate",
    "scan",
    "phase_diagram",
    "continuation",
    "bifurcation_diagram",
    "ramp",
)
_NUMBERS: Check = (
    lambda v: isinstance(v, list) and bool(v) and all(map(_is_number, v)),
    "a non-empty list of numbers",
)
_SPAN: Check = (
    lambda v: (
        isinstance(v, list) and len(v) == 2 and all(map(_is_number, v)) and v[0] != v[1]
    ),
    "a pair of different numbers [start, end]",
)

SCHEMA: dict[str, dict[str, Check]] = {
    "run": {
        "name": _STR,
        "task": (
            lambda v: v in TASKS,
            "one of " + ", ".join(repr(t) for t in TASKS),
        ),
        "output": _STR,
        "figures": _BOOL,
        "seed": (_is_int, "an integer"),
    },
    "model": {"name": _STR, "params": _TABLE},
    "execution": {"scheduler": _STR},
    "solver": {
        "name": (lambda v: v in SOLVERS, f"one of {', '.join(SOLVERS)}"),
        "rtol": _NUM,
        "atol": _NUM,
        "dt0": _NUM,
        "adaptive": _BOOL,
        "max_steps": _POS_INT,
    },
    "time": {
        "t_span": _PAIR,
        "saveat": _POS_INT,
    },
    "scan": {
        "grid": _BOOL,
        "params": _TABLE,
        "observables": _TABLE,
        "samples": _POS_INT,
        "chunk_size": _POS_INT,
    },
    "plot": {"curves": _BOOL, "threshold": _NUM},
    "phase_diagram": {
        "methods": (
            lambda v: isinstance(v, list) and v and all(m in METHODS for m in v),
            "a non-empty list of " + ", ".join(repr(m) for m in METHODS),
        ),
        "params": _TABLE,
        "t_from": _NUM,
        "threshold": _NUM,
        "ring_radius": _NUM,
    },
    "continuation": {
        "param": _STR,
        "span": _SPAN,
        "y0": _NUMBERS,
        "ds": _NUM,
        "ds_max": _NUM,
        "max_points": _POS_INT,
        "n_eigenvalues": _POS_INT,
        "switch": _BOOL,
        "cycles": _BOOL,
        "cycle_span": _SPAN,
        "cycle_method": (
            lambda v: v in ("collocation", "shooting"),
            "'collocation' or 'shooting'",
        ),
        "cycle_intervals": _POS_INT,
        "curve_param": _STR,
        "curve_span": _SPAN,
        "state": _STR,
    },
    "bifurcation_diagram": {
        "param": _STR,
        "span": _SPAN,
        "depth": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
        "cycles": _BOOL,
        "ds_max": _NUM,
        "max_points": _POS_INT,
        "cycle_max_points": _POS_INT,
        "state": _STR,
    },
    "ramp": {
        "param": _STR,
        "span": _SPAN,
        "sigma": (lambda v: _is_number(v) and v > 0, "a number > 0"),
        "realisations": _POS_INT,
        "state": _STR,
        "transition": _NUM,
        "null": _BOOL,
        "window": (lambda v: _is_number(v) and v > 0, "a number > 0"),
        "bandwidth": (lambda v: _is_number(v) and v > 0, "a number > 0"),
        "detrend": (
            lambda v: v in ("gaussian", "lowess", "none"),
            "'gaussian', 'lowess' or 'none'",
        ),
        "lags": (
            lambda v: (
                isinstance(v, list) and v and all(_is_int(x) and x > 0 for x in v)
            ),
            "a non-empty list of positive integers",
        ),
        "indicators": (
            lambda v: isinstance(v, list) and v and all(isinstance(x, str) for x in v),
            "a non-empty list of indicator names",
        ),
    },
}
REQUIRED = {"model": ("name",)}
_RANGE_KEYS = ("start", "stop", "num", "log")
_OBS_KEYS = ("kind", "state", "t_from", "level", "max_peaks")


def _unknown(key: str, where: str, allowed: Any) -> ConfigError:
    allowed = list(allowed)
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(
        f"unknown key {key!r} in {where}{hint}; allowed: {', '.join(allowed)}"
    )


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """A validated configuration; `text` is the TOML source (kept as provenance)."""

    name: str
    task: str
    output: Path
    figures: bool
    seed: int
    model_name: str
    model_params: Mapping[str, Any]
    solver: Mapping[str, Any]
    t_span: tuple[float, float]
    saveat: int | None
    scan_grid: bool
    scan_params: Mapping[str, np.ndarray]
    observables: Mapping[str, AbstractObservable]
    samples: int
    chunk_size: int | None
    curves: bool
    threshold: float | None
    phase_methods: tuple[str, ...]
    phase_params: Mapping[str, np.ndarray]
    phase_t_from: float | None
    phase_threshold: float
    phase_ring_radius: float
    continuation: Mapping[str, Any]
    ramp: Mapping[str, Any]
    text: str
    scheduler: str | None = None
    bifurcation_diagram: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def build_model(self) -> Any:
        return _build_model(self.model_name, self.model_params, "[model]")


def _build_model(name: str, params: Mapping[str, Any], where: str) -> Any:
    try:
        cls = model_class(name)
    except ValueError as e:
        raise ConfigError(f"{where} name: {e}") from None
    kwargs = {}
    for k, v in params.items():
        if isinstance(v, dict) and "name" in v:
            inner = {kk: vv for kk, vv in v.items() if kk != "name"}
            kwargs[k] = _build_model(
                v["name"], inner.get("params", inner), f"{where} params.{k}"
            )
        else:
            kwargs[k] = v
    allowed = [f.name for f in dataclasses.fields(cls) if f.init]
    for k in kwargs:
        if k not in allowed:
            raise _unknown(k, f"{where} params of {name}", allowed)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where} params of {name}: {e}") from None


def _values(name: str, spec: Any, section: str = "scan") -> np.ndarray:
    where = f"[{section}] params.{name}"
    if isinstance(spec, list):
        if not spec or not all(map(_is_number, spec)):
            raise ConfigError(f"{where} must be a non-empty list of numbers")
        return np.asarray(spec, dtype=float)
    if isinstance(spec, dict):
        for k in spec:
            if k not in _RANGE_KEYS:
                raise _unknown(k, where, _RANGE_KEYS)
        missing = [k for k in _RANGE_KEYS[:3] if k not in spec]
        if missing:
            raise ConfigError(f"{where} is missing {', '.join(missing)}")
        if not (_is_number(spec["start"]) and _is_number(spec["stop"])):
            raise ConfigError(f"{where} start and stop must be numbers")
        if not (_is_int(spec["num"]) and spec["num"] > 0):
            raise ConfigError(f"{where} num must be a positive integer")
        if spec.get("log", False):
            if not (spec["start"] > 0 and spec["stop"] > 0):
                raise ConfigError(f"{where} needs start, stop > 0 with log = true")
            return np.geomspace(spec["start"], spec["stop"], spec["num"])
        return np.linspace(spec["start"], spec["stop"], spec["num"])
    if _is_number(spec):
        return np.asarray([float(spec)])
    raise ConfigError(
        f"{where} must be a list of numbers or a table {{start, stop, num}}"
    )


def _observable(name: str, spec: Any) -> AbstractObservable:
    where = f"[scan] observables.{name}"
    if not isinstance(spec, dict) or "kind" not in spec:
        raise ConfigError(
            f"{where} must be a table with a 'kind' (one of "
            f"{', '.join(OBSERVABLE_KINDS)})"
        )
    for k in spec:
        if k not in _OBS_KEYS:
            raise _unknown(k, where, _OBS_KEYS)
    options = {k: v for k, v in spec.items() if k != "kind"}
    if "t_from" in options:
        options["t_from"] = float(options["t_from"])
    try:
        return observable(spec["kind"], **options)
    except ValueError as e:
        raise ConfigError(f"{where}: {e}") from None


#: The section of each task that has one: a config runs exactly one task.
TASK_SECTIONS = {
    "scan": "scan",
    "phase_diagram": "phase_diagram",
    "continuation": "continuation",
    "bifurcation_diagram": "bifurcation_diagram",
    "ramp": "ramp",
}


def parse_config(
    text: str, source: str = "<config>", *, check_model: bool = True
) -> RunConfig:
    """Parse and validate TOML text (`check_model`: also build the model, so that
    bad model parameters fail now). **Raises:** `ConfigError`."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{source} is not valid TOML: {e}") from None
    for section, table in raw.items():
        if section not in SCHEMA:
            raise _unknown(section, f"{source} (top level)", SCHEMA)
        if not isinstance(table, dict):
            raise ConfigError(f"[{section}] must be a table")
        for key, value in table.items():
            if key not in SCHEMA[section]:
                raise _unknown(key, f"[{section}]", SCHEMA[section])
            ok, what = SCHEMA[section][key]
            if not ok(value):
                raise ConfigError(f"[{section}] {key} must be {what}, got {value!r}")
    for section, keys in REQUIRED.items():
        for key in keys:
            if key not in raw.get(section, {}):
                raise ConfigError(f"missing required key {key!r} in [{section}]")
    run = raw.get("run", {})
    scan = raw.get("scan", {})
    phase = raw.get("phase_diagram", {})
    cont = raw.get("continuation", {})
    diagram = raw.get("bifurcation_diagram", {})
    ramp = raw.get("ramp", {})
    default_task = (
        "ramp"
        if ramp
        else "bifurcation_diagram"
        if diagram
        else "continuation"
        if cont
        else "phase_diagram"
        if phase
        else "scan"
        if "params" in scan
        else "simulate"
    )
    task = run.get("task", default_task)
    sections = [s for s in TASK_SECTIONS.values() if s in raw]
    if len(sections) > 1:
        raise ConfigError(
            f"[{sections[0]}] and [{sections[1]}] belong to different tasks; a config "
            "runs one task: keep one of them"
        )
    own = TASK_SECTIONS.get(task)
    if sections and sections[0] != own:
        raise ConfigError(
            f"task {task!r} does not use [{sections[0]}]; remove it or set "
            f"task = {sections[0]!r} in [run]"
        )
    if task == "continuation":
        for key in ("param", "span"):
            if key not in cont:
                raise ConfigError(f"missing required key {key!r} in [continuation]")
        if ("curve_param" in cont) != ("curve_span" in cont):
            raise ConfigError(
                "[continuation] curve_param and curve_span go together (the second "
                "parameter of the Hopf and fold curves, and its range)"
            )
    elif task == "bifurcation_diagram":
        for key in ("param", "span"):
            if key not in diagram:
                raise ConfigError(
                    f"missing required key {key!r} in [bifurcation_diagram]"
                )
    elif task == "ramp" and not all(k in ramp for k in ("param", "span")):
        raise ConfigError("task 'ramp' needs [ramp] param and span = [start, stop]")
    elif "t_span" not in raw.get("time", {}):
        raise ConfigError(f"missing required key 't_span' in [time] (task {task!r})")
    if task == "scan" and not scan.get("params"):
        raise ConfigError("task 'scan' needs [scan] params (the parameters to vary)")
    if task == "phase_diagram" and len(phase.get("params", {})) != 2:
        raise ConfigError(
            "task 'phase_diagram' needs exactly two [phase_diagram] params"
        )
    name = run.get("name", Path(source).stem if source != "<config>" else "run")
    model = raw["model"]
    plot = raw.get("plot", {})
    cfg = RunConfig(
        name=name,
        task=task,
        output=Path(run.get("output", f"results/{name}.h5")),
        figures=run.get("figures", True),
        seed=run.get("seed", 0),
        model_name=model["name"],
        model_params=model.get("params", {}),
        solver=dict(raw.get("solver", {})),
        t_span=tuple(float(v) for v in raw.get("time", {}).get("t_span", (0.0, 0.0))),  # type: ignore[arg-type]
        saveat=raw.get("time", {}).get("saveat"),
        scan_grid=scan.get("grid", True),
        scan_params={k: _values(k, v) for k, v in scan.get("params", {}).items()},
        observables={
            k: _observable(k, v) for k, v in scan.get("observables", {}).items()
        },
        samples=scan.get("samples", 1000),
        chunk_size=scan.get("chunk_size"),
        curves=plot.get("curves", True),
        threshold=plot.get("threshold"),
        phase_methods=tuple(phase.get("methods", ["gcep"])),
        phase_params={
            k: _values(k, v, "phase_diagram")
            for k, v in phase.get("params", {}).items()
        },
        phase_t_from=phase.get("t_from"),
        phase_threshold=phase.get("threshold", 1e-3),
        phase_ring_radius=phase.get("ring_radius", 0.5),
        continuation=dict(cont),
        ramp=dict(ramp),
        bifurcation_diagram=dict(diagram),
        text=text,
        scheduler=raw.get("execution", {}).get("scheduler"),
    )
    if check_model:
        cfg.build_model()  # fail now, not after a long run, if the model is invalid
    return cfg


def load_config(path: str | Path) -> RunConfig:
    """Read and validate a config file. **Raises:** `ConfigError`."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"cannot read config {path}: {e.strerror}") from None
    return parse_config(text, str(path))
