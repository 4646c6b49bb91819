"""Two-parameter continuation of Hopf and fold curves against closed forms."""

import jax.numpy as jnp
import numpy as np
import pytest

import dynsim as ds
from dynsim.analysis import bifurcation_curve, continuation
from dynsim.models import param


class Cusp(ds.AbstractModel):
    """ẋ = r + s x − x³: folds where s = 3x², r = −2x³, i.e. 27 r² = 4 s³."""

    r: float = param(-1.0)
    s: float = param(1.0)
    state_names = ("x",)

    def vector_field(self, t, y, args):
        return self.r + self.s * y - y**3

    def initial_state(self):
        return jnp.array([-1.5])


def test_textbook_selkov_hopf_curve():
    # x' = −x + a y + x²y, y' = b − a y − x²y (ζ = 1): Hopf where
    # b² = ½(1 − 2a ± √(1 − 8a)) (Strogatz §8.2, exercise 8.2.9); both signs form
    # one curve through its fold at a = 1/8.
    model = ds.models.Selkov(alpha=0.05, mu=0.2, zeta=1.0)
    branch = continuation(model, "mu", (0.2, 1.2))
    hopfs = branch.special("hopf")
    assert len(hopfs) == 2
    curve = bifurcation_curve(
        branch,
        hopfs[0],
        "alpha",
        {"mu": (0.0, 1.2), "alpha": (0.002, 0.2)},
        ds_max=0.02,
    )
    assert curve.bifurcation == "hopf" and curve.ok
    b, a = curve.values[:, 0], curve.values[:, 1]
    root = np.sqrt(np.maximum(1 - 8 * a, 0.0))
    closed = np.stack([(1 - 2 * a + root) / 2, (1 - 2 * a - root) / 2])
    assert np.min(np.abs(b**2 - closed), axis=0).max() < 1e-6
    # It passes through both Hopf points of the one-parameter branch and turns at
    # a = 1/8.
    assert a.max() == pytest.approx(1 / 8, abs=1e-4)  # sampled, not located
    assert np.min(np.hypot(a - 0.05, b - hopfs[0].value)) < 1e-9  # its start
    cross = np.flatnonzero(np.diff(np.sign(a - 0.05)))
    assert len(cross) == 2 and b[cross[1]] < hopfs[1].value < b[cross[1] + 1]
    # ω² = det J along the curve: for the textbook model det J = a + b².
    assert np.allclose(curve.frequency**2, a + b**2, atol=1e-8)


def test_cusp_fold_curve():
    branch = continuation(Cusp(), "r", (-1.0, 1.0), ds_max=0.05)
    folds = branch.special("fold")
    assert len(folds) == 2
    curve = bifurcation_curve(
        branch, folds[0], "s", {"r": (-1.0, 1.0), "s": (0.01, 1.5)}, ds_max=0.02
    )
    r, s = curve.values.T
    assert np.allclose(27 * r**2, 4 * s**3, atol=1e-8)
    assert np.allclose(curve.ys[:, 0] ** 2 * 3, s, atol=1e-8)
    with pytest.raises(ValueError, match="spans must give ranges"):
        bifurcation_curve(branch, folds[0], "s", {"r": (-1.0, 1.0)})
