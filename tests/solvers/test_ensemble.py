"""The ensemble executor against the generic path (`vmap(integrate)`): the same steps,
the same states, the same statuses; and what it declines."""

import dataclasses
import os
import subprocess
import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
import pytest
from equinox.internal import prevbefore

import dynsim as ds
from dynsim import solvers
from dynsim._precision import check_positions
from dynsim.models import replace_parameters
from dynsim.solvers._step_rules import clip_floor
from tests.helpers import BlowUp


def _both(model, params, t_span, **kwargs):
    runs = {
        ex: ds.scan(model, params, t_span, executor=ex, progress=False, **kwargs)
        for ex in ("ensemble", "vmap")
    }
    assert runs["ensemble"].info.solver_settings["executor"] == "ensemble"
    return runs["ensemble"], runs["vmap"]


def _same_steps(a, b):
    """At least 99 % of the members take identical step counts, the rest ±1."""
    for key in ("num_steps", "num_accepted_steps", "num_rejected_steps"):
        sa, sb = np.asarray(a.stats[key]), np.asarray(b.stats[key])
        assert np.mean(sa == sb) >= 0.99, key
        assert np.max(np.abs(sa - sb)) <= 1, key


def _same_values(a, b, names):
    """The observables agree: NaN where the other's is, else to 1e-7."""
    for key in names:
        va, vb = np.asarray(a.values[key]), np.asarray(b.values[key])
        assert np.array_equal(np.isnan(va), np.isnan(vb)), key
        ok = ~np.isnan(vb)
        assert np.allclose(va[ok], vb[ok], rtol=1e-7, atol=1e-7), key


# 200 runs (on 64 lanes: the executor keeps at least 64 float64 lanes per device,
# so lanes are refilled as their runs end); tolerances rtol = atol = 1e-8.
CASES = {
    "lorenz": (ds.models.Lorenz(), {"rho": np.linspace(0.0, 60.0, 200)}, (0.0, 4.0)),
    "rossler": (ds.models.Rossler(), {"c": np.linspace(2.0, 9.0, 200)}, (0.0, 40.0)),
    "selkov": (ds.models.Selkov(), {"alpha": np.linspace(0.02, 0.2, 200)}, (0.0, 60.0)),
    "vanderpol_mu5": (
        ds.models.VanDerPol(),
        {"mu": np.linspace(4.5, 5.5, 200)},
        (0.0, 30.0),
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_same_steps_and_states_as_the_generic_path(name):
    model, params, span = CASES[name]
    a, b = _both(model, params, span, rtol=1e-8, atol=1e-8, saveat=5)
    assert a.info.solver_settings["lanes"] == 64  # 200 runs refill 64 lanes
    _same_steps(a, b)
    assert np.array_equal(a.status, b.status)
    assert np.all(a.status == ds.Status.SUCCESS)
    # Saved states (at 5 times, from the dense output) within 10× the tolerance
    # of each other, relative to the state's size.
    scale = 1.0 + np.abs(b.ys)
    assert np.max(np.abs(a.ys - b.ys) / scale) < 10 * 1e-8
    # Runs end at many different loop iterations: lanes refill one by one.
    assert len(np.unique(a.stats["num_steps"])) > 16


def test_running_observables_agree():
    model, params, span = CASES["lorenz"]
    obs = {
        "zmax": ds.observables.Max("z", t_from=1.0),
        "peaks": ds.observables.Peaks("z", t_from=1.0, max_peaks=16),
        "final": ds.observables.FinalState(),
        "mean": ds.observables.Mean("x", t_from=1.0),
        "curve": ds.observables.Function(lambda ts, ys: ys.max(axis=0), t_from=1.0),
    }
    a, b = _both(model, params, span, rtol=1e-8, atol=1e-8, observables=obs)
    _same_steps(a, b)
    _same_values(a, b, obs)


def test_fixed_steps_agree():
    model, params, span = CASES["lorenz"]
    a, b = _both(model, params, (0.0, 1.0), adaptive=False, dt0=1e-3)
    assert np.all(np.asarray(a.stats["num_steps"]) == 1000)
    _same_steps(a, b)
    assert np.max(np.abs(a.ys - b.ys)) < 1e-10


def test_fixed_steps_agree_in_single_precision():
    # Both paths sum float32 steps with compensation (`solvers/_unrolled.py`): they
    # agree to about an ulp, where summed plainly on either the two would differ by
    # ~1e-6 of the state (rho <= 21: no chaos amplifies round-off by t = 1).
    model = ds.models.Lorenz()
    params = {"rho": np.linspace(0.0, 21.0, 200)}
    a, b = _both(
        model, params, (0.0, 1.0), adaptive=False, dt0=1e-3, precision="single"
    )
    assert a.ys.dtype == b.ys.dtype == np.float32
    _same_steps(a, b)
    assert np.max(np.abs(a.ys - b.ys) / (1 + np.abs(b.ys))) < 5e-7


def test_mixed_dtype_state():
    # A state of float32 and float64 leaves (float32 times): the executor packs it
    # into one float64 vector, which it sums plainly; the generic path, holding a
    # float32 leaf, sums with compensation; the two agree to round-off.
    def setup(w):
        def field(t, y, args):
            a, b = -w * y["b"], w * y["a"]
            return {"a": a.astype(jnp.float32), "b": b.astype(jnp.float64)}

        return solvers.Problem("ode", field), {
            "a": jnp.float32(1.0),
            "b": jnp.float64(0.0),
        }

    options = solvers.solve_options("ode", rtol=1e-8, atol=1e-8)
    inputs, t0, t1 = jnp.linspace(1.0, 2.0, 4), np.float32(0.0), np.float32(1.0)
    ens = solvers.integrate_ensemble(setup, inputs, t0, t1, options=options, lanes=2)
    gen = jax.vmap(lambda w: solvers.integrate(*setup(w), t0, t1, options=options))(
        inputs
    )
    assert np.all(np.asarray(ens.status) == ds.Status.SUCCESS)
    assert np.allclose(ens.ys["b"][:, -1], gen.ys["b"][:, -1], rtol=1e-7, atol=1e-7)
    # (The closed form: a = cos wt, b = sin wt, at t = 1.)
    assert np.allclose(ens.ys["b"][:, -1], np.sin(np.linspace(1.0, 2.0, 4)), atol=1e-6)


def _pair(setup, inputs, t1, options, lanes):
    ens = eqx.filter_jit(
        lambda i, o: solvers.integrate_ensemble(
            setup, i, 0.0, t1, options=o, lanes=lanes
        )
    )(inputs, options)
    gen = eqx.filter_jit(
        lambda i, o: jax.vmap(
            lambda x: solvers.integrate(*setup(x), 0.0, t1, options=o)
        )(i)
    )(inputs, options)
    return ens, gen


def _van_der_pol(mu):
    """One run of the event tests: Van der Pol at `mu`, from x = 2 at rest."""
    model = replace_parameters(ds.models.VanDerPol(), {"mu": mu})
    return model.problem(), jnp.array([2.0, 0.0])


def test_events_agree():
    # Van der Pol from x = 2 at rest, stopped where x first crosses 0 (Newton on
    # the step's dense output, as diffrax locates an event): the crossing time and
    # state, for μ around 5, and a bound that some runs never reach.
    mus = jnp.linspace(4.5, 5.5, 40)
    options = solvers.solve_options(
        "ode", rtol=1e-8, atol=1e-8, event=lambda t, y, args: y[0]
    )
    ens, gen = _pair(_van_der_pol, mus, 6.0, options, lanes=8)
    status = np.asarray(gen.status)
    assert np.all(status == ds.Status.EVENT)
    assert np.array_equal(np.asarray(ens.status), status)
    assert np.allclose(np.asarray(ens.ts), np.asarray(gen.ts), rtol=1e-9)
    assert np.allclose(np.asarray(ens.ys), np.asarray(gen.ys), atol=1e-7)
    assert np.max(np.abs(np.asarray(ens.ys[:, -1, 0]))) < 1e-8  # on x = 0
    assert np.array_equal(
        np.asarray(ens.stats["num_steps"]), np.asarray(gen.stats["num_steps"])
    )

    # A boolean event: stop once the time passes a run-dependent mark; the
    # other runs end at t1.
    bool_options = solvers.solve_options(
        "ode", rtol=1e-8, atol=1e-8, event=lambda t, y, args: y[1] < -8.0
    )
    ens, gen = _pair(_van_der_pol, mus, 6.0, bool_options, lanes=8)
    assert np.array_equal(np.asarray(ens.status), np.asarray(gen.status))
    assert np.allclose(np.asarray(ens.ts), np.asarray(gen.ts), rtol=1e-12)
    assert np.allclose(np.asarray(ens.ys), np.asarray(gen.ys), atol=1e-7)


# Twelve runs of Van der Pol (μ ∈ [4.5, 5.5]) stopped where x first crosses 0,
# saved at fixed times.
_STOPPED_MUS = jnp.linspace(4.5, 5.5, 12)


def _stopped_van_der_pol(lanes):
    """The twelve stopped runs on `lanes` lanes: (solution, the loop's steps),
    compiled afresh on every call."""
    options = solvers.solve_options(
        "ode",
        rtol=1e-8,
        atol=1e-8,
        event=lambda t, y, args: y[0],
        saveat=solvers.SaveSpec(ts=jnp.linspace(0.0, 6.0, 7)),
    )
    return eqx.filter_jit(
        lambda i, o: solvers.integrate_ensemble(
            _van_der_pol, i, 0.0, 6.0, options=o, lanes=lanes, diagnostics=True
        )
    )(_STOPPED_MUS, options)


def test_a_lane_for_every_run_agrees_with_refilled_lanes():
    # With a lane for every run the executor's program is the loop over steps alone
    # (no refills): the same steps, saved states, events and statuses as runs
    # taken from the queue by fewer lanes, bit for bit (the same step, compiled
    # alike).
    refilled, _ = _stopped_van_der_pol(4)
    every, iterations = _stopped_van_der_pol(_STOPPED_MUS.size)
    assert np.all(np.asarray(every.status) == ds.Status.EVENT)
    for a, b in zip(jtu.tree_leaves(every), jtu.tree_leaves(refilled), strict=True):
        assert np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True)
    # Every lane steps on each iteration until its run ends: the loop runs as many
    # iterations as the run with the most steps takes.
    assert int(iterations) == int(np.max(every.stats["num_steps"]))


def test_few_lanes_take_two_steps_per_iteration(monkeypatch):
    # Few lanes (at most 512 bytes of each number) take two steps per iteration of
    # the loop, each lane computed in one loop (`solvers/_ensemble.py`): the same
    # steps, saved states, events and statuses, bit for bit, as one step per
    # iteration.
    from dynsim.solvers import _ensemble

    two, two_steps = _stopped_van_der_pol(4)
    monkeypatch.setattr(_ensemble, "_FEW_LANES_BYTES", 0)
    one, one_steps = _stopped_van_der_pol(4)
    assert np.all(np.asarray(two.status) == ds.Status.EVENT)
    for a, b in zip(jtu.tree_leaves(two), jtu.tree_leaves(one), strict=True):
        assert np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True)
    # The loop counts two steps per iteration; a lane whose run ends in the first
    # waits out the second, so the loop may take a step more per refill.
    assert int(two_steps) % 2 == 0
    assert int(one_steps) <= int(two_steps) <= int(one_steps) + 2 * _STOPPED_MUS.size


def test_fused_kernel_agrees():
    # The fused kernel (`integrate_blocks`, Pallas in interpret mode on a CPU) runs
    # the executor's programs: the same steps and states as the generic path, with
    # running observables, failures, a block padded with copies, and an event.
    model, params, span = CASES["lorenz"]
    obs = {
        "peaks": ds.observables.Peaks("z", t_from=1.0, max_peaks=16),
        "final": ds.observables.FinalState(),
    }
    kwargs = dict(rtol=1e-8, atol=1e-8, observables=obs, progress=False)
    a = ds.scan(model, params, span, executor="pallas", **kwargs)
    b = ds.scan(model, params, span, executor="vmap", **kwargs)
    assert a.info.solver_settings["executor"] == "pallas"
    _same_steps(a, b)
    _same_values(a, b, obs)
    a_values = np.linspace(0.1, 1.5, 24)  # NONFINITE past a = 1/2 (see below)
    kwargs = dict(rtol=1e-8, atol=1e-8, progress=False)
    a = ds.scan(BlowUp(), {"a": a_values}, (0.0, 2.0), executor="pallas", **kwargs)
    b = ds.scan(BlowUp(), {"a": a_values}, (0.0, 2.0), executor="vmap", **kwargs)
    assert np.array_equal(a.status, b.status)
    assert set(a.status.tolist()) == {ds.Status.SUCCESS, ds.Status.NONFINITE}
    ok = a.status == ds.Status.SUCCESS
    assert np.allclose(a.ys[ok], b.ys[ok], rtol=1e-10)

    options = solvers.solve_options(
        "ode", rtol=1e-8, atol=1e-8, event=lambda t, y, args: y[0]
    )
    mus = jnp.linspace(4.5, 5.5, 20)
    fused = eqx.filter_jit(
        lambda i, o: solvers.integrate_blocks(
            _van_der_pol, i, 0.0, 6.0, options=o, block=8
        )
    )(mus, options)
    _, gen = _pair(_van_der_pol, mus, 6.0, options, lanes=8)
    assert np.all(np.asarray(fused.status) == ds.Status.EVENT)
    assert np.allclose(np.asarray(fused.ts), np.asarray(gen.ts), rtol=1e-9)
    assert np.allclose(np.asarray(fused.ys), np.asarray(gen.ys), atol=1e-7)
    with pytest.raises(ValueError, match="power of two"):
        solvers.integrate_blocks(_van_der_pol, mus, 0.0, 6.0, options=options, block=6)


def test_failures_are_statuses_per_run():
    # x' = a x² from x = 1 blows up at t = 1/a: runs with a > 1/2 fail within the
    # span [0, 2] (NONFINITE), the others end at x = 1/(1 − 2a); a small step
    # budget stops some runs early (MAX_STEPS).
    a_values = np.linspace(0.1, 1.5, 24)
    a, b = _both(BlowUp(), {"a": a_values}, (0.0, 2.0), rtol=1e-8, atol=1e-8)
    assert np.array_equal(a.status, b.status)
    blows = a_values > 0.5
    assert np.all(a.status[blows] == ds.Status.NONFINITE)
    assert np.all(a.status[~blows] == ds.Status.SUCCESS)
    assert np.all(np.isnan(a.ys[blows, -1]))
    exact = 1 / (1 - 2 * a_values[~blows])
    assert np.allclose(a.ys[~blows, -1, 0], exact, rtol=1e-6)
    a, b = _both(
        BlowUp(), {"a": a_values[:8]}, (0.0, 2.0), rtol=1e-8, atol=1e-8, max_steps=60
    )
    assert np.array_equal(a.status, b.status)
    assert set(a.status.tolist()) == {ds.Status.SUCCESS, ds.Status.MAX_STEPS}


def test_results_do_not_depend_on_chunks_or_lanes():
    model, params, span = CASES["lorenz"]
    runs = [
        ds.scan(
            model,
            params,
            span,
            rtol=1e-8,
            atol=1e-8,
            chunk_size=c,
            executor="ensemble",
            progress=False,
        )
        for c in (200, 16, 5)
    ]
    # 200 runs refill 64 lanes; chunks of 16 and 5 runs have a lane for every run,
    # whose program is the loop over steps alone.
    assert [r.info.solver_settings["lanes"] for r in runs] == [64, 16, 5]
    for r in runs[1:]:
        assert np.array_equal(r.ys, runs[0].ys)
        assert np.array_equal(r.stats["num_steps"], runs[0].stats["num_steps"])


def test_lane_refill_keeps_lanes_busy():
    # An orbit-diagram-like ensemble (ρ ∈ [0, 200]: step counts differ several-fold):
    # the loop's lane-steps (lanes × iterations) stay within 1.2× of the sum of the
    # members' own attempted steps, where lockstep lanes would need max × lanes.
    # 512 runs on 64 lanes: each lane solves about eight runs, as a large scan's
    # lanes do (`ensemble_lanes`).
    model = ds.models.Lorenz()
    plan = ds.plan_scan(
        model,
        {"rho": np.linspace(0.0, 200.0, 512)},
        (0.0, 20.0),
        y0=np.array([1.0, 1.0, 1.0]),
        rtol=1e-6,
        atol=1e-6,
        observables={"zmax": ds.observables.Max("z", t_from=10.0)},
    )
    assert plan.executor == "ensemble"
    plan = dataclasses.replace(plan, ensemble_lanes=64)
    out, iterations = plan.run_chunk(plan.chunk_inputs(0), diagnostics=True)
    steps = np.asarray(out[3]["num_steps"])
    lane_steps = int(np.sum(iterations)) * plan.ensemble_lanes
    assert lane_steps <= 1.2 * steps.sum()
    assert steps.max() * steps.size > 1.5 * steps.sum()  # lockstep would waste


def test_single_precision():
    model, params, span = CASES["lorenz"]
    single = ds.scan(
        model,
        params,
        (0.0, 1.0),
        rtol=1e-5,
        atol=1e-5,
        precision="single",
        progress=False,
    )
    double = ds.scan(model, params, (0.0, 1.0), rtol=1e-5, atol=1e-5, progress=False)
    assert single.ys.dtype == np.float32 and double.ys.dtype == np.float64
    assert single.info.solver_settings["precision"] == "single"
    assert single.info.solver_settings["executor"] == "ensemble"
    # Against a tight double-precision reference, the float32 solve's error is that
    # of the float64 solve at the same tolerance (the tolerance, not the precision,
    # sets it at rtol 1e-5), up to float32 round-off.
    ref = ds.scan(model, params, (0.0, 1.0), rtol=1e-12, atol=1e-12, progress=False)
    scale = 1 + np.abs(ref.ys)
    err32 = np.max(np.abs(single.ys - ref.ys) / scale)
    err64 = np.max(np.abs(double.ys - ref.ys) / scale)
    assert err64 > 1e-6  # the tolerance shows
    assert err32 < 2 * err64 + 1e-5
    assert np.all(single.status == ds.Status.SUCCESS)
    # The scan reports its achieved error, measured the same way on 8 of its runs
    # against float64 solves at 1e-3 of its tolerances: at most the error over all
    # its runs (the reference's own error is ~1e-8 here), and of its size (the error
    # varies smoothly with rho, and the runs are spread over the whole range).
    settings = single.info.solver_settings
    assert settings["achieved_error_runs"] == 8
    assert err32 / 10 < settings["achieved_error"] <= err32 + 1e-7
    assert "achieved_error" not in double.info.solver_settings


@pytest.mark.parametrize("executor", ["ensemble", "vmap"])
def test_single_precision_check_is_the_float64_scan(executor):
    # The achieved error is the float64 scan's verdict on the runs it checks: each
    # chunk (three here) solves 8 of its runs again in float64 with Dopri8 at 1e-3
    # of the tolerances; where a run failed in either precision (max_steps too small
    # for the larger rho, and more so at the tighter tolerance) it is not compared.
    # Recomputed here from the public scans, both precisions, on every run of a
    # scan of 8-run chunks (so every run is checked once).
    model = ds.models.Lorenz()
    params = {"rho": np.linspace(0.0, 40.0, 24)}
    kwargs = dict(y0=np.array([1.0, 0.0, 0.0]), max_steps=24, progress=False)
    kwargs.update(executor=executor, chunk_size=8)
    single = ds.scan(
        model, params, (0.0, 1.0), rtol=1e-4, atol=1e-4, precision="single", **kwargs
    )
    ref = ds.scan(
        model, params, (0.0, 1.0), rtol=1e-7, atol=1e-7, solver="dopri8", **kwargs
    )
    both = single.ok_mask & ref.ok_mask
    # (four runs fail in float32, more at the float64 check's tighter tolerance)
    assert 0 < both.sum() < single.ok_mask.sum() < 24
    diff = np.abs(single.ys[both] - ref.ys[both]) / (1 + np.abs(ref.ys[both]))
    settings = single.info.solver_settings
    assert settings["achieved_error_runs"] == both.sum()
    np.testing.assert_allclose(settings["achieved_error"], diff.max(), rtol=1e-6)


def test_single_precision_check_options():
    # The check's float64 solves: an explicit Runge–Kutta scan is checked with
    # Dopri8 at 1e-3 of its tolerances; an implicit solver (a stiff problem, where
    # an explicit method would stall) keeps its own; fixed steps keep the scan's
    # own solver and steps.
    from dynsim._scan_fixed import _check_options

    for name in ("tsit5", "dopri5", "bosh3"):
        options = solvers.solve_options("ode", solver=name, rtol=1e-5, atol=1e-7)
        checked = _check_options(options, "ode")
        assert checked.solver == "dopri8"
        np.testing.assert_allclose([checked.rtol, checked.atol], [1e-8, 1e-10])
    implicit = solvers.solve_options("ode", solver="kvaerno5", rtol=1e-5, atol=1e-7)
    assert _check_options(implicit, "ode").solver == "kvaerno5"
    fixed = solvers.solve_options("ode", solver="tsit5", dt0=1e-3, adaptive=False)
    assert _check_options(fixed, "ode") is fixed


def test_check_positions():
    # Each device's positions spread evenly over its share of the chunk's runs,
    # each run once, -1 for none (a device holding padding only checks nothing).
    at = check_positions([3, 2, 0], 4).reshape(3, 4)
    assert at.tolist() == [[0, 1, 2, -1], [0, 1, -1, -1], [-1, -1, -1, -1]]
    assert check_positions([100], 5).tolist() == [0, 25, 50, 74, 99]


def test_achieved_error_joins_the_settings_text():
    # The achieved error is added to the settings' JSON text as it stands: the
    # same text as the settings with the two entries added and dumped again
    # (json.dumps keeps insertion order); a second one is refused.
    import json

    from dynsim._precision import with_achieved_error
    from dynsim._results import RunInfo

    settings = {"solver": "Tsit5", "rtol": 1e-5, "dt0": None, "lanes": [4, 4]}
    info = RunInfo("m", "{}", ("x",), json.dumps(settings))
    checks = [(np.array([1e-6, 3e-6]), np.array([4, 3])), (np.array([9.0]), [0])]
    checked = with_achieved_error(info, checks)
    expected = dict(settings, achieved_error=3e-6, achieved_error_runs=7)
    assert checked.solver == json.dumps(expected)
    none = with_achieved_error(info, [(np.array([1e-6]), np.array([0]))])
    assert none.solver_settings["achieved_error"] is None
    assert none.solver_settings["achieved_error_runs"] == 0
    empty = with_achieved_error(RunInfo("m", "{}", ("x",), "{}"), checks)
    assert empty.solver_settings == {"achieved_error": 3e-6, "achieved_error_runs": 7}
    with pytest.raises(ValueError, match="achieved error already"):
        with_achieved_error(checked, checks)
    # A NaN among the compared errors wins wherever it stands, as in NumPy's max,
    # and non-finite errors are written as json.dumps writes them.
    for errors in ([1e-6, np.nan, 2e-6], [np.nan, 2e-6, 1e-6]):
        nan = with_achieved_error(info, [(np.array(errors), np.array([1, 1, 1]))])
        assert np.isnan(nan.solver_settings["achieved_error"])
    inf = with_achieved_error(info, [(np.array([1e-6, np.inf]), np.array([1, 1]))])
    expected = dict(settings, achieved_error=np.inf, achieved_error_runs=2)
    assert inf.solver == json.dumps(expected)


def test_single_precision_error_is_stored(tmp_path):
    # A streamed single-precision scan records its achieved error in its file too.
    model, params, span = CASES["lorenz"]
    path = tmp_path / "single.h5"
    kwargs = dict(rtol=1e-5, atol=1e-5, precision="single", progress=False)
    single = ds.scan(model, params, (0.0, 1.0), store=path, name="s", **kwargs)
    error = single.info.solver_settings["achieved_error"]
    assert error > 0
    assert ds.io.load(path, "s").info.solver_settings["achieved_error"] == error


def test_declines_with_a_reason():
    model, params, span = CASES["lorenz"]
    stiff = solvers.solve_options("ode", solver="kvaerno5")
    problem = model.problem()
    assert "implicit" in solvers.ensemble_support(problem, stiff)
    assert "SDE" in solvers.ensemble_support(
        ds.models.AdditiveNoise(base=model).problem(),
        solvers.solve_options("sde", dt0=0.01),
    )
    assert "state of 100" in solvers.ensemble_support(
        problem, solvers.solve_options("ode"), 100
    )
    # A few runs leave no lanes to refill, but the executor's program compiles
    # faster than the generic one (docs/solvers.md): `auto` takes it all the same.
    few = ds.scan(model, {"rho": params["rho"][:4]}, span)
    assert few.info.solver_settings["executor"] == "ensemble"
    assert "executor_reason" not in few.info.solver_settings
    auto = ds.scan(model, {"rho": params["rho"][:4]}, span, solver="kvaerno5")
    assert auto.info.solver_settings["executor"] == "vmap"
    assert "implicit" in auto.info.solver_settings["executor_reason"]
    with pytest.raises(ValueError, match="implicit"):
        ds.scan(model, params, span, solver="kvaerno5", executor="ensemble")
    with pytest.raises(ValueError, match="executor"):
        ds.scan(model, params, span, executor="fast")
    with pytest.raises(ValueError, match="precision"):
        ds.scan(model, params, span, precision="half")


@pytest.mark.slow
def test_several_devices_agree_with_one():
    # Two CPU devices, each its share of the runs (interleaved) on its own lanes:
    # the same numbers as one device.
    code = (
        "import numpy as np, dynsim as ds, jax, sys\n"
        "assert jax.local_device_count() == 2\n"
        "r = ds.scan(ds.models.Lorenz(), {'rho': np.linspace(0, 60, 200)}, (0, 4),"
        " rtol=1e-8, atol=1e-8, executor='ensemble', progress=False)\n"
        "np.save(sys.argv[1], np.concatenate([r.ys.ravel(),"
        " r.stats['num_steps'].astype(float)]))\n"
    )
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"two-{os.getpid()}.npy")
    subprocess.run([sys.executable, "-c", code, path], env=env, check=True)
    two = np.load(path)
    os.remove(path)
    model, params, span = CASES["lorenz"]
    one = ds.scan(
        model, params, span, rtol=1e-8, atol=1e-8, executor="ensemble", progress=False
    )
    n = one.ys.size
    assert np.array_equal(two[n:], one.stats["num_steps"])
    assert np.allclose(two[:n], one.ys.ravel(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
def test_clip_floor_is_diffeqsolves(dtype):
    # diffeqsolve ends a step at t1 from t1 less 100 ULP, found by 100 repeated
    # `prevbefore`; the executor computes the same number on the bit patterns.
    for value in (0.0, 1.0, -1.0, 200.0, 1e-3, -7.25, 1e30, -1e30, 0.5, 3e5):
        t1 = jnp.asarray(value, dtype)
        expected = t1
        for _ in range(100):
            expected = prevbefore(expected)
        assert clip_floor(t1) == expected, value
