"""Where a scan chunk's arrays live on this process's devices: the runs split
over the local devices (in the order the devices take them), the last few chunks'
inputs and the plan's small arrays kept on the devices by value, so that a chunk's
call copies none of them again.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jaxtyping import Array, PyTree


@functools.cache
def _sharding_on(devices: tuple, spec: tuple) -> jax.sharding.Sharding:
    """Arrays over `devices`, split along their first axis as `spec` says."""
    if len(devices) == 1:
        return jax.sharding.SingleDeviceSharding(devices[0])
    mesh = jax.sharding.Mesh(np.asarray(devices), ("runs",))
    return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(*spec))


def runs_sharding(devices: tuple | None = None) -> jax.sharding.Sharding:
    """A chunk's inputs split along the runs over the local devices (or
    `devices`)."""
    return _sharding_on(devices or tuple(jax.local_devices()), ("runs",))


def on_runs(tree: PyTree[np.ndarray]) -> PyTree[Array]:
    """Host arrays split along their first axis (the runs) over the local devices,
    each device's share copied straight from the host array (about half the cost of
    `jax.device_put` to the same sharding, which matters to a small scan's call)."""
    sharding = runs_sharding()

    def one(a):
        return jax.make_array_from_callback(a.shape, sharding, lambda index: a[index])

    return jtu.tree_map(one, tree)


def on_each_device(fn, *args):
    """`fn(*args)`, with several local devices applied by each device to its block
    of the arguments (split along their first axis, the runs) on its own
    (`shard_map`), the results joined in order. A function split over the devices
    by the compiler instead would join them wherever it reduces over the runs: a
    vmapped solve's loop condition, on every step."""
    if jax.local_device_count() == 1:
        return fn(*args)
    runs = jax.sharding.PartitionSpec("runs")
    return jax.shard_map(
        fn, mesh=runs_sharding().mesh, in_specs=runs, out_specs=runs, check_vma=False
    )(*args)


def replicated() -> jax.sharding.Sharding:
    """A whole array on every local device."""
    return _sharding_on(tuple(jax.local_devices()), ())


class _ByValue:
    """Device copies of host arrays kept by value: an array equal to a kept one
    (the same bytes, dtype and shape, and the same `extra`: its sharding, its weak
    type) gets the kept copy; the `entries` most recently used are kept."""

    def __init__(self, entries: int):
        self.entries = entries
        self.copies: OrderedDict[tuple, Array] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, host: np.ndarray, extra: tuple, put) -> Array:
        """The kept copy of `host`, else `put()` (kept unless traced)."""
        key = (extra, host.dtype.str, host.shape, host.tobytes())
        with self.lock:
            copy = self.copies.get(key)
            if copy is not None:
                self.copies.move_to_end(key)
                return copy
        copy = put()
        if isinstance(copy, jax.core.Tracer):
            return copy  # (under a transform, e.g. an outer jit: not kept)
        with self.lock:
            self.copies[key] = copy
            while len(self.copies) > self.entries:
                self.copies.popitem(last=False)
        return copy


# A chunk's inputs (at most _KEPT_NUMBERS numbers each, the largest chunk's) kept on
# the devices by value (`kept_on_runs`): the last _KEPT_RUNS of them.
_KEPT_NUMBERS = 1 << 16
_KEPT_RUNS = 8
_kept_runs = _ByValue(_KEPT_RUNS)


def kept_on_runs(tree: PyTree[np.ndarray]) -> PyTree[Array]:
    """`on_runs`, the copies of the last `_KEPT_RUNS` arrays kept by value: an array
    equal (byte for byte, same dtype and shape) to one of them is not copied again.
    A scan of the same points again (another model, tolerance or start on the same
    grid; a benchmark's repeats) then copies none of its inputs: over several
    devices a copy costs about 0.1 ms per array in a tight loop and 0.3–0.4 ms
    within a small scan's call (E1's 1 024 Lorenz runs on two CPU devices)."""
    sharding = runs_sharding()

    def one(a):
        if a.size > _KEPT_NUMBERS:
            return on_runs(a)
        return _kept_runs.get(a, (sharding,), lambda: on_runs(a))

    return jtu.tree_map(one, tree)


# Small arrays (at most _RESIDENT_NUMBERS numbers) that a chunk's call reads, kept
# on the devices by value (`resident`); at most _RESIDENT_ENTRIES of them.
_RESIDENT_NUMBERS = 256
_RESIDENT_ENTRIES = 1024
_resident_arrays = _ByValue(_RESIDENT_ENTRIES)


def resident(tree: PyTree) -> PyTree:
    """`tree` with its small arrays (a model's parameters, the start, times and
    tolerances) replaced by copies already on every local device, one copy per
    value, shared by every plan that holds an equal array: a chunk's call then
    copies none of them (each copy costs about 40 µs per call, the price of a whole
    small solve). Weak types are kept, so nothing compiles anew."""
    sharding = replicated()

    def one(a):
        if not eqx.is_array(a) or a.size > _RESIDENT_NUMBERS:
            return a
        if isinstance(a, jax.core.Tracer):
            return a  # (a traced value: nothing to keep)
        if jnp.issubdtype(a.dtype, jax.dtypes.prng_key):
            return a
        weak = bool(getattr(a, "weak_type", False))
        return _resident_arrays.get(
            np.asarray(a), (sharding, weak), lambda: jax.device_put(a, sharding)
        )

    return jtu.tree_map(one, tree)


def device_order(size: int, n: int) -> np.ndarray:
    """The runs of a chunk in the order that `n` devices take them, each a
    contiguous block: device d solves runs d, d + n, d + 2n, ..., so that
    neighbouring runs (similar work) spread over the devices, which then finish
    together."""
    return np.arange(size).reshape(-1, n).T.ravel()
