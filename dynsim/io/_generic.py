"""Any result to and from an HDF5 group, from the result protocol's metadata alone.

Each field of a result (a frozen dataclass or an equinox module following
`dynsim.AbstractResult`) is stored by what it holds:

- an array: a dataset (checksummed, `axes` from the class's `axes`);
- a mapping of arrays: a group of datasets (its key order in the attribute `keys`);
- a nested result: a subgroup, written the same way;
- the provenance (`RunInfo`): the run's attributes (`model`, `solver`, ...);
- numbers, strings, tuples, None, and fields with a `codecs` entry: one JSON
  attribute `fields` (no boolean attributes, so netCDF readers take the group).

Reading finds the class by the group's `kind` among the protocol's subclasses and
calls its constructor with the fields read: nothing named in a file is imported or
executed.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

import h5py
import numpy as np

from .._protocol import AbstractResult, Gridded, is_array, result_types
from .._results import RunInfo
from ._common import FormatError, dataset, read, read_info, write_info


def _stored_name(cls: type[AbstractResult], name: str) -> str:
    return cls.stored_names.get(name, name)


def write_result(g: h5py.Group, result: AbstractResult) -> None:
    """Write `result` into the (empty) group `g`."""
    cls = type(result)
    scalars: dict[str, Any] = {}
    info = None
    for name, value in result.stored_fields().items():
        where = _stored_name(cls, name)
        if name in cls.codecs:
            scalars[name] = cls.codecs[name][0](value)
        elif isinstance(value, RunInfo):
            info = value
        elif isinstance(value, AbstractResult):
            write_result(g.create_group(where), value)
        elif isinstance(value, Mapping):
            sub = g.create_group(where)
            sub.attrs["keys"] = json.dumps(list(value))  # HDF5 sorts by name
            axes = list(result.field_dims(name))
            for k, v in value.items():
                if is_array(v) or isinstance(v, (int, float, complex)):
                    dataset(sub, k, np.asarray(v), axes)
                else:
                    raise TypeError(
                        f"{cls.__name__}.{name}[{k!r}] is a {type(v).__name__}: "
                        "mappings of arrays only"
                    )
        elif is_array(value):
            dataset(g, where, np.asarray(value), list(result.field_dims(name)))
        elif value is None or isinstance(value, (str, int, float, tuple, list)):
            scalars[name] = _jsonable(value)
        else:
            raise TypeError(
                f"cannot store {cls.__name__}.{name}, a {type(value).__name__}; "
                "give the class a codec for it"
            )
    gridded = result.gridded()
    if gridded is not None:
        _write_gridded(g.create_group("gridded"), gridded)
    if info is not None:
        write_info(g, cls.kind, info)
    g.attrs["kind"] = cls.kind
    g.attrs["fields"] = json.dumps(scalars)


def _write_gridded(g: h5py.Group, gridded: Gridded) -> None:
    """netCDF-4 form: coordinates are dimension scales attached to each variable's
    dimensions; a dimension without coordinates gets its index as one."""
    scales: dict[str, h5py.Dataset] = {}

    def scale(name: str, values: np.ndarray) -> h5py.Dataset:
        if name not in scales:
            dataset(g, name, np.asarray(values), [name])
            g[name].make_scale(name)
            scales[name] = g[name]
        return scales[name]

    for name, values in gridded.coords.items():
        scale(name, values)
    for name, (dims, data) in gridded.variables.items():
        dataset(g, name, data, list(dims))
        for i, dim in enumerate(dims):
            g[name].dims[i].attach_scale(scale(dim, np.arange(data.shape[i])))


def read_result(g: h5py.Group) -> AbstractResult:
    """The result stored in group `g` by `write_result`.

    **Raises:** `FormatError` for an unknown kind.
    """
    kind = str(g.attrs.get("kind", ""))
    cls = result_types().get(kind)
    if cls is None:
        raise FormatError(f"{g.file.filename}:{g.name}: unknown result kind {kind!r}")
    scalars = json.loads(g.attrs.get("fields", "{}"))
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name in cls.transient:
            values[f.name] = None  # not stored (e.g. the model object)
            continue
        where = _stored_name(cls, f.name)
        if f.name in scalars:
            value = scalars[f.name]
            if f.name in cls.codecs:
                value = cls.codecs[f.name][1](value)
            elif isinstance(value, list) and str(f.type).startswith("tuple"):
                value = _tuples(value)
            values[f.name] = value
        elif where in g:
            node = g[where]
            if isinstance(node, h5py.Group):
                if "kind" in node.attrs:
                    values[f.name] = read_result(node)
                else:
                    keys = json.loads(node.attrs.get("keys", "null")) or list(node)
                    values[f.name] = {k: read(node[k]) for k in keys}
            else:
                values[f.name] = read(node)
        elif str(f.type).startswith("RunInfo") or f.name == "info":
            values[f.name] = read_info(g) if "model" in g.attrs else None
    return cls(**values)


def _jsonable(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic) or (is_array(value) and np.ndim(value) == 0):
        return np.asarray(value).item()
    if is_array(value):
        return np.asarray(value).tolist()
    return value


def _tuples(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value
