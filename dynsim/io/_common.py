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


def dataset(group: h5py.Group, name: str, data: Any, axes: list[str]) -> None:
    arr = np.asarray(data)
    ds = group.create_dataset(
        name, data=arr, compression="gzip" if arr.size > 4096 else None
    )
    ds.attrs["axes"] = json.dumps(
        axes[: arr.ndim] + ["component"] * (arr.ndim - len(axes))
    )


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
        group.create_dataset("state_names", data=np.array(info.state_names, dtype="S"))
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
            else tuple(n.decode() for n in group["state_names"][()])
        ),
        solver=str(a["solver"]),
        seed=tuple(seed) if isinstance(seed, list) else seed,
        config=str(a["config"]) if "config" in a else None,
    )
