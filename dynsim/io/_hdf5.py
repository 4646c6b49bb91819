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
import numpy as np

from .._faults import fault_point
from .._protocol import AbstractResult
from ._common import (
    DamagedFileError,
    FormatError,
    check_name as _check_name,
    now as _now,
    versions as _versions,
)
from ._generic import read_result, write_result
from ._v1 import read_v1

FORMAT = "dynsim"
# 2: every run written from the result protocol's metadata (`_generic.py`), with
# the JSON attribute `fields`; 1: one layout per result type (`_v1.py`).
FORMAT_VERSION = 2
_SCRATCH = ".incomplete-"
# Files up to this size are rewritten as a scratch copy and renamed over the original
# (crash-safe even for HDF5's own metadata); larger files get a scratch group instead.
_COPY_LIMIT = 256 * 2**20

Result = AbstractResult


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

    **Arguments:** `result` (any `dynsim.AbstractResult`: it is written from the
    protocol's metadata), `path`, `name` of the run (a group), `overwrite` an
    existing run of that name (default: refuse).

    **Returns:** the run name.

    **Raises:** `ValueError` if the run exists and `overwrite` is False, `FormatError`
    if the file exists but is not a dynsim file, `TypeError` for a non-result.
    """
    if not isinstance(result, AbstractResult):
        raise TypeError(
            f"cannot save a {type(result).__name__}: only dynsim results "
            "(subclasses of dynsim.AbstractResult) are saved"
        )
    return save_with(path, name, lambda g: write_result(g, result), overwrite=overwrite)


def save_with(
    path: str | os.PathLike,
    name: str,
    write: Callable[[h5py.Group], None],
    *,
    overwrite: bool = False,
) -> str:
    """`save` of a run that `write` writes into its (empty) group: the same checks
    and the same crash-safe path (a streamed scan writes its chunks this way)."""
    _check_name(name)
    path = Path(path)
    if not path.exists():
        _write_new_file(path, name, write)
        return name
    with _open_existing(path, "r") as f:
        if name in f and not overwrite:
            raise ValueError(
                f"{path} already holds a run {name!r}; pass overwrite=True or "
                "another name"
            )
    _edit(path, lambda f: _replace_run(f, name, write))
    return name


def update_info(path: str | os.PathLike, name: str, info: Any) -> None:
    """Replace the provenance recorded with run `name` (a `RunInfo`: its model,
    parameters, solver settings, seed and config; the state names stay),
    crash-safely (as `save` writes)."""
    path = Path(path)
    with _open_existing(path, "r") as f:
        if name not in f:
            raise KeyError(f"{path} holds no run {name!r}")

    def change(f: h5py.File) -> None:
        a = f[name].attrs
        a["model"], a["model_params"] = info.model, info.model_params
        a["solver"], a["seed"] = info.solver, json.dumps(info.seed)
        if info.config is not None:
            a["config"] = info.config

    _edit(path, change)


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
            fault_point("save")
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


def _write_new_file(path: Path, name: str, write: Callable[[h5py.Group], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_scratch(path)
    tmp = _scratch_file(path)
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["dynsim_version"] = _versions()["dynsim"]
            f.attrs["created"] = _now()
            write(f.create_group(name))
        _fsync(tmp)
        # mkstemp creates files readable by their owner only; a results file gets
        # the permissions any new file of this user gets.
        os.chmod(tmp, 0o666 & ~_umask())
        fault_point("save")
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


def _replace_run(f: h5py.File, name: str, write: Callable[[h5py.Group], None]) -> None:
    scratch = f"{_SCRATCH}{name}-{uuid.uuid4().hex[:8]}"
    try:
        write(f.create_group(scratch))
    except BaseException:
        del f[scratch]
        raise
    f.flush()
    if name in f:
        del f[name]
    f.move(scratch, name)
    # A version-1 file holding a run written now is read by this version only.
    f.attrs["format_version"] = FORMAT_VERSION
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
            return read_result(g) if "fields" in g.attrs else read_v1(g)


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
