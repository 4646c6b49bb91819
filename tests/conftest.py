import jax
import matplotlib
import pytest

matplotlib.use("Agg")
jax.config.update("jax_enable_x64", True)

import dynsim  # noqa: E402,F401  (after x64, as users get it)


@pytest.fixture(autouse=True)
def _double_precision():
    # Every test runs in float64; a test that switches precision cannot leak.
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", True)
