"""A streamed scan's chunks written into its run group one at a time, with the layout
`dynsim.io` gives a `ScanResult` (so `dynsim.io.load` reads it back), in memory
bounded by one chunk and one slab of the grid view, whatever the number of points."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import h5py
import jax.tree_util as jtu
import numpy as np

from .._precision import with_achieved_error
from .._scan_plan import ScanPlan
from ._common import empty_dataset, write_info
from ._hdf5 import save_with

# Points per slab when the flat datasets are laid out on the grid.
_SLAB = 1 << 18


def save_chunks(
    path: str | os.PathLike,
    name: str,
    plan: ScanPlan,
    shard: Callable[[int], Any],
    *,
    overwrite: bool = False,
) -> str:
    """Save the scan of `plan` as run `name` of `path` from its chunks' host
    outputs `shard(c)`, one chunk at a time (as `save` saves: checked, atomic).

    **Returns:** the run name.
    """
    return save_with(
        path, name, lambda g: write_scan(g, plan, shard), overwrite=overwrite
    )


def write_scan(g: h5py.Group, plan: ScanPlan, shard: Callable[[int], Any]) -> None:
    """Write the scan of `plan` into the empty group `g` from its chunks' host
    outputs `shard(c)` = (values, ys, status, stats, check), chunk after chunk
    (with a check, the scan's achieved error recorded in its info)."""
    R = plan.realisations
    run = ("point", "realisation") if R > 1 else ("point",)
    lead = (plan.n_points, R) if R > 1 else (plan.n_points,)
    values, ys, status, stats, check = shard(0)
    checks = [check]

    def alloc(group: h5py.Group, name: str, like: np.ndarray, dims: tuple) -> Any:
        return empty_dataset(group, name, lead + like.shape[1:], like.dtype, list(dims))

    params = _mapping(g, "params", list(plan.axes))
    p_sets = {
        k: empty_dataset(params, k, (plan.n_points,), np.float64, ["point"])
        for k in plan.axes
    }
    out = {"status": alloc(g, "status", status, run)}
    st = _mapping(g, "stats", list(stats))
    out |= {f"stats/{k}": alloc(st, k, v, run) for k, v in stats.items()}
    ob = _mapping(g, "observables", list(values))
    out |= {
        f"observables/{k}": alloc(ob, k, v, (*run, "state")) for k, v in values.items()
    }
    flat_ys = None if ys is None else jtu.tree_leaves(ys)[0]
    if flat_ys is not None and not plan.observed:
        out["ys"] = alloc(g, "ys", flat_ys, (*run, "time", "state"))
    for c in range(plan.n_chunks):
        if c:
            values, ys, status, stats, check = shard(c)
            checks.append(check)
        start = c * plan.chunk_size
        _write_runs(out["status"], start, status, R)
        for k, v in stats.items():
            _write_runs(out[f"stats/{k}"], start, v, R)
        for k, v in values.items():
            _write_runs(out[f"observables/{k}"], start, v, R)
        if "ys" in out:
            _write_runs(out["ys"], start, jtu.tree_leaves(ys)[0], R)
        p0, p1 = start // R, (start + len(status) - 1) // R + 1
        for k, v in plan.point_values(np.arange(p0, p1)).items():
            p_sets[k][p0:p1] = v
    ts = plan.options.saveat.ts
    fields: dict[str, Any] = {
        "axes": list(plan.axes),
        "shape": list(plan.shape),
        "grid": bool(plan.grid),
        "realisations": R,
    }
    if plan.observed or ts is None:
        fields["ts"] = None
    else:
        empty_dataset(g, "ts", np.shape(ts), np.float64, ["time"])[...] = np.asarray(ts)
    if "ys" not in out:
        fields["ys"] = None
    if plan.grid and plan.axes and plan.observed:
        _write_gridded(g, plan)
    info = plan.info
    if plan.check is not None:
        info = with_achieved_error(info, checks)
    write_info(g, "scan", info)
    g.attrs["kind"] = "scan"
    g.attrs["fields"] = json.dumps(fields)


def _mapping(g: h5py.Group, name: str, keys: list[str]) -> h5py.Group:
    sub = g.create_group(name)
    sub.attrs["keys"] = json.dumps(keys)
    return sub


def _write_runs(ds: h5py.Dataset, start: int, data: np.ndarray, R: int) -> None:
    """Runs start … start + len(data) − 1 into a (points[, realisations], ...)
    dataset: run g is point g // R, realisation g % R."""
    data = np.asarray(data)
    if R == 1:
        ds[start : start + len(data)] = data
        return
    end = start + len(data)
    head = min(end, -(-start // R) * R)  # first whole point
    if head > start:
        ds[start // R, start % R : start % R + head - start] = data[: head - start]
    full = (end - head) // R
    if full:
        block = data[head - start : head - start + full * R]
        ds[head // R : head // R + full] = block.reshape((full, R) + data.shape[1:])
    tail = head + full * R
    if tail < end:
        ds[tail // R, : end - tail] = data[tail - start :]


def _write_gridded(g: h5py.Group, plan: ScanPlan) -> None:
    """The grid view (`ScanResult.gridded`) from the flat datasets, slab by slab
    along the first axis."""
    grid = g.create_group("gridded")
    axes = list(plan.axes)
    scales = {}

    def scale(name: str, values: np.ndarray) -> h5py.Dataset:
        if name not in scales:
            ds = empty_dataset(grid, name, values.shape, values.dtype, [name])
            ds[...] = values
            ds.make_scale(name)
            scales[name] = ds
        return scales[name]

    for k in axes:
        scale(k, np.asarray(plan.axes[k], np.float64))
    R = plan.realisations
    lead = tuple(axes) + (("realisation",) if R > 1 else ())
    shape = plan.shape + ((R,) if R > 1 else ())
    if R > 1:
        scale("realisation", np.arange(R))
    sources = {"status": g["status"]}
    sources |= {k: g["stats"][k] for k in g["stats"]}
    sources |= {k: g["observables"][k] for k in g["observables"]}
    rest = int(np.prod(plan.shape[1:], dtype=np.int64))
    rows = max(1, _SLAB // max(1, rest * R))
    for name, src in sources.items():
        extra = src.shape[len(lead) - len(axes) + 1 :]
        dims = (*lead, *(f"{name}_dim{i}" for i in range(len(extra))))
        ds = empty_dataset(grid, name, shape + extra, src.dtype, list(dims))
        for i in range(0, plan.shape[0], rows):
            j = min(plan.shape[0], i + rows)
            slab = src[i * rest : j * rest]
            ds[i:j] = slab.reshape((j - i, *plan.shape[1:], *slab.shape[1:]))
        for i, dim in enumerate(dims):
            ds.dims[i].attach_scale(scale(dim, np.arange(ds.shape[i])))
