"""dynsim.cli — the `dynsim` command (run, demo, inspect, plot).

`main` loads nothing heavy; the config machinery is imported on first use.
"""

import importlib
from typing import TYPE_CHECKING, Any

from ._main import main as main

_LAZY = {
    "ConfigError": "._config",
    "RunConfig": "._config",
    "load_config": "._config",
    "parse_config": "._config",
    "execute": "._run",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'dynsim.cli' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from ._config import (
        ConfigError as ConfigError,
        RunConfig as RunConfig,
        load_config as load_config,
        parse_config as parse_config,
    )
    from ._run import execute as execute
