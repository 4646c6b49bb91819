"""A chunk's outputs packed into one array of bytes on the devices, and read back on
the host.

A chunk's program returns several small arrays (observables or saved states,
status, three step counts, a single-precision chunk's check), each split over the
local devices. Copying them to the host one device's block at a time cost about
0.25 ms per chunk of E1's 1 024 Lorenz runs on two CPU devices (a fifth of the whole
scan's call), most of it Python's cost per block and per array. Packed, the program
ends with one array: on each device, a row of bytes per run (its share of every
per-run output, side by side) followed by the device's own outputs (the check);
the host copies one block per device and reads every output as a view of it
(≈ 0.07 ms).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jaxtyping import Array

from ._placement import on_each_device


class Layout:
    """Where a chunk's outputs lie in its packed bytes (`pack`): their tree
    structure, and for each leaf its dtype, its shape after the leading axis and its
    byte offset (the per-run leaves within a run's row of `row` bytes, widest
    items first so that every leaf is aligned; the per-device leaves after the
    device's `rows` rows).

    `outputs`: the structured outputs' shapes (`jax.ShapeDtypeStruct`s) as
    `(per-run outputs, per-device outputs)`, the per-run ones with a leading axis of
    `rows * n_devices` runs, the per-device ones of `n_devices`."""

    def __init__(self, outputs: tuple[Any, Any], n_devices: int):
        runs, devices = outputs
        run_leaves, self.run_tree = jtu.tree_flatten(runs)
        device_leaves, self.device_tree = jtu.tree_flatten(devices)
        self.n_devices = n_devices
        self.rows = run_leaves[0].shape[0] // n_devices if run_leaves else 0
        # Widest items first: every offset within a row is then a multiple of its
        # leaf's item size, and the row (padded) of the widest.
        self.order = sorted(
            range(len(run_leaves)), key=lambda i: -run_leaves[i].dtype.itemsize
        )
        self.runs: list[tuple[int, np.dtype, tuple[int, ...]] | None] = [None] * len(
            run_leaves
        )
        offset = 0
        for i in self.order:
            leaf = run_leaves[i]
            self.runs[i] = (offset, np.dtype(leaf.dtype), tuple(leaf.shape[1:]))
            offset += leaf.dtype.itemsize * math.prod(leaf.shape[1:])
        self.row = _aligned(offset, max([a.dtype.itemsize for a in run_leaves] or [1]))
        self.devices = []
        offset = self.rows * self.row
        for leaf in device_leaves:
            shape = tuple(leaf.shape[1:])
            offset = _aligned(offset, leaf.dtype.itemsize)
            self.devices.append((offset, np.dtype(leaf.dtype), shape))
            offset += leaf.dtype.itemsize * math.prod(shape)

    def __repr__(self) -> str:
        return f"Layout({self.rows} rows of {self.row} bytes per device)"


def _aligned(offset: int, size: int) -> int:
    return size * -(-offset // size)


def _bytes(a: Array) -> Array:
    """`a`'s bytes, `(a.shape[0], -1)` (booleans as one byte each)."""
    if a.dtype == jnp.bool_:
        a = a.astype(jnp.uint8)
    if a.dtype.itemsize > 1 or a.dtype != jnp.uint8:
        a = jax.lax.bitcast_convert_type(a, jnp.uint8)
    return a.reshape(a.shape[0], -1)


def pack(outputs: tuple[Any, Any], layout: Layout) -> Array:
    """A chunk's outputs `(per-run outputs, per-device outputs)` (traced, split
    over the local devices along their leading axis) as one array of bytes, each
    device's block laid out as `layout` says."""
    runs = jtu.tree_leaves(outputs[0])
    devices = jtu.tree_leaves(outputs[1])

    def local(runs, devices):
        parts = []
        if runs:
            row = [_bytes(runs[i]) for i in layout.order]
            width = sum(r.shape[1] for r in row)
            if width < layout.row:
                row.append(jnp.zeros((row[0].shape[0], layout.row - width), jnp.uint8))
            parts.append(jnp.concatenate(row, axis=1).reshape(-1))
        offset = layout.rows * layout.row
        for a, (start, _, _) in zip(devices, layout.devices, strict=True):
            if start > offset:
                parts.append(jnp.zeros(start - offset, jnp.uint8))
            b = _bytes(a).reshape(-1)
            parts.append(b)
            offset = start + b.shape[0]
        return jnp.concatenate(parts)

    return on_each_device(local, runs, devices)


def unpack(
    data: Array, layout: Layout, n_real: int, interleaved: bool
) -> tuple[Any, Any]:
    """Packed outputs (`pack`) on the host: the per-run outputs, their first
    `n_real` runs in the runs' order (from the order the devices took them where
    they were `interleaved`: device d of n ran runs d, d + n, ...; else each
    device's block in order), and the per-device outputs, one per device. The
    per-run outputs are views of one copy of the bytes."""
    n = layout.n_devices
    blocks = [np.asarray(data.addressable_data(d)) for d in range(n)]
    size = layout.rows * layout.row
    rows = [b[:size].reshape(layout.rows, layout.row) for b in blocks]
    if n == 1:
        table = rows[0]
    elif interleaved:
        table = np.stack(rows, axis=1).reshape(n * layout.rows, layout.row)
    else:
        table = np.concatenate(rows)
    table = table[:n_real]
    runs = [
        table[:, start : start + dtype.itemsize * math.prod(shape)]
        .view(dtype)
        .reshape((n_real, *shape))
        for start, dtype, shape in layout.runs
    ]
    devices = [
        np.concatenate(
            [
                b[start : start + dtype.itemsize * math.prod(shape)]
                .view(dtype)
                .reshape(1, *shape)
                for b in blocks
            ]
        )
        for start, dtype, shape in layout.devices
    ]
    return (
        jtu.tree_unflatten(layout.run_tree, runs),
        jtu.tree_unflatten(layout.device_tree, devices),
    )
