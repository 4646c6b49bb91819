"""Injected faults for crash-safety tests: `fault_point(name, index)` kills the
process with SIGKILL when the environment variable `DYNSIM_FAULT` names that point
(`"<name>"` or `"<name>:<index>"`). Unset (always, outside tests), it does nothing.

Points: `shard-written` (a chunk's shard is written and fsynced, not yet renamed
into place), `shard-partial` (half of a shard's bytes written), `save` (a results
file's scratch copy is written and fsynced, not yet renamed over the file: where a
streamed scan is consolidated), `chunk` (a chunk is about to be computed: on a Dask
worker, the worker dies).
"""

from __future__ import annotations

import os
import signal


def fault_point(name: str, index: int | None = None) -> None:
    want = os.environ.get("DYNSIM_FAULT")
    if not want:
        return
    point, _, at = want.partition(":")
    if point == name and (not at or (index is not None and int(at) == index)):
        os.kill(os.getpid(), signal.SIGKILL)
