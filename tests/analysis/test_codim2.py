"""Two-parameter continuation of Hopf and fold curves against closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse

import dynsim as ds
from dynsim.analysis import bifurcation_curve, continuation
from dynsim.models import param
from tests.helpers import Bautin, has_line


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
    """The Bogdanov–Takens normal form ẋ = y + αx², ẏ = β₁ + β₂y + x² + s·xy:
    folds on β₁ = 0 (at x = y = 0, ∂f/∂y = [[0, 1], [0, β₂]]), a double zero
    eigenvalue at β = 0 with normal-form coefficients a = 1, b = s + 2α (Kuznetsov
    2004, §8.4: with v = y + αx², v̇ = x² + (s + 2α)x v + O(3)). For α = 0 its
    Hopf points lie on β₁ = −β₂², β₂ < 0 (trace s x + β₂ = 0 at the equilibrium
    x = −√−β₁, s = −1), and the Hopf curve ends at the BT point."""

    b1: float = param(-1.0)
    b2: float = param(-0.5)
    s: float = param(-1.0)
    alpha: float = param(0.0)
    state_names = ("x", "y")

    def vector_field(self, t, y, args):
        x, v = y
        return jnp.stack(
            [v + self.alpha * x**2, self.b1 + self.b2 * v + x**2 + self.s * x * v]
        )

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
    model = BogdanovTakens(alpha=0.3)
    branch = continuation(model, "b1", (-1.0, 0.5), y0=[1.0, 0.0], progress=False)
    (fold,) = branch.special("fold")
    spans = {"b1": (-1.0, 1.0), "b2": (-0.5, 0.5)}
    curve = bifurcation_curve(branch, fold, "b2", spans)
    (bt,) = curve.points
    assert bt.kind == "bogdanov_takens" and bt.label == "BT"
    assert np.allclose(bt.values, [0.0, 0.0], atol=1e-9)
    assert bt.coefficients["a"] == pytest.approx(1.0, abs=1e-8)
    assert bt.coefficients["b"] == pytest.approx(-1.0 + 2 * 0.3, abs=1e-8)
    ds.io.save(curve, tmp_path / "curve.h5", "fold")
    (back,) = ds.io.load(tmp_path / "curve.h5", "fold").points
    assert back.kind == bt.kind and np.array_equal(back.values, bt.values)
    assert back.coefficients == bt.coefficients and back.index == bt.index


def test_hopf_and_fold_curves_from_a_bogdanov_takens_point(tmp_path):
    model = BogdanovTakens()
    branch = continuation(model, "b1", (-1.0, 0.5), y0=[1.0, 0.0], progress=False)
    spans = {"b1": (-1.0, 1.0), "b2": (-0.5, 0.5)}
    folds = bifurcation_curve(branch, branch.special("fold")[0], "b2", spans)
    (bt,) = folds.points
    hopf = bifurcation_curve(folds, bt, spans=spans)
    assert hopf.bifurcation == "hopf" and hopf.ok
    b1, b2 = hopf.values.T
    # The closed form β₁ = −β₂² (class docstring), from the span's edge to BT.
    assert np.abs(b1 + b2**2).max() < 1e-9
    assert b2.min() == pytest.approx(-0.5) and abs(b2.max()) < 1e-6
    assert np.allclose(hopf.frequency**2, -2 * hopf.ys[:, 0], atol=1e-9)  # det J
    # It ends at the BT point (ω → 0), located there with the same coefficients.
    (end,) = hopf.points
    assert end.kind == "bogdanov_takens"
    assert np.allclose(end.values, [0.0, 0.0], atol=1e-6)
    assert end.coefficients["b"] == pytest.approx(-1.0, abs=1e-5)
    # And the fold curve through the point, both ways, with the point on it.
    again = bifurcation_curve(folds, bt, spans=spans, bifurcation="fold")
    assert again.ok and np.abs(again.values[:, 0]).max() < 1e-12
    assert np.ptp(again.values[:, 1]) == pytest.approx(1.0)
    assert [q.kind for q in again.points] == ["bogdanov_takens"]
    # The figure: both curves in the parameter plane, the point labelled.
    fig = ds.plot.bifurcation_diagram(folds, hopf)
    assert has_line(fig, hopf.values[:, 1], hopf.values[:, 0])
    assert has_line(fig, folds.values[:, 1], folds.values[:, 0])
    assert [t.get_text() for t in fig.axes[0].texts].count("BT") == 2
    fig.savefig(tmp_path / "bt.png")
    with pytest.raises(ValueError, match="no curve 'cycle_fold' starts"):
        bifurcation_curve(folds, bt, spans=spans, bifurcation="cycle_fold")


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


def test_bautin_point_and_its_curve_of_folds_of_cycles():
    # The Bautin normal form (tests/helpers.py): GH at μ = β = 0 with l₁ = 2β/ω and
    # l₂ = 4s/ω = −4 (s = −1; the normalisation of l₁). Its cycles (r² with
    # μ + βr² − r⁴ = 0) fold where μ = −β²/4, r² = β/2, for β > 0.
    branch = continuation(Bautin(beta=-0.5), "mu", (-0.5, 0.5), progress=False)
    (hopf,) = branch.special("hopf")
    spans = {"mu": (-1.0, 1.0), "beta": (-0.5, 0.5)}
    curve = bifurcation_curve(branch, hopf, "beta", spans)
    (gh,) = curve.points
    assert gh.kind == "bautin" and np.allclose(gh.values, [0.0, 0.0], atol=1e-8)
    assert abs(gh.coefficients["l1"]) < 1e-8
    assert gh.coefficients["l2"] == pytest.approx(-4.0, abs=1e-8)
    assert gh.coefficients["omega"] == pytest.approx(1.0)
    lpc = bifurcation_curve(curve, gh, spans=spans, max_points=60)
    assert lpc.bifurcation == "cycle_fold" and lpc.ok
    mu, beta = lpc.values.T
    assert np.abs(mu + beta**2 / 4).max() < 1e-9
    assert np.abs(np.sum(lpc.ys**2, axis=1) - beta / 2).max() < 1e-9
    assert np.allclose(lpc.frequency, 1.0)
    # From the span's edge back to the Bautin point (orbits 1 % of the first).
    assert beta.max() == pytest.approx(0.5) and beta.min() < 1e-3


def test_second_lyapunov_coefficient_is_a_normal_form_invariant():
    # l₂ = 4s/ω for ż = (μ + iω)z + (β + iγ)|z|²z + s|z|⁴z at μ = β = 0 (module
    # docstring of _normal_form), unchanged by a near-identity change of
    # coordinates (it leaves ∂f/∂y and so q, p as they are): the terms of B, C, D
    # and of G₂₁ (γ ≠ 0) all enter.
    from dynsim.analysis import first_lyapunov, second_lyapunov
    from dynsim.analysis._linalg import jacobian

    for model, omega in ((Bautin(mu=0.0, beta=0.0, omega=2.5), 2.5),
                         (WarpedBautin(), 1.3)):  # fmt: skip
        y = np.zeros(2)
        jac = np.asarray(jacobian(model, y))
        assert abs(first_lyapunov(model, y, jac, omega)) < 1e-12
        assert second_lyapunov(model, y, jac, omega) == pytest.approx(
            -4.0 / omega, rel=1e-10
        )
    # A sparse Jacobian (PDE models) gives the same: its real LU solves the complex
    # right-hand sides part by part.
    sparse = scipy.sparse.csc_matrix(jac)
    l2 = second_lyapunov(model, y, sparse, 1.3)
    assert l2 == pytest.approx(-4.0 / 1.3, rel=1e-10)


class WarpedBautin(ds.AbstractModel):
    """u = x + N(x) (N quadratic and cubic) of ẋ = the Cartesian Bautin normal form
    with ż = i(ω + γ|z|²)z − |z|⁴z: u̇ = (I + N′(x)) ẋ, with x = u − N(x) solved by
    five fixed-point steps (exact to fifth order, all l₂ sees)."""

    omega: float = param(1.3)
    gamma: float = param(0.7)
    state_names = ("u", "v")

    def vector_field(self, t, y, args):
        def warp(x):
            a, b = x
            return jnp.stack([0.3 * a**2 - 0.2 * a * b + 0.1 * b**3,
                              0.5 * b**2 + 0.25 * a**2 * b - 0.4 * a * b])  # fmt: skip

        x = y
        for _ in range(5):
            x = y - warp(x)
        r2 = x[0] ** 2 + x[1] ** 2
        w = self.omega + self.gamma * r2
        fx = jnp.stack([-(r2**2) * x[0] - w * x[1], -(r2**2) * x[1] + w * x[0]])
        return fx + jax.jvp(warp, (x,), (fx,))[1]

    def initial_state(self):
        return jnp.zeros(2)


def test_zero_hopf_and_double_hopf_on_a_hopf_curve():
    branch = continuation(HopfPlus(), "b1", (-0.5, 0.5), progress=False)
    (hopf,) = branch.special("hopf")
    curve = bifurcation_curve(
        branch, hopf, "b2", {"b1": (-1.0, 1.0), "b2": (-0.5, 1.5)}
    )
    kinds = {q.kind: q for q in curve.points}
    assert set(kinds) == {"zero_hopf", "double_hopf"}
    assert np.allclose(kinds["zero_hopf"].values, [0.0, 0.0], atol=1e-8)
    assert np.allclose(kinds["double_hopf"].values, [0.0, 1.0], atol=1e-8)


class Budworm(ds.AbstractModel):
    """The spruce budworm ẋ = r x(1 − x/k) − x²/(1 + x²) (Ludwig, Jones & Holling
    1978; Strogatz, *Nonlinear Dynamics and Chaos*, §3.7): its fold curve in (r, k)
    has a cusp where the line r(1 − x/k) touches x/(1 + x²) at the inflection
    x = √3: r = 3√3/8, k = 3√3. There x f‴ = −x h‴(x) with h = x/(1 + x²),
    h‴(√3) = 3/16, so c = f‴/6 = −√3/32 (q = p = 1)."""

    r: float = param(0.5)
    k: float = param(10.0)
    state_names = ("x",)

    def vector_field(self, t, y, args):
        return self.r * y * (1 - y / self.k) - y**2 / (1 + y**2)

    def initial_state(self):
        return jnp.array([1.0])


def test_textbook_budworm_cusp():
    branch = continuation(Budworm(), "r", (0.3, 0.7), y0=[0.5], progress=False)
    folds = branch.special("fold")
    assert len(folds) == 2
    curve = bifurcation_curve(
        branch, folds[0], "k", {"r": (0.3, 0.7), "k": (4.0, 10.0)}, ds_max=0.02
    )
    (cp,) = curve.special("cusp")
    assert np.allclose(cp.values, [3 * np.sqrt(3) / 8, 3 * np.sqrt(3)], atol=1e-8)
    assert cp.y[0] == pytest.approx(np.sqrt(3), abs=1e-8)
    assert cp.coefficients["c"] == pytest.approx(-np.sqrt(3) / 32, abs=1e-10)
