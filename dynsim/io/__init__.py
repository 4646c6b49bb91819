"""dynsim.io — HDF5 storage of results."""
