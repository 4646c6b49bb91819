"""Values computed from a call's arguments, kept for the next call with equal
arguments.

Planning a scan (checking the model, the start and the options, building the
solver's options) costs about 0.5 ms with warm caches and 1–1.5 ms when the CPU's
caches are cold, as they are after a solve: for a scan of a thousand small solves
as much as a third of the call. Scans are often called again with the same model
and options and new parameter values; `ArgumentCache` lets such a call skip the
part of the plan that does not depend on the values.

Arguments are compared by value: the key is the arguments' tree structure (static
fields included) and, leaf by leaf, an array's dtype, shape and bytes (NumPy or JAX;
a PRNG key by its key data), or the leaf itself where it is hashable (numbers,
strings, functions by identity). A call with traced arguments, large arrays (more
than `_MAX_KEY_NUMBERS` numbers in all: their bytes would cost more to compare than
the plan they save, and the cache would keep them alive) or leaves that are none of
these is not cached: it is computed as if there were no cache; nor is a value that
holds traced arrays (computed under a JAX transform).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

import jax
import jax.tree_util as jtu
import numpy as np

T = TypeVar("T")

#: The most numbers a call's arrays may hold, all together, to be keyed by their
#: bytes; more make the call uncached.
_MAX_KEY_NUMBERS = 16384


#: Leaf types that are hashable values: keyed as they are.
_PLAIN = frozenset({bool, int, float, complex, str, bytes, type(None)})


def argument_key(arguments: Any) -> Hashable | None:
    """A hashable key equal for equal `arguments` (module doc), or None where the
    arguments cannot be keyed."""
    leaves, treedef = jtu.tree_flatten(arguments)
    key: list[Hashable] = []
    numbers = 0
    for leaf in leaves:
        kind = type(leaf)
        if kind in _PLAIN:  # (most leaves: the type test costs a tenth of the rest)
            key.append((kind, leaf))
            continue
        if isinstance(leaf, jax.core.Tracer):
            return None
        if isinstance(leaf, jax.Array):
            numbers += leaf.size
            if numbers > _MAX_KEY_NUMBERS:
                return None
            key.append(_jax_key(leaf))
        elif isinstance(leaf, (np.ndarray, np.generic)):
            numbers += leaf.size
            if numbers > _MAX_KEY_NUMBERS or leaf.dtype.hasobject:
                return None
            key.append((type(leaf), leaf.dtype, leaf.shape, leaf.tobytes()))
        else:
            try:
                hash(leaf)
            except TypeError:
                return None
            key.append((type(leaf), leaf))
    try:
        hash(treedef)
    except TypeError:  # (a static field that is not hashable)
        return None
    return treedef, tuple(key)


# The keys of the last _JAX_KEYS small JAX arrays keyed (`_jax_key`), by identity.
_JAX_KEYS = 256
_JAX_KEY_NUMBERS = 256
_jax_keys: OrderedDict[int, tuple[jax.Array, Hashable]] = OrderedDict()
_jax_keys_lock = threading.Lock()


def _jax_key(leaf: jax.Array) -> Hashable:
    """A JAX array's part of a key: its kind, dtype, shape, weak type and bytes.
    JAX arrays are immutable, so a small one's key is kept by its identity (the
    entry holds the array, so no other array takes its identity while it is
    kept): a model's parameters are read back from the device once, not on every
    call. (A JAX array made from a NumPy array may share its memory on a CPU;
    writing to that NumPy array afterwards is undefined behaviour in JAX, whose
    own compiled programs would keep the old values too.)"""
    with _jax_keys_lock:
        entry = _jax_keys.get(id(leaf))
    if entry is not None and entry[0] is leaf:
        return entry[1]
    array = leaf
    kind: Hashable = "jax"
    extended = not isinstance(leaf.dtype, np.dtype)
    if extended and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        kind = ("prng", str(jax.random.key_impl(leaf)))
        leaf = jax.random.key_data(leaf)
    weak = bool(getattr(leaf, "weak_type", False))
    host = np.asarray(leaf)
    key = (kind, host.dtype, host.shape, weak, host.tobytes())
    if array.size <= _JAX_KEY_NUMBERS:
        with _jax_keys_lock:
            _jax_keys[id(array)] = (array, key)
            while len(_jax_keys) > _JAX_KEYS:
                _jax_keys.popitem(last=False)
    return key


def _owned(tree: Any) -> Any:
    """`tree` with its NumPy arrays copied (a cached value shares no array that a
    caller could change in place)."""
    return jtu.tree_map(
        lambda x: np.array(x, copy=True) if isinstance(x, np.ndarray) else x, tree
    )


class ArgumentCache(Generic[T]):
    """The last `size` values computed by `get`, by their arguments' keys."""

    def __init__(self, size: int):
        self.size = size
        self._entries: OrderedDict[Hashable, T] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, arguments: Any, compute: Callable[[Any], T]) -> T:
        """`compute(arguments)`: computed on the first call with these arguments (by
        value) and kept, the same value on later calls. It is computed from a copy
        of the arguments' NumPy arrays (so that the value shares none of them), and
        not kept where it holds traced values (computed under a JAX transform)."""
        key = argument_key(arguments)
        if key is None:
            return compute(arguments)
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
        value = compute(_owned(arguments))
        if any(isinstance(x, jax.core.Tracer) for x in jtu.tree_leaves(value)):
            return value
        with self._lock:
            self._entries[key] = value
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
