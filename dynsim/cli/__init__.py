"""dynsim.cli — the `dynsim` command (run, demo, inspect, plot)."""

from ._config import (
    ConfigError as ConfigError,
    RunConfig as RunConfig,
    load_config as load_config,
    parse_config as parse_config,
)
from ._main import execute as execute, main as main
