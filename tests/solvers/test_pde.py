"""Grids, conservative Neumann Laplacians, fast shifted solves, linear IMEX."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dynsim as ds
from dynsim.solvers import DiskGrid, SquareGrid


def _polar(grid):
    p = grid.points
    return np.hypot(p[:, 0], p[:, 1]), np.arctan2(p[:, 1], p[:, 0])


@pytest.mark.parametrize(
    "f, lap",
    [
        # ∂ᵣu = 0 at r = 1 for both; Δ in polar coordinates by hand.
        (lambda r, t: r**2 - r**4 / 2, lambda r, t: 4 - 8 * r**2),
        (
            lambda r, t: (r**2 - r**4 / 2) * np.cos(2 * t),
            lambda r, t: -6 * r**2 * np.cos(2 * t),
        ),
    ],
)
def test_disk_laplacian_second_order_inside(f, lap):
    errors = []
    for nr in (16, 32, 64):
        grid = DiskGrid(nr, 4 * nr)
        r, t = _polar(grid)
        err = np.asarray(grid.laplacian(jnp.asarray(f(r, t)))) - lap(r, t)
        errors.append(np.abs(err[r < 1 - 1e-9]).max())
    rates = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all(rates > 1.8), (errors, rates)


def test_square_laplacian_second_order_inside():
    # Finite volumes: second order inside, first order in the wall cells (as for the
    # disk's outer ring), which keeps the solution second order.
    errors = []
    for n in (16, 32, 64):
        grid = SquareGrid(n, 2.0)
        x, y = grid.points.T
        u = np.cos(np.pi * (x + 1)) * np.cos(2 * np.pi * (y + 1))  # Neumann on [-1, 1]²
        err = np.asarray(grid.laplacian(jnp.asarray(u))) + 5 * np.pi**2 * u
        inside = (np.abs(x) < 1 - grid.spacing) & (np.abs(y) < 1 - grid.spacing)
        errors.append(np.abs(err[inside]).max())
    assert np.all(np.log2(np.array(errors[:-1]) / np.array(errors[1:])) > 1.8)


@pytest.mark.parametrize("grid", [DiskGrid(12, 40), SquareGrid(24, 3.0)])
def test_conservation_and_shifted_solves(grid):
    rng = np.random.default_rng(0)
    u = jnp.asarray(rng.normal(size=grid.size))
    assert abs(float(grid.integrate(grid.laplacian(u)))) < 1e-11 * grid.size
    assert np.sum(grid.areas) == pytest.approx(
        np.pi if isinstance(grid, DiskGrid) else 9.0
    )
    lap = jax.vmap(grid.laplacian, in_axes=1, out_axes=1)
    f = jnp.asarray(rng.normal(size=(grid.size, 3)))
    for a in (1.7, 1.7 + 0.9j):
        x = grid.solve_shifted(a, 0.4, f + 0j if isinstance(a, complex) else f)
        assert np.abs(np.asarray(a * x - 0.4 * lap(x) - f)).max() < 1e-10
    x1 = grid.solve_shifted(1.7, 0.4, f[:, 0])
    assert x1.shape == (grid.size,) and np.allclose(
        x1, grid.solve_shifted(1.7, 0.4, f)[:, 0]
    )


class Stiff(ds.AbstractSemilinearModel):
    """y' = A y + N(t, y) with A = diag(-1, -1e4) (the stiff linear part) and a
    nonlinear, time-dependent coupling."""

    state_names = ("a", "b")
    stiffness: float = 1e4

    def nonstiff_part(self, t, y, args):
        return jnp.stack([jnp.sin(t) - y[0] * y[1], jnp.cos(y[0])])

    def linear_part(self, y):
        return jnp.array([-1.0, -self.stiffness]) * y

    def factor_shifted(self, c):
        return c

    def solve_shifted(self, c, rhs):
        return rhs / (1 - c * jnp.array([-1.0, -self.stiffness]))

    def initial_state(self):
        return jnp.array([1.0, 0.5])


def test_linear_imex_matches_implicit_reference():
    ref = ds.simulate(Stiff(), (0.0, 3.0), solver="kvaerno5", rtol=1e-11, atol=1e-12)
    for name in ("kencarp3", "kencarp4", "kencarp5"):
        traj = ds.simulate(Stiff(), (0.0, 3.0), solver=name, rtol=1e-6, atol=1e-8)
        assert np.allclose(np.asarray(traj.ys[-1]), np.asarray(ref.ys[-1]), atol=1e-5)
        # The filtered error estimate: steps are not held near the 1e-4 time scale
        # (without the filter, kencarp4 needs 8 644 steps here).
        assert int(traj.stats["num_steps"]) < 1000


def test_linear_imex_reproduces_diffrax_kencarp():
    # The same tableau with exact linear stage solves: on the same (fixed) steps,
    # diffrax's KenCarp4 with Newton iterations gives the same answer.
    import diffrax as dfx
    import optimistix as optx

    m = Stiff()
    terms = dfx.MultiTerm(
        dfx.ODETerm(lambda t, y, a: m.nonstiff_part(t, y, a)),
        dfx.ODETerm(lambda t, y, a: m.linear_part(y)),
    )
    newton = optx.Newton(rtol=1e-13, atol=1e-13)
    ref = dfx.diffeqsolve(
        terms,
        dfx.KenCarp4(root_finder=newton),
        0.0,
        3.0,
        0.01,
        m.initial_state(),
    )
    ours = ds.simulate(m, (0.0, 3.0), solver="kencarp4", adaptive=False, dt0=0.01)
    assert np.allclose(np.asarray(ours.ys[-1]), np.asarray(ref.ys[-1]), rtol=1e-11)


def test_linear_kencarp4_is_fourth_order():
    # Fourth order where the steps resolve the linear part (in the stiff regime the
    # ESDIRK's stage order 2 shows instead: order reduction, as for any such method).
    model = Stiff(stiffness=2.0)
    ref = ds.simulate(model, (0.0, 1.0), solver="kvaerno5", rtol=1e-12, atol=1e-13)
    errs = []
    for dt in (0.1, 0.05, 0.025):
        traj = ds.simulate(model, (0.0, 1.0), solver="kencarp4", adaptive=False, dt0=dt)
        errs.append(abs(float(traj.ys[-1, 0] - ref.ys[-1, 0])))
    rates = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all(rates > 3.5), (errs, rates)


def test_large_polar_grid_does_not_deadlock():
    # XLA:CPU lets a large FFT inside a while loop fan out into the thread pool it is
    # running on and sleeps forever (64 × 304 grid, 2 cores); the grid splits its
    # transforms. Run in a subprocess so a regression fails instead of hanging.
    import subprocess
    import sys

    code = (
        "import dynsim as ds\n"
        "from dynsim.models import SelkovCellBulk\n"
        "m = SelkovCellBulk(centers=[(0.5, 0.0), (-0.5, 0.0), (0.0, 0.0)], n=64,"
        " ntheta=304, tau=0.55)\n"
        "r = ds.simulate(m, (0.0, 1.0), solver='kencarp4', rtol=1e-6, atol=1e-8)\n"
        "print(int(r.status))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "0"
