"""dynsim.io — results to and from HDF5 (layout in docs/hdf5.md)."""

from ._common import (
    DamagedFileError as DamagedFileError,
    FormatError as FormatError,
    check_name as check_name,
)
from ._hdf5 import (
    FORMAT as FORMAT,
    FORMAT_VERSION as FORMAT_VERSION,
    attributes as attributes,
    delete as delete,
    load as load,
    remove_stale_scratch as remove_stale_scratch,
    runs as runs,
    save as save,
    save_with as save_with,
    update_info as update_info,
)
from ._stream import save_chunks as save_chunks
