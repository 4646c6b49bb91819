"""Input checks shared by the analyses of measured series."""

from __future__ import annotations

from typing import Any

import numpy as np


def as_series(series: Any, min_length: int) -> tuple[np.ndarray, bool]:
    """`series` (n,) or (count, n) as a finite float (count, n) array, and whether it
    was a single series. **Raises:** `ValueError` naming the problem."""
    x = np.asarray(series, float)
    single = x.ndim == 1
    x = np.atleast_2d(x)
    if x.ndim != 2 or x.shape[1] < min_length:
        raise ValueError(
            f"series must be (n,) or (series, n) with n >= {min_length}, got {x.shape}"
        )
    if not np.all(np.isfinite(x)):
        raise ValueError("the series contain NaN or inf; clean or cut them first")
    return x, single
