"""Streamed, resumable scans: `dynsim.scan(..., store="out.h5", name="scan1")`.

A scan with a store writes every finished chunk to a shard file of its own, in a
work folder beside the results file (`.<file>.<run>.parts/`):

- `plan.json`: what the scan is (its fingerprint: model and parameters, axes,
  span, solver settings, observables, key, chunk size), written once, atomically;
- `chunk-<c>.npz`: chunk c's outputs, written under a temporary name, fsynced and
  renamed: a shard under its final name is complete (the rename is the record of
  completion), a temporary one is discarded;
- the results file is not touched while chunks run (HDF5 is not crash-consistent:
  a kill during a write into it could damage its finished runs). When every chunk
  is done, the run is saved with `dynsim.io.save` (atomic: a scratch copy renamed
  over the file) and the folder removed.

A kill at any instant therefore loses at most the chunks in flight. The same call
again skips the finished chunks and computes the rest (with the recorded chunk
size, so the result is the same as an uninterrupted run's); a call whose scan
differs from the recorded one is refused, naming the difference, unless
`overwrite=True`. One process at a time works on a store (a lock file).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io as _bytes_io
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.tree_util as jtu
import numpy as np
from jax.flatten_util import ravel_pytree

from ._executor import chunks
from ._faults import fault_point
from ._results import ScanResult
from ._scan_plan import ScanPlan

PLAN = "plan.json"


def parts_folder(path: Path, name: str) -> Path:
    """The work folder of run `name` of the results file `path`."""
    return path.parent / f".{path.name}.{name}.parts"


def _digest(a: Any) -> dict[str, Any]:
    a = np.ascontiguousarray(np.asarray(a))
    h = hashlib.sha256(a.tobytes() + str(a.dtype).encode() + str(a.shape).encode())
    out: dict[str, Any] = {"size": int(a.size), "sha256": h.hexdigest()[:16]}
    if a.size and np.issubdtype(a.dtype, np.number):
        out["range"] = [float(np.min(a)), float(np.max(a))]
    return out


def _describe(tree: Any) -> str:
    return eqx.tree_pformat(tree, short_arrays=False)


def fingerprint(plan: ScanPlan) -> dict[str, Any]:
    """What identifies a scan (as JSON reads it back): a restart must match it
    exactly."""
    info = plan.info
    saveat = plan.options.saveat
    running = zip(plan.names, map(_describe, saveat.reductions), strict=True)
    described = {
        "model": info.model,
        "model_params": json.loads(info.model_params),
        "solver": json.loads(info.solver),
        "seed": info.seed,
        "axes": {k: _digest(v) for k, v in plan.axes.items()},
        "grid": bool(plan.grid),
        "realisations": int(plan.realisations),
        "t_span": [float(plan.t0), float(plan.t1)],
        "y0": None if plan.y0 is None else _digest(ravel_pytree(plan.y0)[0]),
        "args": None if plan.args is None else _describe(plan.args),
        "observables": {
            "running": dict(running),
            "sampled": {n: _function(f, i) for n, (f, i) in plan.sampled},
        },
        "saveat": None if saveat.ts is None else _digest(saveat.ts),
        "chunk_size": int(plan.chunk_size),
        "n_runs": int(plan.n_runs),
        "n_chunks": int(plan.n_chunks),
    }
    return json.loads(json.dumps(described))


def _function(f: Any, index: int | None) -> str:
    fn = f.fn
    where = f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', '')}"
    return f"{where} index={index} t_from={f.t_from}"


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: d}


def differences(stored: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """The entries in which two fingerprints differ, in words."""
    a, b = _flat(stored), _flat(now)
    return [
        f"{k}: {a.get(k, '(absent)')!r} in the store, {b.get(k, '(absent)')!r} now"
        for k in sorted(set(a) | set(b))
        if a.get(k) != b.get(k)
    ]


class ScanStore:
    """The shards of one streamed scan (see the module docstring)."""

    def __init__(self, plan: ScanPlan, path: Path, name: str):
        self.plan, self.path, self.name = plan, path, name
        self.folder = parts_folder(path, name)

    def shard(self, c: int) -> Path:
        return self.folder / f"chunk-{c:08d}.npz"

    def start(self, overwrite: bool) -> None:
        """Create the folder, or check the one a killed run left.

        **Raises:** `ValueError` naming how the recorded scan differs from this
        one (unless `overwrite`: then the recorded chunks are discarded).
        """
        now = fingerprint(self.plan)
        if self.folder.exists() and (self.folder / PLAN).exists():
            stored = json.loads((self.folder / PLAN).read_text())
            diff = differences(stored, now)
            if diff and not overwrite:
                raise ValueError(
                    f"{self.path}: run {self.name!r} was started with other "
                    f"arguments ({'; '.join(diff)}); pass overwrite=True (the CLI: "
                    "--overwrite) to discard its finished chunks and start again"
                )
            if not diff:
                self._drop_temporaries()
                return
        if self.folder.exists():
            shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True)
        _write_atomic(self.folder / PLAN, json.dumps(now, indent=1).encode())

    def _drop_temporaries(self) -> None:
        for tmp in self.folder.glob("*.tmp"):
            tmp.unlink()

    def done(self) -> set[int]:
        """The chunks whose shards are complete."""
        out = set()
        for p in self.folder.glob("chunk-*.npz"):
            c = int(p.stem.split("-")[1])
            if c < self.plan.n_chunks:
                out.add(c)
        return out

    def write(self, c: int, out: Any) -> None:
        """Chunk c's host outputs as a complete shard (temporary name, fsync,
        rename)."""
        leaves = jtu.tree_leaves(out)
        buffer = _bytes_io.BytesIO()
        np.savez(buffer, **{f"leaf_{i}": np.asarray(a) for i, a in enumerate(leaves)})
        data = buffer.getvalue()
        final = self.shard(c)
        tmp = final.with_name(f"{final.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            fh.write(data[: len(data) // 2])
            fault_point("shard-partial", c)
            fh.write(data[len(data) // 2 :])
            fh.flush()
            os.fsync(fh.fileno())
        fault_point("shard-written", c)
        os.replace(tmp, final)
        _fsync_folder(self.folder)

    def read(self, c: int, treedef: Any) -> Any:
        with np.load(self.shard(c), allow_pickle=False) as z:
            leaves = [z[f"leaf_{i}"] for i in range(len(z.files))]
        return jtu.tree_unflatten(treedef, leaves)

    def treedef(self) -> Any:
        """The structure of a chunk's outputs (to rebuild them from a shard)."""
        plan = self.plan
        return jtu.tree_structure(jax.eval_shape(plan.run_chunk, plan.chunk_inputs(0)))

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the store's lock (another process on the same store is refused)."""
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.folder.parent / f"{self.folder.name}.lock"
        with open(lock_path, "a") as fh:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RuntimeError(
                    f"another process is running run {self.name!r} of {self.path}"
                ) from None
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        with contextlib.suppress(FileNotFoundError):
            lock_path.unlink()


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def run_stored(
    plan: ScanPlan,
    path: Path,
    name: str,
    overwrite: bool,
    progress: bool,
    client: Any = None,
    load: bool = True,
) -> ScanResult | None:
    """Run `plan` as a streamed scan into run `name` of `path` (resuming a killed
    one) and save it there, in memory bounded by a chunk; return it read back
    (`load`) or None.

    **Raises:** `ValueError` when the file already holds a finished run `name` (and
    not `overwrite`), or the recorded scan differs from this one; `RuntimeError`
    when another process is running it.
    """
    from tqdm.auto import tqdm

    from . import io

    io.check_name(name)
    store = ScanStore(plan, path, name)
    with store.lock():
        finished = path.exists() and name in io.runs(path)
        if finished and _consolidated(store):
            store.remove()  # killed after the save, before the clean-up
            return io.load(path, name) if load else None
        if finished and not overwrite:
            raise ValueError(
                f"{path} already holds a run {name!r}; pass overwrite=True or "
                "another name"
            )
        store.start(overwrite)
        done = store.done()
        size = plan.chunk_size
        ran = sum(min(size, plan.n_runs - c * size) for c in done)
        with tqdm(
            total=plan.n_runs,
            initial=ran,
            disable=not progress,
            unit="pt",
            desc="scan",
            leave=False,
        ) as bar:
            todo = [c for c in range(plan.n_chunks) if c not in done]
            for c, out in chunks(plan, todo, client):
                store.write(c, out)
                bar.update(min(size, plan.n_runs - c * size))
        treedef = store.treedef()
        io.save_chunks(
            path,
            name,
            plan,
            lambda c: store.read(c, treedef),
            overwrite=overwrite or finished,
        )
        store.remove()
    return io.load(path, name) if load else None


def unfinished(path: Path) -> list[tuple[str, int, int]]:
    """The streamed runs of results file `path` that were started and not finished:
    (run name, chunks done, chunks in all)."""
    out = []
    prefix = f".{path.name}."
    for folder in sorted(path.parent.glob(f"{prefix}*.parts")):
        plan_file = folder / PLAN
        if not plan_file.exists():
            continue
        total = int(json.loads(plan_file.read_text()).get("n_chunks", 0))
        done = len(list(folder.glob("chunk-*.npz")))
        out.append((folder.name[len(prefix) : -len(".parts")], done, total))
    return out


def _consolidated(store: ScanStore) -> bool:
    """Whether the store is complete and is the scan asked for (then the run in
    the file was saved from it)."""
    plan_file = store.folder / PLAN
    if not plan_file.exists():
        return False
    same = not differences(json.loads(plan_file.read_text()), fingerprint(store.plan))
    return same and len(store.done()) == store.plan.n_chunks
