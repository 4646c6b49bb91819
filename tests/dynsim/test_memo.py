"""A scan's plan kept for the next scan of equal arguments (dynsim._memo)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dynsim as ds
from dynsim import _scan_fixed
from dynsim._memo import ArgumentCache, argument_key
from tests.helpers import Decay


def test_keys_compare_values():
    a = np.array([1.0, 2.0])
    assert argument_key((a, 1e-8, "tsit5")) == argument_key((a.copy(), 1e-8, "tsit5"))
    assert argument_key(jnp.asarray(a)) == argument_key(jnp.asarray(a))
    different = [
        np.array([1.0, 3.0]),  # a value
        np.array([1.0, 2.0], np.float32),  # the dtype
        np.array([[1.0, 2.0]]),  # the shape
        [1.0, 2.0],  # the structure
        jnp.asarray(a),  # NumPy or JAX
    ]
    keys = [argument_key(x) for x in [a, *different]]
    assert len(set(keys)) == len(keys)
    # A JAX array's key, kept by the array's identity, is its value's: another
    # array of the same value has it, one of another value does not.
    x = jnp.asarray(a)
    assert argument_key(x) == argument_key(x) == argument_key(jnp.asarray(a.copy()))
    assert argument_key(x) != argument_key(jnp.asarray([1.0, 3.0]))
    assert argument_key(1) != argument_key(1.0) != argument_key(True)
    # A NumPy scalar and a 0-d array mean different things to some options.
    assert argument_key(np.int64(10)) != argument_key(np.array(10))
    # A weakly typed JAX scalar promotes differently from a strong one.
    assert argument_key(jnp.asarray(2.0)) != argument_key(
        jnp.asarray(2.0, jnp.result_type(float))
    )


def test_uncachable_arguments_have_no_key():
    assert argument_key({"a": [np.zeros(2)], "b": {1, 2}}) is None  # (a set)
    # Too large to compare (and to keep alive), NumPy or JAX.
    assert argument_key(np.zeros(20_000)) is None
    assert argument_key(jnp.zeros(20_000)) is None
    seen = []
    jax.jit(lambda x: seen.append(argument_key(x)) or x)(1.0)
    assert seen == [None]  # traced
    # Many small arrays count together.
    assert argument_key([np.zeros(4096)] * 5) is None


def test_prng_keys_are_keyed_by_data_and_implementation():
    key = jax.random.key
    assert argument_key(key(1)) == argument_key(key(1)) != argument_key(key(2))
    assert argument_key(key(1, impl="rbg")) != argument_key(key(1, impl="unsafe_rbg"))
    assert argument_key(key(0)) != argument_key(jax.random.PRNGKey(0))


def test_cache_computes_once_per_value_and_owns_its_arrays():
    cache = ArgumentCache(2)
    calls = []

    def compute(x):
        calls.append(x.copy())
        return {"x": x, "twice": 2 * x}

    a = np.array([1.0, 2.0])
    first = cache.get(a, compute)
    assert cache.get(a.copy(), compute) is first
    assert len(calls) == 1
    # The cached value holds its own copy: changing the argument in place neither
    # changes it nor finds it (the key is the new value).
    a[0] = 5.0
    assert first["x"][0] == 1.0
    assert cache.get(a, compute)["x"][0] == 5.0
    assert len(calls) == 2
    assert cache.get(np.array([1.0, 2.0]), compute) is first
    # The least recently used value leaves when the cache is full.
    cache.get(np.array([7.0]), compute)
    cache.get(a, compute)
    assert len(calls) == 4


def test_values_computed_under_a_transform_are_not_kept():
    cache = ArgumentCache(4)
    calls = []

    def compute(x):
        calls.append(x)
        return jnp.linspace(0.0, x, 3)  # traced inside jit, though x is not

    jax.jit(lambda: cache.get(2.0, compute))()
    assert np.array_equal(cache.get(2.0, compute), [0.0, 1.0, 2.0])
    assert len(calls) == 2


def test_a_scan_planned_again_keeps_its_checked_parts():
    model, y0 = Decay(), np.array([1.0])
    ks = np.array([0.5, 1.0])
    first = ds.plan_scan(model, {"k": ks}, (0.0, 1.0), y0=y0)
    again = ds.plan_scan(model, {"k": ks + 1.0}, (0.0, 1.0), y0=y0.copy())
    assert again.model is first.model and again.options is first.options
    assert np.array_equal(again.axes["k"], ks + 1.0)
    assert again.n_runs == 2
    # Other options, another plan.
    other = ds.plan_scan(model, {"k": ks}, (0.0, 1.0), y0=y0, rtol=1e-9)
    assert other.options is not first.options


def test_cached_scans_give_the_fresh_results():
    model, ks = Decay(), np.array([0.5, 1.0, 2.0])
    y0 = np.array([1.0])
    kwargs = dict(rtol=1e-10, atol=1e-12, progress=False)
    ds.scan(model, {"k": ks}, (0.0, 1.0), y0=y0, **kwargs)
    y0[0] = 3.0  # changed in place: the next scan starts from 3
    moved = ds.scan(model, {"k": ks}, (0.0, 1.0), y0=y0, **kwargs)
    assert np.allclose(moved.ys[:, -1, 0], 3.0 * np.exp(-ks), rtol=1e-8)
    cached = ds.scan(model, {"k": ks}, (0.0, 1.0), y0=np.array([1.0]), **kwargs)
    _scan_fixed.FIXED.clear()
    fresh = ds.scan(model, {"k": ks}, (0.0, 1.0), y0=np.array([1.0]), **kwargs)
    assert np.array_equal(cached.ys, fresh.ys)
    assert np.allclose(cached.ys[:, -1, 0], np.exp(-ks), rtol=1e-8)


def test_invalid_arguments_fail_on_every_call():
    for _ in range(2):
        with pytest.raises(ValueError, match="y0 has shape"):
            ds.plan_scan(Decay(), {"k": [1.0]}, (0.0, 1.0), y0=np.zeros(3))
        with pytest.raises(ValueError, match="precision"):
            ds.plan_scan(Decay(), {"k": [1.0]}, (0.0, 1.0), precision="half")
        with pytest.raises(TypeError, match="observables must be a dict"):
            ds.plan_scan(
                Decay(), {"k": [1.0]}, (0.0, 1.0), observables=ds.observables.Max("y")
            )


@pytest.fixture
def splits(monkeypatch):
    """The calls that split a plan's fixed parts into its program's parts."""
    from dynsim import _scan_kernel

    calls = []
    split = _scan_kernel._split

    def counted(*args):
        calls.append(1)
        return split(*args)

    monkeypatch.setattr(_scan_kernel, "_split", counted)
    return calls


def test_a_scan_called_again_reuses_its_program_parts_and_provenance(splits):
    from dynsim import _scan_kernel

    model, ks, y0 = Decay(), np.array([0.5, 1.0]), np.array([1.0])
    kwargs = dict(y0=y0, rtol=1e-10, atol=1e-12, progress=False)
    _scan_fixed.FIXED.clear()  # (a plan of its own, whatever ran before)
    first = ds.scan(model, {"k": ks}, (0.0, 1.0), **kwargs)
    again = ds.scan(model, {"k": ks + 1.0}, (0.0, 1.0), **kwargs)
    # The plan's fixed parts are split into the program's parts once, and the
    # provenance is made once; the new values still give their own results.
    assert len(splits) == 1
    assert again.info is first.info
    assert np.allclose(again.ys[:, -1, 0], np.exp(-(ks + 1.0)), rtol=1e-8)
    # Another config text is another provenance.
    text = '[run]\nname = "decay"\n'
    other = ds.scan(model, {"k": ks}, (0.0, 1.0), config=text, **kwargs)
    assert other.info.config == text and first.info.config is None
    # Plans made anew from equal arguments (new objects) are split again but
    # compile nothing new: the program's compiled-in parts compare by value.
    compiled = _scan_kernel.compiled_program(
        True, tuple(jax.local_devices())
    )._cache_size()
    _scan_fixed.FIXED.clear()
    fresh = ds.scan(model, {"k": ks}, (0.0, 1.0), **kwargs)
    assert len(splits) == 2
    assert (
        _scan_kernel.compiled_program(True, tuple(jax.local_devices()))._cache_size()
        == compiled
    )
    assert np.array_equal(fresh.ys, first.ys)


def test_a_small_scan_with_its_progress_bar_reuses_its_program_parts(splits):
    # Narrow chunks on the generic path show the solves' progress with options of
    # their own, made once per plan's fixed part: called again, the program's parts
    # are reused.
    _scan_fixed.FIXED.clear()
    y0 = np.array([1.0])
    for ks in ([0.5, 1.0], [2.0, 3.0], [4.0, 5.0]):
        args = dict(y0=y0, rtol=1e-10, executor="vmap")
        out = ds.scan(Decay(), {"k": ks}, (0.0, 1.0), **args)
        # (the path with the solves' bar: what this test is about)
        plan = ds.plan_scan(Decay(), {"k": ks}, (0.0, 1.0), progress=True, **args)
        assert plan.options.progress
        assert np.allclose(out.ys[:, -1, 0], np.exp(-np.asarray(ks)), rtol=1e-7)
    assert len(splits) == 1


def test_a_scan_traced_over_its_key_keeps_no_traced_value():
    # A plan whose key is traced (an outer jit) runs its program in place, and
    # neither its program's parts nor its arrays on the devices are kept.
    from dynsim import _placement, _scan_kernel

    model = ds.models.OrnsteinUhlenbeck()
    args = dict(dt0=1e-2, realisations=2, progress=False)

    def run(key):
        plan = ds.plan_scan(model, {"theta": [0.5, 2.0]}, (0.0, 1.0), key=key, **args)
        return plan.run_chunk(plan.chunk_inputs(0))[1]

    traced = jax.jit(run)(jax.random.key(3))
    plain = ds.scan(
        model, {"theta": [0.5, 2.0]}, (0.0, 1.0), key=jax.random.key(3), **args
    )
    assert np.allclose(np.asarray(traced)[:4], plain.ys.reshape(4, *plain.ys.shape[2:]))
    kept = jax.tree_util.tree_leaves(
        (
            list(_scan_kernel._PREPARED.values()),
            list(_placement._resident_arrays.copies.values()),
        )
    )
    assert not any(isinstance(x, jax.core.Tracer) for x in kept)


def test_an_uncached_scan_starts_from_its_start_as_it_is_now():
    # Arguments too many to key (here 70 arrays of 256 numbers in args) are not
    # cached, while the program's parts of a plan with small arrays are kept by
    # the identity of its parts (`_scan_kernel.prepared`): a y0 changed in place
    # must not run from the value the first scan kept on the devices.
    model, ks = Decay(), np.array([0.5, 1.0])
    many = tuple(np.zeros(256) for _ in range(70))
    y0 = np.array([1.0])
    kwargs = dict(args=many, rtol=1e-10, atol=1e-12, progress=False)
    first = ds.scan(model, {"k": ks}, (0.0, 1.0), y0=y0, **kwargs)
    y0[0] = 3.0
    moved = ds.scan(model, {"k": ks}, (0.0, 1.0), y0=y0, **kwargs)
    assert np.allclose(first.ys[:, -1, 0], np.exp(-ks), rtol=1e-8)  # closed form
    assert np.allclose(moved.ys[:, -1, 0], 3.0 * np.exp(-ks), rtol=1e-8)


def test_a_model_with_an_unhashable_static_field_is_named():
    # The chunk program compiles in a plan's non-array leaves: one that cannot be
    # hashed is named in the error instead of failing deep inside jax.jit.
    from dynsim import _scan_kernel

    with pytest.raises(ValueError, match="unhashable list"):
        _scan_kernel._Static(None, ([1.0],), ())
