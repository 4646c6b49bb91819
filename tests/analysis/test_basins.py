"""Attractors and basins from many starts: the damped double well (symmetric, two
equilibria) and the magnetic pendulum (three attractors)."""

import jax.numpy as jnp
import numpy as np
import pytest

import dynsim as ds
from dynsim.models import param
from tests.helpers import Bautin, drawn_lines


class Duffing(ds.AbstractModel):
    """ẍ + δẋ − x + x³ = 0: stable equilibria (±1, 0), a saddle at 0; the map
    (x, v) ↦ (−x, −v) is a symmetry, so mirrored starts reach mirrored wells and
    each basin holds half of any symmetric region."""

    delta: float = param(0.3)
    state_names = ("x", "v")

    def vector_field(self, t, y, args):
        x, v = y
        return jnp.stack([v, -self.delta * v + x - x**3])

    def initial_state(self):
        return jnp.zeros(2)


class MagneticPendulum(ds.AbstractModel):
    """A pendulum bob over three magnets at 120° on the unit circle (Attractors.jl's
    `magnetic_pendulum`): ẍ = −ω²x − αẋ + Σᵢ γ(xᵢ − x)/Dᵢ³ with Dᵢ² = |xᵢ − x|² + d²;
    three stable equilibria, one near each magnet, by the three-fold symmetry."""

    gamma: float = param(1.0)
    d: float = param(0.3)
    alpha: float = param(0.2)
    omega: float = param(0.5)
    state_names = ("x", "y", "vx", "vy")

    def vector_field(self, t, u, args):
        x, y, vx, vy = u
        angles = jnp.pi / 2 + 2 * jnp.pi * jnp.arange(3) / 3
        mx, my = jnp.cos(angles), jnp.sin(angles)
        dist3 = ((mx - x) ** 2 + (my - y) ** 2 + self.d**2) ** 1.5
        pull_x = jnp.sum(self.gamma * (mx - x) / dist3)
        pull_y = jnp.sum(self.gamma * (my - y) / dist3)
        ax = -(self.omega**2) * x - self.alpha * vx + pull_x
        ay = -(self.omega**2) * y - self.alpha * vy + pull_y
        return jnp.stack([vx, vy, ax, ay])

    def initial_state(self):
        return jnp.zeros(4)


def test_double_well_basins_are_symmetric(tmp_path):
    g = np.linspace(-2.0, 2.0, 41)
    b = ds.analysis.basins(Duffing(), {"x": g, "v": g}, (0.0, 100.0), progress=False)
    assert b.ok and b.labels.shape == (41, 41)
    wells = {tuple(np.round(p, 3) + 0.0): a + 1 for a, p in enumerate(b.attractors)}
    left, right = wells[(-1.0, 0.0)], wells[(1.0, 0.0)]
    # The start at the saddle stays there: an attractor of one start.
    assert b.fraction(wells[(0.0, 0.0)]) == pytest.approx(1 / 41**2)
    mirror = {left: right, right: left, wells[(0.0, 0.0)]: wells[(0.0, 0.0)]}
    assert np.array_equal(np.vectorize(mirror.get)(b.labels[::-1, ::-1]), b.labels)
    assert b.fraction(left) == pytest.approx(b.fraction(right))
    # Random (not symmetric) starts: half each within the sampling error.
    rng = np.random.default_rng(1)
    x, v = rng.uniform(-2.0, 2.0, (2, 1000))
    r = ds.analysis.basins(Duffing(), {"x": x, "v": v}, (0.0, 100.0), grid=False,
                           progress=False)  # fmt: skip
    assert len(r.attractors) == 2 and r.labels.shape == (1000,)
    for a in (1, 2):
        assert abs(r.fraction(a) - 0.5) < 3 * r.stderr[str(a)]
    # A file that reloads equal, and the figure (one marker per attractor).
    ds.io.save(b, tmp_path / "basins.h5", "duffing")
    back = ds.io.load(tmp_path / "basins.h5", "duffing")
    assert np.array_equal(back.labels, b.labels) and back.fractions == b.fractions
    fig = ds.plot.basins(b)
    assert sum(label.startswith("attractor") for *_, label in drawn_lines(fig)) == 3
    with pytest.raises(ValueError, match="starts must name state components"):
        ds.analysis.basins(Duffing(), {"q": g}, (0.0, 1.0))
    with pytest.raises(ValueError, match="equal lengths.*'x': 41, 'v': 3"):
        ds.analysis.basins(Duffing(), {"x": g, "v": g[:3]}, (0.0, 1.0), grid=False)


def test_magnetic_pendulum_has_three_attractors():
    g = np.linspace(-1.5, 1.5, 24)
    b = ds.analysis.basins(MagneticPendulum(), {"x": g, "y": g}, (0.0, 200.0),
                           progress=False)  # fmt: skip
    assert len(b.attractors) == 3 and b.fraction(0) == 0 and b.ok
    angles = np.pi / 2 + 2 * np.pi * np.arange(3) / 3
    magnets = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    near = [np.argmin(np.linalg.norm(magnets - p[:2], axis=1)) for p in b.attractors]
    assert sorted(near) == [0, 1, 2]  # one at each magnet
    assert np.allclose(b.attractors[:, 2:], 0.0, atol=1e-6)  # at rest
    # Equally far in, by the symmetry.
    radii = np.linalg.norm(b.attractors[:, :2], axis=1)
    assert np.ptp(radii) < 1e-5
    assert all(b.fraction(a) > 0.2 for a in (1, 2, 3))


def test_global_continuation_through_a_saddle_node_of_cycles(tmp_path):
    # The Bautin normal form with β = 1 (tests/helpers.py): r' = μr + r³ − r⁵. For
    # −1/4 < μ < 0 the equilibrium and the cycle r_s² = (1 + √(1 + 4μ))/2 are both
    # stable and the unstable cycle r_u² = (1 − √(1 + 4μ))/2 bounds the
    # equilibrium's basin: from starts uniform in the unit disk its fraction is
    # r_u² (closed form). Below the fold of cycles μ = −1/4 only the equilibrium
    # is left (fraction 1); above μ = 0 only the cycle.
    rng = np.random.default_rng(2)
    r, th = np.sqrt(rng.uniform(0, 1, 400)), rng.uniform(0, 2 * np.pi, 400)
    mus = np.array([-0.3, -0.24, -0.2, -0.15, -0.1, -0.05, 0.05])
    g = ds.analysis.global_continuation(
        Bautin(beta=1.0), "mu", mus, {"x": r * np.cos(th), "y": r * np.sin(th)},
        (0.0, 200.0), progress=False,
    )  # fmt: skip
    assert g.fractions.shape == (7, 2) and np.all(g.failed == 0)
    equilibrium = int(np.argmax(g.fractions[0]))  # the only one at μ = −0.3
    assert np.allclose(g.attractors[:-1, equilibrium], 0.0, atol=1e-4)  # e^{μt}
    closed = np.where(mus < 0, (1 - np.sqrt(np.maximum(1 + 4 * mus, 0))) / 2, 0.0)
    closed[mus < -0.25] = 1.0
    sigma = np.sqrt(closed * (1 - closed) / 400)
    share = g.fractions[:, equilibrium]
    assert np.all(np.abs(share - closed) <= 3 * sigma + g.unconverged + 1e-12)
    # The cycle is one attractor from its birth on, its radius r_s.
    cycle = 1 - equilibrium
    born = mus > -0.25
    assert np.all(g.fractions[~born, cycle] == 0)
    assert np.all(g.fractions[born, cycle] > 0.5)
    radius = g.features[born, cycle, 1, 0]  # max x over the orbit
    assert np.allclose(radius**2, (1 + np.sqrt(1 + 4 * mus[born])) / 2, atol=1e-4)
    fig = ds.plot.basin_fractions(g)
    fig.savefig(tmp_path / "fractions.png")
    ds.io.save(g, tmp_path / "g.h5", "bautin")
    back = ds.io.load(tmp_path / "g.h5", "bautin")
    assert np.array_equal(back.fractions, g.fractions)


def test_branches_annotated_with_basin_fractions(tmp_path):
    """The Bautin normal form with β = 1 (closed forms as in the test above): along
    the stable piece (μ < 0) of the equilibrium branch from `continuation`, the
    fraction of starts uniform in the unit disk that reach the equilibrium is r_u²
    for μ > −1/4 and 1 below; along the stable (outer) cycles of
    `cycle_continuation` (μ > −1/4) the cycle's fraction is 1 − r_u² (1 above
    μ = 0, where every start of the disk goes to it)."""
    model = Bautin(beta=1.0, mu=-0.5)
    rng = np.random.default_rng(3)
    r, th = np.sqrt(rng.uniform(0, 1, 400)), rng.uniform(0, 2 * np.pi, 400)
    starts = {"x": r * np.cos(th), "y": r * np.sin(th)}
    eq = ds.analysis.continuation(model, "mu", (-0.5, 0.5))
    (hopf,) = eq.special("hopf")
    cycles = ds.analysis.cycle_continuation(model, "mu", (-0.5, 0.5), hopf=hopf)
    sigma = lambda f: np.sqrt(f * (1 - f) / 400)  # noqa: E731
    r_u2 = lambda mu: (1 - np.sqrt(np.maximum(1 + 4 * mu, 0))) / 2  # noqa: E731

    at_eq = ds.analysis.branch_basins(eq, starts, (0.0, 200.0), points=6,
                                      progress=False)  # fmt: skip
    assert np.all(at_eq.values < 0) and np.all(at_eq.piece == 1)
    closed = np.where(at_eq.values < -0.25, 1.0, r_u2(at_eq.values))
    assert np.all(np.abs(at_eq.fractions - closed) <= 3 * sigma(closed) + 1e-12)
    assert np.all(at_eq.failed == 0) and np.all(at_eq.unconverged == 0)

    at_cycle = ds.analysis.branch_basins(cycles, starts, (0.0, 200.0), points=6,
                                         progress=False)  # fmt: skip
    mu = at_cycle.values
    assert np.all(mu > -0.25) and at_cycle.piece.max() == 1
    closed = np.where(mu > 0, 1.0, 1 - r_u2(mu))
    assert np.all(np.abs(at_cycle.fractions - closed) <= 3 * sigma(closed) + 1e-12)
    fig = at_cycle.figures()[0][1]
    fig.savefig(tmp_path / "branch_basins.png")
    # The branch is drawn within its envelopes (at the fold of cycles too, where
    # the stability changes between two points of nearly equal μ).
    drawn = np.concatenate([ln.get_ydata() for ln in fig.axes[0].get_lines()])
    assert np.abs(drawn).max() <= np.abs(cycles.y_max).max() + 1e-9
    ds.io.save(at_eq, tmp_path / "b.h5", "eq")
    back = ds.io.load(tmp_path / "b.h5", "eq")
    assert np.array_equal(back.fractions, at_eq.fractions)
    assert np.array_equal(back.branch.ys, eq.ys)
    with pytest.raises(ValueError, match="model="):
        ds.analysis.branch_basins(back.branch, starts, (0.0, 1.0))
