"""HDF5 storage of results (layout: docs/hdf5.md).

```
/                 attrs: format="dynsim", format_version, dynsim_version, created
/<name>/          attrs: kind, model, model_params, solver, seed, versions, config,
                         state_names, created
/<name>/ts, /ys, /status, /stats/<k>, /params/<p>, /observables/<o>
```

Every dataset carries an `axes` attribute naming its dimensions. Loading reads
numbers, strings and JSON only: nothing from a file is unpickled or executed.

Writes are atomic per run: a run is written completely into a scratch group (or a
scratch copy of the file) and only then moved to its name, so an interrupted write
leaves every earlier run, and the file, as they were. Scratch copies are named
`<file>.<pid>.<random>.tmp`; those a killed process left behind are removed by the
next save to the same file, as are unfinished scratch groups. A new file gets the
permissions the user's umask allows (like any file the user creates); a rewritten
file keeps its own.

Every dataset is chunked with HDF5's Fletcher-32 checksum: data damaged on disk
raise `DamagedFileError` naming the file and the dataset instead of loading wrong
numbers, and damaged metadata give a one-line error naming the file.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import h5py
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from .._results import ScanResult, Trajectory
from ._analysis import READERS as ANALYSIS_READERS, WRITERS as ANALYSIS_WRITERS
from ._common import (
    DamagedFileError,
    FormatError,
    check_name as _check_name,
    dataset as _dataset,
    now as _now,
    read,
    read_info as _read_info,
    versions as _versions,
    write_info as _write_info,
)

FORMAT = "dynsim"
FORMAT_VERSION = 1
_SCRATCH = ".incomplete-"
# Files up to this size are rewritten as a scratch copy and renamed over the original
# (crash-safe even for HDF5's own metadata); larger files get a scratch group instead.
_COPY_LIMIT = 256 * 2**20

Result = Any  # Trajectory, ScanResult or an analysis result (see `save`)


def _flat_ys(ys: Any, lead: int) -> np.ndarray:
    if isinstance(ys, (np.ndarray, jax.Array)):
        return np.asarray(ys)
    # PyTree states are stored flattened, one column per entry of state_names.
    flat = ravel_pytree
    for _ in range(lead):
        flat = jax.vmap(flat)
    return np.asarray(flat(ys)[0])


def _write_trajectory(g: h5py.Group, r: Trajectory) -> None:
    _write_info(g, "trajectory", r.info)
    _dataset(g, "ts", r.ts, ["time"])
    _dataset(g, "ys", _flat_ys(r.ys, 1), ["time", "state"])
    _dataset(g, "status", r.status, [])
    s = g.create_group("stats")
    for k, v in r.stats.items():
        _dataset(s, k, v, [])


def _read_trajectory(g: h5py.Group) -> Trajectory:
    stats = {k: jnp.asarray(read(v)) for k, v in g["stats"].items()}
    return Trajectory(
        ts=jnp.asarray(read(g["ts"])),
        ys=jnp.asarray(read(g["ys"])),
        status=jnp.asarray(read(g["status"])),
        stats=stats,
        info=_read_info(g),
    )


def _write_scan(g: h5py.Group, r: ScanResult) -> None:
    _write_info(g, "scan", r.info)
    g.attrs["axes"] = json.dumps(list(r.axes))
    g.attrs["shape"] = json.dumps(list(r.shape))
    g.attrs["grid"] = bool(r.grid)
    g.attrs["realisations"] = int(r.realisations)
    p = g.create_group("params")
    for k, v in r.params.items():
        _dataset(p, k, v, ["point"])
    run = ["point", "realisation"] if r.realisations > 1 else ["point"]
    _dataset(g, "status", r.status, run)
    s = g.create_group("stats")
    for k, v in r.stats.items():
        _dataset(s, k, v, run)
    o = g.create_group("observables")
    for k, v in r.values.items():
        _dataset(o, k, v, [*run, "state"])
    if r.ts is not None:
        _dataset(g, "ts", r.ts, ["time"])
    if r.ys is not None:
        _dataset(g, "ys", _flat_ys(r.ys, len(run) + 1), [*run, "time", "state"])


def _read_scan(g: h5py.Group) -> ScanResult:
    axes = tuple(json.loads(g.attrs["axes"]))
    return ScanResult(
        # Parameter datasets in the scan's axis order (HDF5 lists them by name).
        params={k: read(g["params"][k]) for k in axes},
        axes=axes,
        shape=tuple(json.loads(g.attrs["shape"])),
        grid=bool(g.attrs["grid"]),
        status=read(g["status"]),
        stats={k: read(v) for k, v in g["stats"].items()},
        values={k: read(v) for k, v in g["observables"].items()},
        ts=read(g["ts"]) if "ts" in g else None,
        ys=read(g["ys"]) if "ys" in g else None,
        info=_read_info(g),
        realisations=int(g.attrs.get("realisations", 1)),
    )


_WRITERS: dict[type, Any] = {
    Trajectory: _write_trajectory,
    ScanResult: _write_scan,
    **ANALYSIS_WRITERS,
}
_READERS: dict[str, Any] = {
    "trajectory": _read_trajectory,
    "scan": _read_scan,
    **ANALYSIS_READERS,
}


def _check_format(f: h5py.File, path: Any) -> None:
    fmt = f.attrs.get("format")
    if fmt is None:
        raise FormatError(f"{path}: not a dynsim results file (no 'format' attribute)")
    if str(fmt) != FORMAT:
        raise FormatError(
            f"{path}: not a dynsim results file (format attribute is {str(fmt)!r}, "
            f"expected {FORMAT!r})"
        )
    v = int(f.attrs.get("format_version", -1))
    if not 1 <= v <= FORMAT_VERSION:
        raise FormatError(
            f"{path}: dynsim format version {v} is not supported by this dynsim "
            f"(which reads versions 1..{FORMAT_VERSION}); upgrade dynsim"
        )


@contextlib.contextmanager
def _open_existing(path: Path, mode: str) -> Iterator[h5py.File]:
    try:
        f = h5py.File(path, mode)
    except OSError as e:
        raise FormatError(f"{path}: cannot be read as HDF5 ({e})") from None
    with f:
        _check_format(f, path)
        yield f


def save(
    result: Result,
    path: str | os.PathLike,
    name: str = "run",
    *,
    overwrite: bool = False,
) -> str:
    """Save a result as run `name` in the HDF5 file at `path` (created if missing).

    **Arguments:** `result` (a dynsim result type), `path`, `name` of the run (a
    group), `overwrite` an existing run of that name (default: refuse).

    **Returns:** the run name.

    **Raises:** `ValueError` if the run exists and `overwrite` is False, `FormatError`
    if the file exists but is not a dynsim file, `TypeError` for a non-result.
    """
    writer = _WRITERS.get(type(result))
    if writer is None:
        raise TypeError(
            f"cannot save a {type(result).__name__}; savable results: "
            f"{', '.join(t.__name__ for t in _WRITERS)}"
        )
    _check_name(name)
    path = Path(path)
    if not path.exists():
        _write_new_file(path, name, result, writer)
        return name
    with _open_existing(path, "r") as f:
        if name in f and not overwrite:
            raise ValueError(
                f"{path} already holds a run {name!r}; pass overwrite=True or "
                "another name"
            )
    _edit(path, lambda f: _replace_run(f, name, result, writer))
    return name


def _edit(path: Path, change: Callable[[h5py.File], None]) -> None:
    """Apply `change` to an existing results file, crash-safely: files up to
    `_COPY_LIMIT` are changed in a scratch copy that is fsynced and renamed over
    the original; larger ones in place (a run is then written as a scratch group
    first, see `_replace_run`). Left-overs of interrupted saves are removed."""
    remove_stale_scratch(path)
    if path.stat().st_size <= _COPY_LIMIT:
        tmp = _scratch_file(path)
        try:
            shutil.copy2(path, tmp)  # the file's own permissions come along
            with h5py.File(tmp, "a") as f:
                _drop_scratch_groups(f)
                change(f)
            _fsync(tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    else:
        with _open_existing(path, "a") as f:
            _drop_scratch_groups(f)
            change(f)


def delete(path: str | os.PathLike, names: list[str]) -> None:
    """Remove runs from a results file, crash-safely (as `save` writes).

    **Raises:** `KeyError` for a run the file does not hold.
    """
    path = Path(path)
    if not names:
        return
    with _open_existing(path, "r") as f:
        missing = [n for n in names if n not in f]
    if missing:
        raise KeyError(f"{path} has no run(s) {', '.join(map(repr, missing))}")

    def drop(f: h5py.File) -> None:
        for n in names:
            del f[n]

    _edit(path, drop)


def _scratch_file(path: Path) -> str:
    fd, tmp = tempfile.mkstemp(
        prefix=f"{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent
    )
    os.close(fd)
    return tmp


def remove_stale_scratch(path: str | os.PathLike) -> list[Path]:
    """Delete the scratch copies of `path` that a killed process left behind
    (`<file>.<pid>.<random>.tmp` whose process no longer runs).

    **Returns:** the files removed.
    """
    path = Path(path)
    removed = []
    for tmp in path.parent.glob(f"{glob.escape(path.name)}.*.tmp"):
        middle = tmp.name[len(path.name) + 1 : -len(".tmp")]
        pid_text = middle.split(".", 1)[0]
        if not pid_text.isdigit() or _alive(int(pid_text)):
            continue
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
            removed.append(tmp)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def _drop_scratch_groups(f: h5py.File) -> None:
    # Unfinished runs of an interrupted save (large files are written in place).
    for key in [k for k in f if k.startswith(_SCRATCH)]:
        del f[key]


def _write_new_file(path: Path, name: str, result: Result, writer) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_scratch(path)
    tmp = _scratch_file(path)
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["dynsim_version"] = _versions()["dynsim"]
            f.attrs["created"] = _now()
            writer(f.create_group(name), result)
        _fsync(tmp)
        # mkstemp creates files readable by their owner only; a results file gets
        # the permissions any new file of this user gets.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _umask() -> int:
    try:  # Linux: read it without changing it
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _replace_run(f: h5py.File, name: str, result: Result, writer) -> None:
    scratch = f"{_SCRATCH}{name}-{uuid.uuid4().hex[:8]}"
    try:
        writer(f.create_group(scratch), result)
    except BaseException:
        del f[scratch]
        raise
    f.flush()
    if name in f:
        del f[name]
    f.move(scratch, name)
    f.flush()


def _fsync(path: str) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def runs(path: str | os.PathLike) -> dict[str, str]:
    """The runs in a dynsim file: name -> kind (unfinished scratch groups skipped).

    **Raises:** `FormatError` / `DamagedFileError` naming the file.
    """
    with _open_existing(Path(path), "r") as f, _damage(path):
        return {
            k: str(g.attrs.get("kind", "?"))
            for k, g in f.items()
            if not k.startswith(".")
        }


@contextlib.contextmanager
def _damage(path: Any, name: str | None = None) -> Iterator[None]:
    """Turn h5py's errors on damaged structures into one `DamagedFileError`."""
    try:
        yield
    except FormatError:
        raise
    except (
        OSError,
        RuntimeError,
        KeyError,
        ValueError,
        TypeError,
        AttributeError,
    ) as e:
        where = f"{path}:{name}" if name else f"{path}"
        text = str(e).strip().splitlines()
        raise DamagedFileError(
            f"{where}: the file is damaged and cannot be read "
            f"({text[0] if text else type(e).__name__})"
        ) from None


def load(path: str | os.PathLike, name: str | None = None) -> Result:
    """Load run `name` (optional when the file holds exactly one run).

    **Raises:** `FileNotFoundError`; `FormatError` for a file that is not a dynsim
    file (missing or wrong `format` attribute, unsupported version); `KeyError` for
    an unknown run, listing the runs present.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    with _open_existing(path, "r") as f:
        with _damage(path):
            names = [k for k in f if not k.startswith(".")]
        if name is None:
            if len(names) != 1:
                raise KeyError(
                    f"{path} holds {len(names)} runs ({', '.join(names)}); pass name="
                )
            name = names[0]
        if name not in names:
            raise KeyError(f"{path} has no run {name!r}; runs: {', '.join(names)}")
        with _damage(path, name):
            g = f[name]
            kind = str(g.attrs.get("kind", ""))
            reader = _READERS.get(kind)
            if reader is None:
                raise FormatError(f"{path}:{name}: unknown result kind {kind!r}")
            return reader(g)


def attributes(path: str | os.PathLike, name: str) -> dict[str, Any]:
    """The raw attributes of a run (provenance), JSON fields decoded."""
    with _open_existing(Path(path), "r") as f, _damage(path, name):
        out = {}
        for k, v in f[name].attrs.items():
            v = v.decode() if isinstance(v, bytes) else v
            if isinstance(v, str) and k not in ("config", "kind", "model", "created"):
                with contextlib.suppress(ValueError):
                    v = json.loads(v)
            out[k] = v.item() if isinstance(v, np.generic) else v
        return out
