"""A fractal basin boundary against its published dimension: the uncertainty
exponent of `dynsim.analysis.uncertainty_exponent`, and basins of maps."""

import jax.numpy as jnp
import numpy as np
import pytest

import dynsim as ds
from dynsim.models import param


class WeierstrassBasins(ds.AbstractMap):
    """x' = λx·x mod 1, y' = λy·y + cos 2πx (McDonald, Grebogi, Ott & Yorke,
    Physica D 17 (1985) 125; Ott, Chaos in Dynamical Systems, 2nd ed. 2002, §5.2).
    Orbits go to y = +∞ or −∞; the boundary between the two basins is the graph of
    the Weierstrass function y = −Σⱼ λy^−(j+1) cos(2π λx^j x), of box-counting
    dimension d = 2 − ln λy / ln λx for λx > λy > 1, so the uncertainty exponent is
    α = 2 − d = ln λy / ln λx; for λy > λx the series is C¹ and the boundary
    smooth (α = 1). Once |y| > 1/(λy − 1) it escapes monotonically: capping y at
    ±`cap` (beyond that) turns the two infinities into fixed attractors y = ±cap
    with the same basins."""

    lx: float = param(3.0)
    ly: float = param(1.5)
    cap: float = param(10.0)
    state_names = ("x", "y")

    def step(self, n, s, args):
        x, y = s
        y1 = jnp.clip(self.ly * y + jnp.cos(2 * jnp.pi * x), -self.cap, self.cap)
        return jnp.stack([jnp.mod(self.lx * x, 1.0), y1])

    def initial_state(self):
        return jnp.zeros(2)


REGION = {"x": (0.0, 1.0), "y": (-2.5, 2.5)}


def test_fractal_boundary_dimension_matches_published():
    """λx = 3, λy = 1.5: α = ln 1.5 / ln 3 = 0.3691, d = 1.6309 (McDonald et al.
    1985), from 50 000 random starts and their partners at ε = 1e-2 … 1e-6: within
    three standard errors of the fit (which is below 0.01)."""
    res = ds.analysis.uncertainty_exponent(
        WeierstrassBasins(), REGION, (0, 300),
        eps=(1e-2, 1e-3, 1e-4, 1e-5, 1e-6), n_starts=50_000, progress=False,
    )  # fmt: skip
    expected = np.log(1.5) / np.log(3.0)
    assert res.ok, res.message
    assert res.alpha_stderr < 0.01
    assert abs(res.alpha - expected) < 3 * res.alpha_stderr + 1e-3, res
    assert res.dimension == pytest.approx(2 - res.alpha)
    # f(ε) decreases with ε, every pair counted (the runs converged).
    assert np.all(np.diff(res.uncertain) < 0)
    assert np.all(res.pairs > 0.999 * 50_000)
    # The fitted line passes within three standard errors of each measured f(ε).
    assert np.all(np.abs(res.fitted(res.eps) - res.uncertain) < 3 * res.stderr + 1e-3)
    fig = res.figures()[0][1]
    assert fig.axes[0].get_xscale() == "log"


def test_smooth_boundary_has_exponent_one(tmp_path):
    """λy = 4 > λx = 3: the boundary is a C¹ curve, α = 1 (d = 1). The result
    survives a round trip through HDF5."""
    res = ds.analysis.uncertainty_exponent(
        WeierstrassBasins(ly=4.0), REGION, (0, 300),
        eps=(3e-2, 1e-2, 3e-3, 1e-3), n_starts=20_000, progress=False,
    )  # fmt: skip
    assert res.alpha_stderr < 0.06
    assert abs(res.alpha - 1.0) < 3 * res.alpha_stderr, res
    path = tmp_path / "u.h5"
    ds.io.save(res, path)
    back = ds.io.load(path)
    np.testing.assert_array_equal(back.uncertain, res.uncertain)
    assert back.alpha == res.alpha


def test_basins_of_a_map_on_a_grid():
    """`basins` runs maps as flows (iterates for times): the two attractors y = ±cap,
    their basins mirror images (y → −y, x → x + 1/2 maps the map onto itself)."""
    x = np.linspace(0.0, 1.0, 64, endpoint=False) + 1 / 256
    y = np.linspace(-2.5, 2.5, 64)
    b = ds.analysis.basins(WeierstrassBasins(), {"x": x, "y": y}, (0, 300),
                           progress=False)  # fmt: skip
    assert len(b.attractors) == 2 and b.ok
    np.testing.assert_allclose(sorted(np.abs(b.attractors[:, 1])), [10.0, 10.0])
    np.testing.assert_allclose(b.fraction(1), 0.5, atol=0.02)


def test_rejects_bad_region_and_eps():
    m = WeierstrassBasins()
    with pytest.raises(ValueError, match="region"):
        ds.analysis.uncertainty_exponent(m, {"x": (1.0, 0.0)}, (0, 10))
    with pytest.raises(ValueError, match="eps"):
        ds.analysis.uncertainty_exponent(m, REGION, (0, 10), eps=(0.5,))
    with pytest.raises(ValueError, match="state"):
        ds.analysis.uncertainty_exponent(m, {"z": (0.0, 1.0)}, (0, 10))
