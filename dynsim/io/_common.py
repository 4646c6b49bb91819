"""What every stored run shares: provenance attributes and labelled datasets."""

from __future__ import annotations

import datetime
import json
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import h5py
import numpy as np

from .._results import RunInfo

_ATTR_LIMIT = 32 * 1024


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def versions() -> dict[str, str]:
    out = {}
    for pkg in ("dynsim", "jax", "diffrax", "equinox", "numpy", "h5py"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "unknown"
    return out


def check_name(name: str) -> None:
    if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
        raise ValueError(
            f"run name must be a non-empty string without '/' and not starting with "
            f"'.', got {name!r}"
        )


class FormatError(ValueError):
    """The file is not a dynsim results file, or of an unsupported version."""


class DamagedFileError(FormatError):
    """A dynsim results file whose data or metadata cannot be read back intact (a
    checksum mismatch, a truncated or overwritten file)."""


def _compression(size: int) -> dict[str, Any]:
    """HDF5 filters for a dataset of `size` numbers: above 4096, byte shuffling and
    gzip at level 1 (standard filters every HDF5 reader has; against gzip's default
    level 4, a 10⁶-point scan's results are written 1.9x faster into a 16 % smaller
    file)."""
    if size <= 4096:
        return {}
    return {"compression": "gzip", "compression_opts": 1, "shuffle": True}


def dataset(group: h5py.Group, name: str, data: Any, axes: list[str]) -> None:
    """Store an array with its `axes` labels, chunked and with HDF5's Fletcher-32
    checksum, so that a damaged file is detected when read. A scalar is stored as
    one element (checksums need chunked storage) marked `scalar = 1`."""
    arr = np.asarray(data)
    scalar = arr.ndim == 0
    if scalar:
        arr = arr.reshape(1)
    ds = group.create_dataset(
        name,
        data=arr,
        chunks=True if arr.size else None,
        fletcher32=bool(arr.size),
        **_compression(arr.size),
    )
    ds.attrs["axes"] = json.dumps(
        [] if scalar else axes[: arr.ndim] + ["component"] * (arr.ndim - len(axes))
    )
    if scalar:
        ds.attrs["scalar"] = 1


def empty_dataset(
    group: h5py.Group, name: str, shape: tuple[int, ...], dtype: Any, axes: list[str]
) -> h5py.Dataset:
    """A dataset of `shape` to be filled by slices (as `dataset` stores arrays:
    chunked, checksummed, compressed when large, with its `axes`)."""
    size = int(np.prod(shape, dtype=np.int64))
    # Chunks of whole rows, about 2¹⁶ numbers each: few chunks however long the
    # dataset (its chunk index stays small in memory).
    row = int(np.prod(shape[1:], dtype=np.int64)) if len(shape) > 1 else 1
    chunks = (
        (max(1, min(shape[0], (1 << 16) // max(1, row))), *shape[1:]) if size else None
    )
    ds = group.create_dataset(
        name,
        shape=shape,
        dtype=dtype,
        chunks=chunks,
        fletcher32=bool(size),
        **_compression(size),
        rdcc_nbytes=1
        << 20,  # a 1 MiB chunk cache per dataset (HDF5 2 defaults to more)
    )
    ds.attrs["axes"] = json.dumps(
        axes[: len(shape)] + ["component"] * (len(shape) - len(axes))
    )
    return ds


def read(ds: h5py.Dataset) -> Any:
    """A dataset's value (a scalar stored by `dataset` comes back as a scalar).

    **Raises:** `DamagedFileError` naming the file and the dataset when the data
    fail their checksum or cannot be read.
    """
    try:
        value = ds[()]
        scalar = int(ds.attrs.get("scalar", 0))
    except (OSError, RuntimeError, KeyError, ValueError) as e:
        raise DamagedFileError(
            f"{ds.file.filename}: dataset {ds.name} is damaged and cannot be read "
            f"({_reason(e)})"
        ) from None
    return value[0] if scalar else value


def _reason(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def write_info(group: h5py.Group, kind: str, info: RunInfo) -> None:
    a = group.attrs
    a["kind"] = kind
    a["model"] = info.model
    a["model_params"] = info.model_params
    a["solver"] = info.solver
    a["seed"] = json.dumps(info.seed)
    names = json.dumps(list(info.state_names))
    if len(names) < _ATTR_LIMIT:
        a["state_names"] = names
    else:  # HDF5 attributes hold 64 KiB: long name lists (grids) go in a dataset
        group.create_dataset(
            "state_names",
            data=np.array(info.state_names, dtype="S"),
            chunks=True,
            fletcher32=True,
        )
    a["versions"] = json.dumps(versions())
    a["created"] = now()
    if info.config is not None:
        a["config"] = info.config


def read_info(group: h5py.Group) -> RunInfo:
    a = group.attrs
    seed = json.loads(a["seed"])
    return RunInfo(
        model=str(a["model"]),
        model_params=str(a["model_params"]),
        state_names=(
            tuple(json.loads(a["state_names"]))
            if "state_names" in a
            else tuple(n.decode() for n in read(group["state_names"]))
        ),
        solver=str(a["solver"]),
        seed=tuple(seed) if isinstance(seed, list) else seed,
        config=str(a["config"]) if "config" in a else None,
    )
