"""dynsim.scan: per-point solves, observables, failures, compilation reuse."""

import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import dynsim as ds
from tests.helpers import BlowUp, Decay


def test_grid_and_zip_layouts():
    ks = np.array([0.5, 1.0, 2.0])
    res = ds.scan(Decay(), {"k": ks}, (0.0, 1.0), rtol=1e-10, atol=1e-12)
    assert res.shape == (3,) and res.ys.shape == (3, 1, 1)
    assert np.allclose(res.ys[:, -1, 0], np.exp(-ks), rtol=1e-8)

    model = ds.models.Brusselator()
    a, b = np.array([1.0, 2.0]), np.array([1.0, 3.0, 5.0])
    grid = ds.scan(model, {"a": a, "b": b}, (0.0, 1.0))
    assert grid.shape == (2, 3) and grid.axes == ("a", "b")
    assert np.array_equal(grid.reshape(grid.params["b"])[1], b)
    assert np.array_equal(grid.axis_values("a"), a)
    zipped = ds.scan(model, {"a": a, "b": b[:2]}, (0.0, 1.0), grid=False)
    assert zipped.shape == (2,)
    # Same point, same answer, whatever the layout.
    assert np.allclose(zipped.ys[1], grid.reshape(grid.ys)[1, 1])


def test_observables_match_hopf_normal_form():
    # r' = μ r + a r³: for μ > 0, a = -1 the cycle has radius √μ and angular
    # frequency ω (b = 0); for μ < 0 the origin attracts.
    mus = np.array([-0.2, 0.04, 0.25, 1.0])
    obs = {
        "amp": ds.observables.Amplitude("x", t_from=150.0),
        "mean": ds.observables.Mean("x", t_from=150.0),
        "crossings": ds.observables.SignChanges("x", t_from=150.0),
        "final": ds.observables.FinalState(),
        "top": ds.observables.Max("y", t_from=150.0),
    }
    res = ds.scan(
        ds.models.HopfNormalForm(omega=2.0),
        {"mu": mus},
        (0.0, 200.0),
        observables=obs,
        samples=4001,
        rtol=1e-9,
        atol=1e-11,
    )
    amp = res.values["amp"]
    assert amp[0] < 1e-6
    assert np.allclose(amp[1:], np.sqrt(mus[1:]), rtol=1e-3)
    assert np.allclose(res.values["top"][1:], np.sqrt(mus[1:]), rtol=1e-3)
    assert np.all(np.abs(res.values["mean"][1:]) < 2e-2 * np.sqrt(mus[1:]))
    # 50 time units at ω = 2: 2·50·2/(2π) ≈ 31.8 zero crossings.
    assert np.all(np.abs(res.values["crossings"][1:] - 100 / np.pi) <= 1)
    assert res.values["final"].shape == (4, 2)


@pytest.mark.parametrize("executor", ["ensemble", "vmap"])
def test_failing_points_are_recorded_not_fatal(executor):
    # x' = a x², x(0) = 1 blows up at t = 1/a: inside [0, 1] for a > 1. A blow-up is
    # a divergence (NONFINITE), found without spending the step budget; the failed
    # points' states are NaN, not the last finite-looking numbers.
    a = np.array([0.25, 0.5, 2.0, 0.75, 4.0])
    res = ds.scan(
        BlowUp(), {"a": a}, (0.0, 1.0), rtol=1e-8, atol=1e-10, executor=executor
    )
    failed = a > 1
    assert np.array_equal(~res.ok_mask, failed)
    assert np.all(res.status[failed] == ds.Status.NONFINITE)
    assert np.all(res.stats["num_steps"][failed] < 5000)
    assert np.all(np.isnan(res.ys[failed]))
    good = res.ys[~failed, -1, 0]
    assert np.allclose(good, 1 / (1 - a[~failed]), rtol=1e-6)
    assert res.n_failed == 2 and "nonfinite=2" in repr(res)
    # A budget too small for a regular solve is still MAX_STEPS.
    short = ds.scan(
        BlowUp(), {"a": [0.5]}, (0.0, 1.0), max_steps=5, rtol=1e-8, executor=executor
    )
    assert short.status[0] == ds.Status.MAX_STEPS


@pytest.mark.parametrize("executor", ["ensemble", "vmap"])
def test_observables_of_failed_points_are_nan(executor):
    res = ds.scan(
        BlowUp(),
        {"a": [0.5, 3.0]},
        (0.0, 1.0),
        max_steps=500,
        observables={"m": ds.observables.Max()},
        executor=executor,
    )
    assert np.isfinite(res.values["m"][0]) and np.isnan(res.values["m"][1])


@pytest.mark.parametrize("executor", ["vmap", "ensemble"])
def test_new_values_reuse_the_compiled_scan(monkeypatch, executor):
    # A scan traces its chunk program once; new parameter values, other grids of the
    # same chunk size and other tolerances reuse the compiled program.
    import equinox as eqx

    import dynsim._scan_kernel as kernel_module

    guarded = jax.jit(
        eqx.debug.assert_max_traces(kernel_module._program, max_traces=1),
        static_argnums=0,
    )
    monkeypatch.setattr(kernel_module, "_nested", guarded)  # (the scans' program)
    model = ds.models.VanDerPol()
    obs = {"amp": ds.observables.Amplitude("x", t_from=5.0)}
    for mus, rtol in [
        ([0.1, 0.2, 0.3], 1e-6),
        ([1.5, 2.5, 3.5], 1e-7),
        ([4.0, 5.0, 6.0, 7.0, 8.0], 1e-6),
    ]:
        ds.scan(
            model,
            {"mu": mus},
            (0.0, 10.0),
            observables=obs,
            chunk_size=3,
            rtol=rtol,
            executor=executor,
        )
    # A fourth call would trace again if anything but values had changed.
    with pytest.raises(RuntimeError, match="traced"):
        ds.scan(
            model,
            {"mu": [1.0]},
            (0.0, 10.0),
            observables=obs,
            chunk_size=1,
            executor=executor,
        )


@pytest.mark.parametrize("executor", ["ensemble", "vmap"])
def test_chunking_does_not_change_results(executor):
    # Equal up to round-off (vector widths differ between chunk sizes).
    model = ds.models.VanDerPol()
    mu = np.linspace(0.0, 3.0, 10)
    one = ds.scan(model, {"mu": mu}, (0.0, 5.0), executor=executor)
    many = ds.scan(
        model, {"mu": mu}, (0.0, 5.0), chunk_size=3, progress=False, executor=executor
    )
    assert np.allclose(one.ys, many.ys, rtol=1e-10, atol=1e-12)
    assert np.array_equal(one.stats["num_steps"], many.stats["num_steps"])


def test_sde_scan_points_get_independent_reproducible_noise():
    model = ds.models.OrnsteinUhlenbeck(theta=1.0, sigma=1.0)
    sig = np.ones(6)
    a = ds.scan(model, {"sigma": sig}, (0.0, 1.0), dt0=1e-2, key=jr.key(5))
    b = ds.scan(
        model, {"sigma": sig}, (0.0, 1.0), dt0=1e-2, key=jr.key(5), chunk_size=4
    )
    assert np.allclose(a.ys, b.ys, rtol=1e-12)
    assert len(np.unique(a.ys[:, -1, 0])) == 6


def test_map_scan():
    res = ds.scan(
        ds.models.Henon(),
        {"a": [0.2, 1.4]},
        (0, 2000),
        observables={"amp": ds.observables.Amplitude("x", t_from=1000)},
    )
    # a = 0.2: a stable fixed point; a = 1.4: the chaotic attractor (x in ±1.28).
    assert res.values["amp"][0] < 1e-9 and res.values["amp"][1] > 1.0


class TestBadInput:
    def test_unknown_parameter(self):
        with pytest.raises(ValueError, match="no parameter 'rh0'.*rho"):
            ds.scan(ds.models.Lorenz(), {"rh0": [1.0]}, (0.0, 1.0))

    def test_bad_values(self):
        with pytest.raises(ValueError, match="1-D"):
            ds.scan(ds.models.Lorenz(), {"rho": [[1.0, 2.0]]}, (0.0, 1.0))
        with pytest.raises(ValueError, match="same length"):
            ds.scan(
                ds.models.Brusselator(),
                {"a": [1.0], "b": [1.0, 2.0]},
                (0.0, 1.0),
                grid=False,
            )

    def test_unknown_state_in_observable(self):
        with pytest.raises(ValueError, match="no state 'q'"):
            ds.scan(
                ds.models.Lorenz(),
                {"rho": [1.0]},
                (0.0, 1.0),
                observables={"m": ds.observables.Max("q")},
            )


def test_scan_shards_over_several_devices(tmp_path):
    # Two host "devices" in a fresh process: each solves its block of a chunk's
    # points on its own (the generic path, chunks of 4: two runs per device), and
    # the results equal a one-device solve; keyed SDE runs draw the same noise.
    script = tmp_path / "sharded.py"
    ys, sde_ys = tmp_path / "ys.npy", tmp_path / "sde.npy"
    script.write_text(
        "import jax, jax.random as jr, numpy as np, dynsim as ds\n"
        "assert jax.local_device_count() == 2\n"
        "r = ds.scan(ds.models.Lorenz(), {'rho': np.linspace(0, 30, 7)}, (0.0, 1.0),\n"
        "            rtol=1e-10, atol=1e-10, chunk_size=3, executor='vmap')\n"
        f"np.save(r'{ys}', r.ys[:, -1])\n"
        "s = ds.scan(ds.models.OrnsteinUhlenbeck(), {'theta': [0.5, 2.0]},\n"
        "            (0.0, 1.0), dt0=1e-2, realisations=3, key=jr.key(3),\n"
        "            chunk_size=2)\n"
        f"np.save(r'{sde_ys}', s.ys)\n"
        # The generic path's chunk program joins the devices nowhere (the compiler
        # split a vmapped solve over them and reduced its loop condition across
        # them on every step: 25x slower for small chunks) ...
        "import dataclasses\n"
        "from dynsim import _scan_kernel\n"
        "p = ds.plan_scan(ds.models.Lorenz(), {'rho': [1.0, 2.0, 3.0, 4.0]},\n"
        "                 (0.0, 1.0), executor='vmap')\n"
        "v, pt, re, at = p.chunk_inputs(0)\n"
        "static, arrays = _scan_kernel.prepared(*p._program_parts())\n"
        "program = _scan_kernel.compiled_program(True, tuple(jax.local_devices()))\n"
        "hlo = program.lower(static, v, pt, re, at, arrays).compile().as_text()\n"
        "assert 'all-reduce' not in hlo and 'all-gather' not in hlo\n"
        # ... nor does the ensemble executor's (its outputs stay in the order the
        # devices took the runs; `to_host` puts them in the runs' order) ...
        "q = ds.plan_scan(ds.models.Lorenz(), {'rho': [1.0, 2.0, 3.0, 4.0, 5.0]},\n"
        "                 (0.0, 1.0), executor='ensemble')\n"
        "v, pt, re, at = q.chunk_inputs(0)\n"
        "static, arrays = _scan_kernel.prepared(*q._program_parts())\n"
        "program = _scan_kernel.compiled_program(True, tuple(jax.local_devices()))\n"
        "hlo = program.lower(static, v, pt, re, at, arrays).compile().as_text()\n"
        "assert 'all-reduce' not in hlo and 'all-gather' not in hlo\n"
        # ... nor does a single-precision chunk's float64 check (each device
        # checks runs of its own) ...
        "s = ds.plan_scan(ds.models.Lorenz(), {'rho': [1.0, 2.0, 3.0, 4.0, 5.0]},\n"
        "                 (0.0, 1.0), rtol=1e-5, atol=1e-5, precision='single')\n"
        "static, arrays = _scan_kernel.prepared(*s._program_parts())\n"
        "hlo = program.lower(static, *s.chunk_inputs(0), arrays)\n"
        "hlo = hlo.compile().as_text()\n"
        "assert 'all-reduce' not in hlo and 'all-gather' not in hlo\n"
        "out = s.to_host(0, s.run_chunk(s.chunk_inputs(0), packed=True))\n"
        "assert out[4][1].tolist() == [3, 2]\n"
        "one = ds.scan(ds.models.Lorenz(), {'rho': [1.0, 2.0, 3.0, 4.0, 5.0]},\n"
        "              (0.0, 1.0), executor='vmap').ys\n"
        "out = q.to_host(0, q.run_chunk((v, pt, re, at), packed=True))\n"
        "assert np.allclose(out[1], one)\n"
        # (the packed outputs read back: each device's block joined in order, or
        # put back in the runs' order from the order the devices took them)
        "import sys\n"
        f"sys.path.insert(0, r'{Path(__file__).parents[2]}')\n"
        "from tests.dynsim.test_scan import check_packing\n"
        "check_packing()\n"
        # ... and a plan made elsewhere runs here in lanes over both devices.
        "assert dataclasses.replace(p, chunk_size=3).lanes == 4\n"
    )
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    proc = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    ref = ds.scan(
        ds.models.Lorenz(),
        {"rho": np.linspace(0, 30, 7)},
        (0.0, 1.0),
        rtol=1e-10,
        atol=1e-10,
    )
    assert np.allclose(np.load(tmp_path / "ys.npy"), ref.ys[:, -1], rtol=1e-9)
    sde = ds.scan(
        ds.models.OrnsteinUhlenbeck(),
        {"theta": [0.5, 2.0]},
        (0.0, 1.0),
        dt0=1e-2,
        realisations=3,
        key=jr.key(3),
    )
    assert np.allclose(np.load(tmp_path / "sde.npy"), sde.ys, rtol=1e-12, atol=1e-14)


def test_each_point_starts_from_its_own_initial_state():
    # Selkov.initial_state() lies next to the point's own steady state: a scan over
    # alpha without y0 must start every point there, exactly as simulate does.
    alphas = np.array([0.1, 0.6])
    res = ds.scan(ds.models.Selkov(), {"alpha": alphas}, (0.0, 50.0), rtol=1e-9)
    for a, y in zip(alphas, res.ys[:, -1], strict=True):
        one = ds.simulate(ds.models.Selkov(alpha=a), (0.0, 50.0), rtol=1e-9)
        assert np.allclose(y, one.ys[-1], rtol=1e-7)


def test_observable_windows_must_lie_inside_the_solve():
    with pytest.raises(ValueError, match="t_from = 50.*after the end.*t1 = 10"):
        ds.scan(
            ds.models.Lorenz(),
            {"rho": [28.0]},
            (0.0, 10.0),
            observables={"a": ds.observables.Amplitude("x", t_from=50.0)},
        )
    with pytest.raises(ValueError, match="forward t_span"):
        ds.scan(
            ds.models.Lorenz(),
            {"rho": [28.0]},
            (10.0, 0.0),
            observables={"a": ds.observables.Amplitude("x", t_from=5.0)},
        )


def test_non_finite_inputs_are_refused_before_any_solve():
    with pytest.raises(ValueError, match="y0 is not finite"):
        ds.scan(ds.models.Lorenz(), {"rho": [1.0]}, (0.0, 1.0), y0=[np.nan, 0, 0])
    with pytest.raises(ValueError, match="parameter 'sigma' is not finite"):
        ds.scan(ds.models.Lorenz(sigma=np.inf), {"rho": [1.0]}, (0.0, 1.0))
    with pytest.raises(ValueError, match="rtol and atol are both 0"):
        ds.scan(ds.models.Lorenz(), {"rho": [1.0]}, (0.0, 1.0), rtol=0, atol=0)


def test_realisations_are_an_ensemble_axis():
    # dx = −θ x dt + σ dW from x = 0: Var x(t) = σ²(1 − e^{−2θt})/(2θ) (closed form
    # of the Ornstein–Uhlenbeck process). 400 keyed realisations per point.
    model = ds.models.OrnsteinUhlenbeck(theta=1.0, sigma=1.0)
    sig = np.array([0.5, 1.0])
    res = ds.scan(
        model,
        {"sigma": sig},
        (0.0, 2.0),
        y0=[0.0],
        dt0=1e-2,
        realisations=400,
        key=jr.key(3),
    )
    assert res.ys.shape == (2, 400, 1, 1) and res.status.shape == (2, 400)
    var = res.ys[:, :, -1, 0].var(axis=1, ddof=1)
    exact = sig**2 * (1 - np.exp(-4.0)) / 2.0
    # Var of a sample variance: 2σ⁴/(n − 1); Euler–Maruyama's bias is O(dt).
    assert np.all(np.abs(var - exact) < 4 * exact * np.sqrt(2 / 399) + 0.02 * exact)
    again = ds.scan(
        model,
        {"sigma": sig},
        (0.0, 2.0),
        y0=[0.0],
        dt0=1e-2,
        realisations=400,
        key=jr.key(3),
        chunk_size=7,
    )
    assert np.array_equal(again.ys, res.ys)
    # Without parameters: a plain ensemble of one model.
    ens = ds.scan(model, {}, (0.0, 1.0), dt0=1e-2, realisations=5, key=jr.key(0))
    assert ens.ys.shape == (1, 5, 1, 1) and len(np.unique(ens.ys)) == 5


def test_small_arrays_stay_on_the_devices_by_value():
    # A chunk's call reads its plan's small arrays (parameters, start, times,
    # tolerances) from copies kept on the devices, one per value: equal arrays share
    # a copy, weak types are kept (nothing compiles anew), and other values get
    # copies of their own, so a scan never starts from another scan's y0.
    from dynsim._placement import resident

    a = resident({"x": jnp.asarray(1.0), "y": np.array([1.0, 2.0])})
    b = resident({"x": jnp.asarray(1.0), "y": np.array([1.0, 2.0])})
    assert a["x"] is b["x"] and a["y"] is b["y"]
    assert a["x"].weak_type and not a["y"].weak_type
    assert np.array_equal(resident(np.array([1.0, 3.0])), [1.0, 3.0])
    key, big = jax.random.key(0), np.zeros(1000)
    assert all(x is y for x, y in zip(resident((key, big)), (key, big), strict=True))
    for y0 in ([1.0, 0.0, 0.0], [0.0, 1.0, 2.0]):
        res = ds.scan(ds.models.Lorenz(), {"rho": [28.0]}, (0.0, 0.5), y0=np.array(y0))
        one = ds.simulate(ds.models.Lorenz(), (0.0, 0.5), y0=np.array(y0))
        assert np.allclose(res.ys[0, -1], one.ys[-1], rtol=1e-6), y0


def test_a_chunks_inputs_are_kept_on_the_devices_by_value():
    # The same points again reuse their copy on the devices; points changed in
    # place (the same array object, other bytes) are copied anew, so a scan never
    # solves another scan's points.
    from dynsim._placement import kept_on_runs

    rho = np.linspace(20.0, 30.0, 8)
    a, b = kept_on_runs(rho), kept_on_runs(rho.copy())
    assert a is b and np.array_equal(a, rho)
    assert kept_on_runs(rho.astype(np.float32)) is not a  # (another dtype)
    negative_zero = kept_on_runs(np.array([-0.0, 1.0]))
    assert np.signbit(np.asarray(kept_on_runs(np.array([-0.0, 1.0])))[0])
    assert kept_on_runs(np.array([0.0, 1.0])) is not negative_zero
    model, kw = ds.models.Lorenz(), dict(y0=np.array([1.0, 0.0, 0.0]))
    first = ds.scan(model, {"rho": rho}, (0.0, 0.5), **kw)
    rho[3] = 10.0
    again = ds.scan(model, {"rho": rho}, (0.0, 0.5), **kw)
    fresh = ds.scan(model, {"rho": rho.copy()}, (0.0, 0.5), **kw)
    assert np.array_equal(again.ys, fresh.ys)
    assert not np.allclose(again.ys[3], first.ys[3])
    assert np.array_equal(np.delete(again.ys, 3, 0), np.delete(first.ys, 3, 0))


def check_packing():
    """A chunk's outputs of every kind (floats of both widths, booleans, ints, an
    empty output, per-device outputs) packed into bytes on the local devices and
    read back on the host as they were, padding dropped, from the devices' blocks
    in order or in the order the devices took the runs (`device_order`)."""
    from dynsim._packing import Layout, pack, unpack
    from dynsim._placement import device_order, on_runs

    n = jax.local_device_count()
    size, real = 6 * n, 6 * n - 3
    rng = np.random.default_rng(0)
    runs = {
        "f32": rng.normal(size=(size, 1, 3)).astype(np.float32),
        "flag": rng.normal(size=size) > 0,
        "count": rng.integers(-5, 5, size=size).astype(np.int32),
        "f64": rng.normal(size=(size, 2)),
        "none": np.zeros((size, 0)),
    }
    per_device = (np.arange(n, dtype=np.float64) + 0.5, np.arange(n, dtype=np.int32))
    for interleaved in (False, True):
        order = device_order(size, n) if interleaved else np.arange(size)
        taken = jax.tree.map(lambda a: a[order], runs)  # noqa: B023
        layout = Layout(jax.eval_shape(lambda: (taken, per_device)), n)  # noqa: B023
        data = jax.jit(lambda o: pack(o, layout))(on_runs((taken, per_device)))  # noqa: B023
        back, devices = unpack(data, layout, real, interleaved)
        for key, a in runs.items():
            assert back[key].dtype == a.dtype and np.array_equal(back[key], a[:real])
        for a, b in zip(devices, per_device, strict=True):
            assert a.dtype == b.dtype and np.array_equal(a, b)


def test_packed_outputs_read_back_as_they_were():
    # (on two devices in `test_scan_shards_over_several_devices`)
    check_packing()


def test_evaluating_a_chunks_shapes_keeps_no_traced_copies():
    # The store and the cluster path read a chunk's output shapes with
    # `jax.eval_shape(plan.run_chunk, ...)`: no traced value may stay among the
    # copies kept on the devices, or the next scan with these values would fail.
    y0 = np.array([0.3, 0.2, 0.1])
    plan = ds.plan_scan(ds.models.Lorenz(), {"rho": [3.0, 4.0]}, (0.0, 0.37), y0=y0)
    jax.eval_shape(plan.run_chunk, plan.chunk_inputs(0))
    res = ds.scan(ds.models.Lorenz(), {"rho": [3.0]}, (0.0, 0.37), y0=y0)
    one = ds.simulate(ds.models.Lorenz(rho=3.0), (0.0, 0.37), y0=y0)
    assert np.allclose(res.ys[0, -1], one.ys[-1], rtol=1e-6)
