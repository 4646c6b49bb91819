"""Example run configurations (TOML), installed as the package `dynsim.configs`."""
