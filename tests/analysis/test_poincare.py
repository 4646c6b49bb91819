"""Poincaré sections as running observables: exact crossings of a rotation,
agreement with SciPy's event location, and the orbit diagram of Lorenz."""

import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

import dynsim as ds
from dynsim.models import param
from dynsim.observables import Section


class Rotation(ds.AbstractModel):
    """ẋ = ω y, ẏ = −ω x from (1, 0): x = cos ωt, y = −sin ωt, so y rises through 0
    at t = (2k + 1)π/ω (x = −1) and falls through 0 at t = 2kπ/ω (x = 1)."""

    w: float = param(1.0)
    state_names = ("x", "y")

    def vector_field(self, t, y, args):
        return jnp.stack([self.w * y[1], -self.w * y[0]])

    def initial_state(self):
        return jnp.array([1.0, 0.0])


def distinct(values: np.ndarray, tol: float) -> int:
    v = np.sort(values[np.isfinite(values)])
    return int(v.size and 1 + np.sum(np.diff(v) > tol))


def test_rotation_crossings_at_the_closed_form_times():
    observables = {
        "up": Section(state="y", direction=1, max_crossings=8),
        "down": Section(state="y", direction=-1, max_crossings=8),
        "both": Section(state="y", direction=0, max_crossings=8),
    }
    w = np.array([1.0, 2.0, 0.7])
    res = ds.scan(Rotation(), {"w": w}, (0.0, 20.0), observables=observables,
                  rtol=1e-10, atol=1e-12, progress=False)  # fmt: skip
    for i, wi in enumerate(w):
        up = np.asarray(res.values["up"][i])
        k = np.arange(8)
        t_up = (2 * k + 1) * np.pi / wi
        n = int(np.sum(t_up < 20.0))
        assert np.all(np.isfinite(up[:n, 0])) and np.all(np.isnan(up[n:]))
        assert np.allclose(up[:n, 0], t_up[:n], atol=1e-8)
        assert np.allclose(up[:n, 1:], [[-1.0, 0.0]] * n, atol=1e-8)
        down = np.asarray(res.values["down"][i])
        t_down = 2 * (k + 1) * np.pi / wi  # the start (y = 0, falling) is not one
        m = int(np.sum(t_down < 20.0))
        assert np.allclose(down[:m, 0], t_down[:m], atol=1e-8)
        both = np.asarray(res.values["both"][i])
        merged = np.sort(np.concatenate([t_up[:n], t_down[:m]]))[:8]
        assert np.allclose(both[: merged.size, 0], merged, atol=1e-8)


def test_rossler_section_matches_scipy_events():
    m = ds.models.Rossler()
    a, b, c = (float(m.a), float(m.b), float(m.c))
    sec = ds.analysis.poincare(m, (0.0, 60.0), state="x", direction=-1,
                               rtol=1e-11, atol=1e-13)  # fmt: skip
    assert sec.ok and not sec.full

    def f(t, u):
        x, y, z = u
        return [-y - z, x + a * y, b + z * (x - c)]

    def crossing(t, u):
        return u[0]

    crossing.direction = -1
    ref = solve_ivp(f, (0.0, 60.0), np.asarray(m.initial_state()), method="DOP853",
                    rtol=1e-12, atol=1e-13, events=crossing)  # fmt: skip
    assert sec.count == len(ref.t_events[0]) > 5
    assert np.allclose(sec.times, ref.t_events[0], atol=1e-7)
    assert np.allclose(sec.states, ref.y_events[0], atol=1e-7)
    with pytest.raises(ValueError, match="direction must be"):
        ds.analysis.poincare(m, (0.0, 1.0), state="x", direction=2)
    with pytest.raises(ValueError, match="needs one state"):
        ds.scan(m, {"a": [0.2]}, (0.0, 1.0), observables={"s": Section()})


class CenteredLorenz(ds.AbstractModel):
    """Lorenz with w = z − (ρ − 1) for z: the plane of C± is w = 0 at every ρ (the
    classic section z = ρ − 1, one hyperplane for the whole scan)."""

    sigma: float = param(10.0)
    rho: float = param(28.0)
    beta: float = param(8.0 / 3.0)
    state_names = ("x", "y", "w")

    def vector_field(self, t, y, args):
        x, v, w = y
        z = w + self.rho - 1.0
        return jnp.stack([self.sigma * (v - x), x * (self.rho - z) - v,
                          x * v - self.beta * z])  # fmt: skip

    def initial_state(self):
        return jnp.array([1.0, 1.0, 2.0 - self.rho])


def test_lorenz_orbit_diagram_from_a_section():
    # The section z = ρ − 1 crossed downwards, x there, after t = 60: chaotic at
    # ρ = 28, a stable periodic orbit in the window 99.52 < ρ < 100.79 (Sparrow,
    # The Lorenz Equations, 1982, §5).
    rho = np.linspace(26.0, 106.0, 256)
    rho[np.argmin(np.abs(rho - 28.0))] = 28.0
    rho[np.argmin(np.abs(rho - 100.5))] = 100.5
    section = Section(state="w", direction=-1, max_crossings=256, t_from=60.0)
    res = ds.scan(CenteredLorenz(), {"rho": rho}, (0.0, 160.0),
                  observables={"s": section}, rtol=1e-8, atol=1e-8,
                  progress=False)  # fmt: skip
    x = np.asarray(res.values["s"])[..., 1]
    assert distinct(x[np.argmin(np.abs(rho - 100.5))], 1e-6) <= 8
    assert distinct(x[np.argmin(np.abs(rho - 28.0))], 1e-6) > 100
    assert np.all(np.sum(np.isfinite(x), axis=1) > 50)  # every ρ crosses often


def test_section_of_a_cell_of_the_cell_bulk_model():
    # The coarse three-cell PDE (IMEX, kencarp4) oscillates in phase: a cell's w
    # crosses its mid-level once per period, the period is the spacing of the
    # crossings, and the recorded state has w at the level.
    cells = [(0.5, 0.0), (-0.5, 0.0), (0.0, 0.0)]
    model = ds.models.SelkovCellBulk(
        centers=cells, D=5.0, tau=0.55, n=6, ntheta=12, kernel="nodal"
    )
    opts = dict(solver="kencarp4", rtol=1e-6, atol=1e-9)
    run = ds.simulate(model, (0.0, 150.0), saveat=np.linspace(100, 150, 501), **opts)
    w0 = np.asarray(run.ys)[:, model.state_names.index("w0")]
    level = 0.5 * (w0.min() + w0.max())
    sec = ds.analysis.poincare(model, (0.0, 150.0), state="w0", value=level,
                               t_from=100.0, **opts)  # fmt: skip
    assert sec.ok and sec.count >= 5
    gaps = np.diff(sec.times)
    assert np.ptp(gaps) < 1e-2 * gaps.mean()
    assert np.allclose(sec.states[:, model.state_names.index("w0")], level,
                       atol=1e-6)  # fmt: skip


def test_sections_stream_to_a_file_and_size_the_scan(tmp_path):
    from dynsim._scan_plan import value_size

    section = Section(state="y", direction=1, max_crossings=4)
    res = ds.scan(Rotation(), {"w": [1.0, 2.0]}, (0.0, 10.0),
                  observables={"s": section}, store=tmp_path / "s.h5", name="rot",
                  rtol=1e-10, atol=1e-12, progress=False)  # fmt: skip
    back = ds.io.load(tmp_path / "s.h5", "rot")
    assert np.array_equal(back.values["s"], res.values["s"], equal_nan=True)
    assert back.values["s"].shape == (2, 4, 3)
    ((_, bound),) = ds._binding.bind_observables({"s": section}, ("x", "y"))
    assert value_size(bound, 2) == 4 * 3  # rows of (t, x, y)
