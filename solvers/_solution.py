"""The outcome of one solve."""

from __future__ import annotations

import diffrax as dfx
import equinox as eqx
from jaxtyping import Array, Int, PyTree, Real


class Solution(eqx.Module):
    """The raw outcome of `integrate`.

    - `ts`: save times, shape `(times,)`.
    - `ys`: states at `ts`, a PyTree with leading axis `times`.
    - `status`: an integer `Status` code (0 = success).
    - `stats`: accepted / rejected / total step counts.
    - `interpolation`: dense output (a diffrax interpolation) when asked for, else None.
    - `reductions`: the values of the running reductions asked for, in order.
    """

    ts: Real[Array, " times"]
    ys: PyTree[Array]
    status: Int[Array, ""]
    stats: dict[str, Array]
    interpolation: dfx.DenseInterpolation | None = None
    reductions: tuple[PyTree[Array], ...] = ()
