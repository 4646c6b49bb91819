"""dynsim.plot — figures of results."""
