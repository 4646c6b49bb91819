"""Numerical failures come back as statuses, not exceptions: each public analysis is
driven into a failure here, returns a result that is not `ok` with a `status` and a
`message`, and raises `RuntimeError` instead with `throw=True`."""

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import dynsim as ds
from dynsim.analysis import (
    bifurcation_curve,
    continuation,
    cycle_continuation,
    equilibrium,
    ews,
    lyapunov_spectrum,
    max_lyapunov,
    ramp_experiment,
    rosenstein,
)
from dynsim.analysis.selkov import FAILED, STABLE, phase_diagram
from dynsim.models import SelkovLargeD, param
from dynsim.solvers import Status
from tests.helpers import BlowUp


class NoRoot(ds.AbstractModel):
    """ẋ = c + x²: no equilibrium for c > 0."""

    c: float = param(1.0)
    state_names = ("x",)

    def vector_field(self, t, y, args):
        return self.c + y**2

    def initial_state(self):
        return jnp.zeros(1)


class Shifted(ds.AbstractModel):
    """ẋ = r − s − x²: a fold at x = 0 on the line r = s (with `lift`, ẋ ≥ 1 has
    no equilibrium, hence no fold, anywhere)."""

    r: float = param(1.0)
    s: float = param(0.0)
    lift: float = param(0.0)
    state_names = ("x",)

    def vector_field(self, t, y, args):
        f = self.r - self.s - y**2
        return jnp.where(self.lift > 0, 1.0 + y**2 + 0.0 * f, f)

    def initial_state(self):
        return jnp.ones(1)


def _fails(result, status):
    assert not result.ok
    assert np.any(np.asarray(result.status) == status), result.status
    assert isinstance(result.message, str) and result.message


def test_equilibrium():
    bad = equilibrium(NoRoot(), [0.3])
    _fails(bad, Status.NO_CONVERGENCE)
    assert "did not converge" in bad.message
    with pytest.raises(RuntimeError, match="did not converge"):
        equilibrium(NoRoot(), [0.3], throw=True)


def test_continuation_that_cannot_start():
    branch = continuation(NoRoot(), "c", (1.0, 2.0), progress=False)
    _fails(branch, Status.NO_CONVERGENCE)
    assert branch.p.size == 0 and "no equilibrium at c = 1.0" in branch.message
    with pytest.raises(RuntimeError, match="no equilibrium at c = 1.0"):
        continuation(NoRoot(), "c", (1.0, 2.0), progress=False, throw=True)


@pytest.mark.parametrize("method", ["collocation", "shooting"])
def test_cycles_that_cannot_converge(method):
    # μ < 0: the Hopf normal form has no cycle at all, whatever the guess; the
    # equilibrium solves the cycle equations for any period, and a corrector that
    # lands there has not found a cycle (it reported one before).
    model = ds.models.HopfNormalForm(mu=-0.5)
    kw = dict(
        x0=[1.0, 0.0], period=2 * np.pi, max_points=5, progress=False, method=method
    )
    cycles = cycle_continuation(model, "mu", (-0.5, -0.4), **kw)
    _fails(cycles, Status.NO_CONVERGENCE)
    with pytest.raises(RuntimeError):
        cycle_continuation(model, "mu", (-0.5, -0.4), throw=True, **kw)


def test_curve_that_cannot_start():
    branch = continuation(Shifted(), "r", (1.0, -1.0), progress=False)
    (fold,) = branch.special("fold")
    spans = {"r": (-2.0, 2.0), "s": (-1.0, 1.0)}
    assert bifurcation_curve(branch, fold, "s", spans).ok  # the line r = s
    # The same start on a model without any fold: Newton cannot converge.
    none = Shifted(lift=1.0)
    curve = bifurcation_curve(branch, fold, "s", spans, model=none)
    _fails(curve, Status.NO_CONVERGENCE)
    assert curve.values.size == 0
    with pytest.raises(RuntimeError):
        bifurcation_curve(branch, fold, "s", spans, model=none, throw=True)


def test_lyapunov_run_that_blows_up():
    r = lyapunov_spectrum(BlowUp(), t_total=5.0, dt_renorm=0.5)
    _fails(r, Status.NONFINITE)
    assert np.all(np.isnan(r.exponents))
    # Per point in a parameter scan: the decaying point a = −1 is fine.
    scan = lyapunov_spectrum(
        BlowUp(), t_total=5.0, dt_renorm=0.5, params={"a": [-1.0, 1.0]}
    )
    assert list(scan.ok_mask) == [True, False] and not scan.ok
    assert scan.exponents[0, 0] == pytest.approx(0.0, abs=0.5)  # x → 0 like 1/t
    with pytest.raises(RuntimeError):
        lyapunov_spectrum(BlowUp(), t_total=5.0, dt_renorm=0.5, throw=True)
    two = max_lyapunov(BlowUp(), t_total=5.0, dt_renorm=0.5)
    _fails(two, Status.NONFINITE)


def test_series_analyses_with_a_broken_series():
    # A sensor stuck at one value: no indicator has a trend, no divergence grows.
    x = np.random.default_rng(0).standard_normal((3, 300)).cumsum(1)
    x[1] = 0.0
    r = ews(x, window=0.3, bandwidth=0.25)
    assert np.isnan(r.kendall_tau["variance"][1])
    assert list(r.ok_mask) == [True, False, True]
    _fails(r, Status.NONFINITE)
    with pytest.raises(RuntimeError):
        ews(x, window=0.3, bandwidth=0.25, throw=True)
    lam = rosenstein(x, horizon=10)
    assert not lam.ok and lam.ok_mask[0] and not lam.ok_mask[1]
    with pytest.raises(RuntimeError):
        rosenstein(x, horizon=10, throw=True)


def test_ramp_with_failing_runs():
    # Noise far larger than the basin: x is kicked below 0, where x(1 − x/10) ≈
    # −x²/10 blows up in finite time. Every run fails before the fold.
    kw = dict(sigma=20.0, realisations=3, state="x", saveat=101, key=jr.key(0))
    kw |= dict(null=False, progress=False)
    r = ramp_experiment(ds.models.MayHarvesting(), "h", 1.0, 3.0, (0.0, 100.0), **kw)
    assert not r.ok and r.ews is None and "no usable run" in repr(r)
    assert np.all(r.status != Status.SUCCESS), r.run_status
    with pytest.raises(ValueError, match="no figure"):
        r.figures()
    with pytest.raises(RuntimeError):
        ramp_experiment(
            ds.models.MayHarvesting(), "h", 1.0, 3.0, (0.0, 100.0), throw=True, **kw
        )


def test_phase_diagram_failed_points_are_failed_not_stable():
    model = SelkovLargeD(centers=[(0.5, 0.0), (-0.5, 0.0)])
    grid = {"D": [1.0], "tau": [0.2, 0.55]}
    # Solved, both points are known (test_phase_diagram.py: τ = 0.2 is STABLE);
    # here no solve gets far enough to say anything.
    kw = dict(method="simulate", t_span=(0.0, 60.0), t_from=30.0, progress=False)
    bad = phase_diagram(model, grid, max_steps=8, **kw)
    assert np.all(bad.mode == FAILED) and not np.any(bad.mode == STABLE)
    _fails(bad, Status.MAX_STEPS)
    with pytest.raises(RuntimeError):
        phase_diagram(model, grid, max_steps=8, throw=True, **kw)


def test_fit_whose_loss_diverges(tmp_path):
    model = ds.models.NeuralODE(2, width=4, key=jr.key(0))
    ts = np.linspace(0.0, 1.0, 5)
    # Targets beyond what a squared error can hold: the loss overflows.
    data = (ts, np.ones((3, 2)), np.full((3, 5, 2), 1e200))
    kw = dict(steps=20, progress=False)
    res = ds.fit(model, data, **kw)
    _fails(res, Status.NONFINITE)
    assert len(res.losses) == 0 and "loss became inf" in res.message
    assert "no step" in repr(res)
    # A failed result is kept: saved and loaded with its status (not its model).
    ds.io.save(res, tmp_path / "fit.h5", "f")
    back = ds.io.load(tmp_path / "fit.h5")
    assert back.status == Status.NONFINITE and back.model is None
    assert back.message == res.message
    with pytest.raises(RuntimeError, match="loss became"):
        ds.fit(model, data, throw=True, **kw)
