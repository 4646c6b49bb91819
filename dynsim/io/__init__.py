"""dynsim.io — results to and from HDF5 (layout in DESIGN.md §5)."""

from ._hdf5 import (
    FORMAT as FORMAT,
    FORMAT_VERSION as FORMAT_VERSION,
    FormatError as FormatError,
    attributes as attributes,
    load as load,
    runs as runs,
    save as save,
)
