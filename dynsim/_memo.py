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
strings, functions by identity). A call with traced arguments, large arrays (whose
bytes would cost more to compare than the plan they save, and which the cache would
keep alive) or leaves that are none of these is not cached: it is computed as if
there were no cache.
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

#: Arrays of up to this many numbers are keyed by their bytes; a larger one makes the
#: call uncached.
_MAX_KEY_NUMBERS = 4096


def argument_key(arguments: Any) -> Hashable | None:
    """A hashable key equal for equal `arguments` (module doc), or None where the
    arguments cannot be keyed."""
    leaves, treedef = jtu.tree_flatten(arguments)
    key: list[Hashable] = []
    for leaf in leaves:
        if isinstance(leaf, jax.core.Tracer):
            return None
        if isinstance(leaf, jax.Array):
            if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
                leaf = jax.random.key_data(leaf)
            if leaf.size > _MAX_KEY_NUMBERS:
                return None
            weak = bool(getattr(leaf, "weak_type", False))
            host = np.asarray(leaf)
            key.append(("jax", host.dtype.str, host.shape, weak, host.tobytes()))
        elif isinstance(leaf, (np.ndarray, np.generic)):
            if leaf.size > _MAX_KEY_NUMBERS or leaf.dtype.hasobject:
                return None
            key.append(("numpy", leaf.dtype.str, leaf.shape, leaf.tobytes()))
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


def _owned(tree: Any) -> Any:
    """`tree` with its NumPy arrays copied: a cached value shares no array that its
    caller could change in place."""
    return jtu.tree_map(
        lambda x: np.array(x, copy=True) if isinstance(x, np.ndarray) else x, tree
    )


class ArgumentCache(Generic[T]):
    """The last `size` values computed by `get`, by their arguments' keys."""

    def __init__(self, size: int):
        self.size = size
        self._entries: OrderedDict[Hashable, T] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, arguments: Any, compute: Callable[[], T]) -> T:
        """The value that `compute()` returns for `arguments`: computed on the first
        call with these arguments (by value), the same value on later calls."""
        key = argument_key(arguments)
        if key is None:
            return compute()
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
        value = _owned(compute())
        with self._lock:
            self._entries[key] = value
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
