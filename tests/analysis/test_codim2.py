"""Two-parameter continuation of Hopf and fold curves against closed forms."""

import jax.numpy as jnp
import numpy as np
import pytest

import dynsim as ds
from dynsim.analysis import bifurcation_curve, continuation
from dynsim.models import param
from tests.helpers import Bautin


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


class BogdanovTakens(ds.AbstractModel):
    """The Bogdanov–Takens normal form ẋ = y, ẏ = β₁ + β₂y + x² + s·xy: folds on
    β₁ = 0 (at x = y = 0, ∂f/∂y = [[0, 1], [0, β₂]]), a double zero eigenvalue at
    β = 0 with normal-form coefficients a = 1, b = s (Kuznetsov 2004, §8.4)."""

    b1: float = param(-1.0)
    b2: float = param(-0.5)
    s: float = param(-1.0)
    state_names = ("x", "y")

    def vector_field(self, t, y, args):
        x, v = y
        return jnp.stack([v, self.b1 + self.b2 * v + x**2 + self.s * x * v])

    def initial_state(self):
        return jnp.array([1.0, 0.0])


class HopfPlus(ds.AbstractModel):
    """A Hopf normal form (μ = β₁, ω = 1) beside a real mode ż = β₂z − z² and a
    second oscillator (μ = β₂ − 1, ω = 2.3), uncoupled: on the Hopf curve β₁ = 0 a
    zero-Hopf point at β₂ = 0 and a double-Hopf point at β₂ = 1 (closed form)."""

    b1: float = param(-0.5)
    b2: float = param(-0.5)
    state_names = ("x", "y", "z", "u", "v")

    def vector_field(self, t, y, args):
        x, v, z, p, q = y
        r1, r2 = x**2 + v**2, p**2 + q**2
        g1, g2 = self.b1 - r1, (self.b2 - 1.0) - r2
        return jnp.stack(
            [
                g1 * x - v,
                g1 * v + x,
                self.b2 * z - z**2,
                g2 * p - 2.3 * q,
                g2 * q + 2.3 * p,
            ]
        )

    def initial_state(self):
        return jnp.zeros(5)


def test_bogdanov_takens_on_a_fold_curve(tmp_path):
    model = BogdanovTakens()
    branch = continuation(model, "b1", (-1.0, 0.5), y0=[1.0, 0.0], progress=False)
    (fold,) = branch.special("fold")
    spans = {"b1": (-1.0, 1.0), "b2": (-0.5, 0.5)}
    curve = bifurcation_curve(branch, fold, "b2", spans)
    (bt,) = curve.points
    assert bt.kind == "bogdanov_takens" and bt.label == "BT"
    assert np.allclose(bt.values, [0.0, 0.0], atol=1e-9)
    assert bt.coefficients["a"] == pytest.approx(1.0, abs=1e-8)
    assert bt.coefficients["b"] == pytest.approx(-1.0, abs=1e-8)  # b = s
    ds.io.save(curve, tmp_path / "curve.h5", "fold")
    (back,) = ds.io.load(tmp_path / "curve.h5", "fold").points
    assert back.kind == bt.kind and np.array_equal(back.values, bt.values)
    assert back.coefficients == bt.coefficients and back.index == bt.index


def test_cusp_point_and_coefficient():
    # ẋ = r + s x − x³: the fold curve 27r² = 4s³ has its cusp at r = s = 0, where
    # the normal form is ẋ = −x³ (c = −1).
    branch = continuation(Cusp(), "r", (-1.0, 1.0), ds_max=0.05, progress=False)
    curve = bifurcation_curve(
        branch,
        branch.special("fold")[0],
        "s",
        {"r": (-1.0, 1.0), "s": (-0.5, 1.5)},
        ds_max=0.02,
    )
    (cp,) = curve.special("cusp")
    assert np.allclose(cp.values, [0.0, 0.0], atol=1e-8)
    assert cp.coefficients["c"] == pytest.approx(-1.0, abs=1e-8)


def test_bautin_zero_hopf_and_double_hopf_on_hopf_curves():
    # The Bautin normal form (l₁ = 2β/ω, tests/helpers.py): GH at μ = β = 0.
    branch = continuation(Bautin(beta=-0.5), "mu", (-0.5, 0.5), progress=False)
    (hopf,) = branch.special("hopf")
    curve = bifurcation_curve(
        branch, hopf, "beta", {"mu": (-1.0, 1.0), "beta": (-0.5, 0.5)}
    )
    (gh,) = curve.points
    assert gh.kind == "bautin" and np.allclose(gh.values, [0.0, 0.0], atol=1e-8)
    assert abs(gh.coefficients["l1"]) < 1e-8 and gh.coefficients[
        "omega"
    ] == pytest.approx(1.0)

    branch = continuation(HopfPlus(), "b1", (-0.5, 0.5), progress=False)
    (hopf,) = branch.special("hopf")
    curve = bifurcation_curve(
        branch, hopf, "b2", {"b1": (-1.0, 1.0), "b2": (-0.5, 1.5)}
    )
    kinds = {q.kind: q for q in curve.points}
    assert set(kinds) == {"zero_hopf", "double_hopf"}
    assert np.allclose(kinds["zero_hopf"].values, [0.0, 0.0], atol=1e-8)
    assert np.allclose(kinds["double_hopf"].values, [0.0, 1.0], atol=1e-8)
