"""Where a scan's chunks run: in this process, one after another, or as tasks on a
Dask distributed cluster.

On a cluster the plan (model, options, observables) is sent to every worker once
(`Client.scatter(..., broadcast=True)`); each task is one chunk and receives the
worker's copy, so the chunk kernel is compiled once per worker and reused by its
later tasks. The client collects the chunks as they finish, in any order; a task
lost with its worker is retried by Dask, and a chunk that still fails is returned
as failed runs (status `FAILED`, NaN values), never as a crashed scan.

Task size: one task is one chunk. Dask's scheduler costs about 1 ms per task, so a
chunk should take 0.1 s or more for that to stay under 1 %: with the automatic
chunk size (at least 2048 runs per chunk for a large scan) even the cheapest
solves take that long.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import jax
import jax.tree_util as jtu
import numpy as np

from dynsim.solvers import Status

from ._faults import fault_point
from ._scan_plan import ScanPlan

#: Dask's retries of a chunk whose task failed (e.g. its worker died).
RETRIES = 2


def run_chunk_on_host(plan: ScanPlan, c: int) -> Any:
    """Chunk `c` of `plan`, computed here, as host (NumPy) arrays."""
    fault_point("chunk", c)
    return plan.to_host(c, plan.run_chunk(plan.chunk_inputs(c), packed=True))


def failed_chunk(plan: ScanPlan, c: int) -> Any:
    """The outputs of chunk `c` when it could not be computed: every run FAILED,
    its observables and states NaN, no steps, and no run checked."""
    n = min(plan.chunk_size, plan.n_runs - c * plan.chunk_size)
    values, ys, _, stats, check = jax.eval_shape(plan.run_chunk, plan.chunk_inputs(0))

    def nan(s):
        return np.full((n, *s.shape[1:]), np.nan, s.dtype)

    return (
        jtu.tree_map(nan, values),
        jtu.tree_map(nan, ys),
        np.full(n, int(Status.FAILED), np.int32),
        jtu.tree_map(lambda s: np.zeros((n, *s.shape[1:]), s.dtype), stats),
        jtu.tree_map(lambda s: np.zeros(s.shape, s.dtype), check),
    )


def chunks(plan: ScanPlan, todo: Iterable[int], client: Any = None) -> Iterator:
    """`(c, outputs)` for every chunk in `todo`, as they finish."""
    todo = list(todo)
    if client is None:
        for c in todo:
            yield c, run_chunk_on_host(plan, c)
        return
    from distributed import as_completed

    shared = client.scatter(plan, broadcast=True, hash=False)
    # pure=False: every task gets a key of its own (two scans never share one).
    futures = {
        client.submit(run_chunk_on_host, shared, c, pure=False, retries=RETRIES): c
        for c in todo
    }
    for future in as_completed(futures):
        c = futures[future]
        if future.status == "error":  # the chunk itself failed, retries spent
            yield c, failed_chunk(plan, c)
        elif future.status == "finished":
            yield c, future.result()
        else:  # the cluster lost it (e.g. the scheduler went away): not the chunk's
            raise RuntimeError(
                f"chunk {c} was {future.status} by the Dask cluster; run the scan "
                "again to compute the chunks not yet done"
            )
        future.release()


def client_for(scheduler: str) -> tuple[Any, Any]:
    """A Dask client for `scheduler`: `"local:N"` starts a `LocalCluster` of N
    worker processes (one thread each), anything else is a scheduler address
    (`"tcp://host:8786"`). Returns `(client, cluster or None)`; close both.

    **Raises:** `ValueError` for a malformed `local:N`, `ImportError` without
    dask.distributed (`pip install "dynsim[cluster]"`).
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ImportError(
            "scans on a cluster need dask.distributed: pip install 'dynsim[cluster]'"
        ) from None
    if scheduler.startswith("local:"):
        n = scheduler.removeprefix("local:")
        if not n.isdigit() or int(n) < 1:
            raise ValueError(f"--scheduler local:N needs N >= 1, got {scheduler!r}")
        cluster = LocalCluster(
            n_workers=int(n),
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
        )
        return Client(cluster), cluster
    return Client(scheduler), None
