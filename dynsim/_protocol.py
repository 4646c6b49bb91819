"""The protocol every dynsim result follows.

A result is immutable, says how it came about (`status`, per point where that
applies, and `message`), knows the axes of its arrays (so that `dynsim.io` writes
and reads it from that metadata alone) and draws its own standard figures
(`figures`). A new result type is one subclass: `dynsim.io` finds it by its `kind`
among the subclasses of `AbstractResult` (nothing named in a file is imported or
executed), and `dynsim.plot.save_figures` calls its `figures`.
"""

from __future__ import annotations

import dataclasses
import functools
import types
from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

import numpy as np

from dynsim.solvers import Status, status_ok

R = TypeVar("R", bound="AbstractResult")


@dataclasses.dataclass(frozen=True)
class Gridded:
    """A result on a grid: `coords` (dimension name -> its values) and `variables`
    (name -> (dimension names, array)); dimensions without coordinates are
    numbered 0, 1, ..."""

    coords: Mapping[str, np.ndarray]
    variables: Mapping[str, tuple[tuple[str, ...], np.ndarray]]


class AbstractResult:
    """The result protocol.

    Class variables a result type sets:

    - `kind`: its name in files (`/<run>/` attribute `kind`), unique among results.
    - `dims`: field name -> the names of that array's dimensions (e.g.
      `{"ys": ("point", "state")}`, stored as the dataset's `axes` attribute);
      fields not listed get generic names.
    - `codecs`: field name -> `(encode, decode)` for fields that are neither arrays,
      numbers, strings, mappings of arrays nor results (encoded as JSON-able data).
    - `transient`: fields not stored in files (e.g. the model object itself).
    - `stored_names`: field name -> its name in the file, where they differ.

    What every result provides: `status` (a `dynsim.Status` code or an array of
    them), `message`, `ok` (the whole result usable: every status an `ok`
    outcome), `ok_mask` (per point), `to_numpy()`, a one-line `repr`, and
    `figures()`.
    """

    kind: ClassVar[str]
    dims: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    codecs: ClassVar[Mapping[str, tuple[Any, Any]]] = {}
    transient: ClassVar[tuple[str, ...]] = ()
    stored_names: ClassVar[Mapping[str, str]] = {}

    def field_dims(self, name: str) -> tuple[str, ...]:
        """The dimension names of field `name` (from `dims`)."""
        return tuple(self.dims.get(name, ()))

    def stored_fields(self) -> dict[str, Any]:
        """What `dynsim.io` writes: every field but the `transient` ones."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)  # type: ignore[arg-type]
            if f.name not in self.transient
        }

    @property
    def ok(self) -> bool:
        """Whether the whole result is usable (every status an `ok` outcome)."""
        return bool(np.all(self.ok_mask))

    @property
    def ok_mask(self) -> np.ndarray:
        """Per point (or one value), whether its status is an `ok` outcome."""
        return status_ok(np.asarray(self.status))

    @property
    def status_message(self) -> str:
        """The status in words (the most frequent failure, if any)."""
        codes = np.asarray(self.status).ravel()
        bad = codes[~status_ok(codes)]
        if bad.size == 0:
            return Status(int(codes[0])).message if codes.size else "empty"
        values, counts = np.unique(bad, return_counts=True)
        worst = Status(int(values[np.argmax(counts)]))
        return f"{bad.size} of {codes.size} failed: {worst.message}"

    def to_numpy(self) -> dict[str, Any]:
        """The fields as NumPy arrays (nested results and mappings as dicts)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if isinstance(value, AbstractResult):
                out[f.name] = value.to_numpy()
            elif isinstance(value, Mapping):
                out[f.name] = {k: np.asarray(v) for k, v in value.items()}
            elif is_array(value):
                out[f.name] = np.asarray(value)
        return out

    def gridded(self) -> Gridded | None:
        """The result laid out on a grid, for readers without dynsim: `dynsim.io`
        stores it beside the fields as the subgroup `gridded` in netCDF-4 form
        (coordinates as dimension scales), so that
        `xarray.open_dataset(file, group="<run>/gridded", engine="h5netcdf")` reads
        it. None (the default): the result has no such view."""
        return None

    def figures(self, **options: Any) -> list[tuple[str, Any]]:
        """The standard figures, as `(suffix, matplotlib Figure)` pairs.

        **Raises:** `ValueError` saying why when the result has none.
        """
        raise ValueError(f"a {type(self).__name__} has no standard figure")


def checked(result: R, throw: bool) -> R:
    """`result`, or (`throw=True` and the result not `ok`) a `RuntimeError` with its
    message: how every analysis's `throw` argument acts."""
    if throw and not result.ok:
        raise RuntimeError(f"{type(result).__name__}: {result.message}")
    return result


def is_array(value: Any) -> bool:
    """Whether `value` is an array (NumPy, JAX, or anything with shape and dtype)."""
    return hasattr(value, "shape") and hasattr(value, "dtype")


def result_types() -> dict[str, type[AbstractResult]]:
    """Every result type by its `kind`: the subclasses of `AbstractResult` (found by
    walking the class hierarchy; importing `dynsim.analysis` makes the analyses'
    result types known)."""
    import dynsim._fit  # noqa: F401  (defines the results outside this module)
    import dynsim.analysis  # noqa: F401

    found: dict[str, type[AbstractResult]] = {}
    todo = list(AbstractResult.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        kind = cls.__dict__.get("kind")
        if isinstance(kind, str):
            found[kind] = cls
    return found


def freeze_fields(result: AbstractResult) -> None:
    """Make a result immutable in place (for a frozen dataclass's `__post_init__`):
    every array field a read-only NumPy copy, every mapping a read-only view of
    read-only arrays, tuples of arrays tuples of read-only arrays."""

    transient = result.transient
    for name in _field_names(type(result)):
        value = getattr(result, name)
        if name in transient or isinstance(value, AbstractResult):
            continue
        # (Arrays and dicts tested first: testing against `Mapping` costs ten
        # times more.)
        if type(value) is np.ndarray:
            value = frozen(value)
        elif isinstance(value, dict) or isinstance(value, Mapping):
            value = types.MappingProxyType({k: _freeze(v) for k, v in value.items()})
        else:
            value = _freeze(value)
        object.__setattr__(result, name, value)


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


def _freeze(value: Any) -> Any:
    if type(value) is np.ndarray:  # (the usual case first)
        return frozen(value)
    if isinstance(value, np.generic):
        return value.item()  # NumPy scalars: plain numbers
    if is_array(value):
        return frozen(value)
    if isinstance(value, tuple):
        return tuple(_freeze(v) for v in value)
    return value


def frozen(array: Any) -> np.ndarray:
    """A read-only NumPy array: `array` itself where it is one that owns its data
    (nothing else can write to it), else a read-only copy."""
    if (
        isinstance(array, np.ndarray)
        and not array.flags.writeable
        and array.flags.owndata
    ):
        return array
    out = np.array(array)
    out.flags.writeable = False
    return out
