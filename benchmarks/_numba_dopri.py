"""The hand-compiled arm of E1/E2: a per-trajectory Dormand–Prince 5(4) loop for the
Lorenz system in numba, parallel over trajectories on every core (`prange`).

Same method family and step control as the JAX arms: an integral controller
h ← h · clip(0.9 · err^(−1/5), 0.2, 10) (0.9 … 1 after a rejection) on the RMS of
the error scaled by atol + rtol · max(|y₀|, |y₁|), and Hairer's initial step
(Hairer, Nørsett & Wanner, *Solving ODEs I*, §II.4). Fixed steps (`dt > 0`) take
round((t1 − t0)/dt) steps. The loop is compiled for float64 or float32 (`solve(...,
dtype=)`): in float32 every constant is a float32 number, so that nothing is computed
wider. numba is a benchmark-only dependency (`dynsim[bench]`).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable

# numba's OpenMP threads otherwise spin for a while after each call, taking the
# cores from whichever arm runs next (measured: the dynsim kernel 2x slower right
# after this arm); passive waiting leaves this arm's own time unchanged. Set before
# numba starts its threads.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

import numba  # noqa: E402
import numpy as np

SIGMA, BETA = 10.0, 8.0 / 3.0

# Dormand & Prince (1980), the 5th-order solution and the 4th-order embedded one.
A21 = 1 / 5
A31, A32 = 3 / 40, 9 / 40
A41, A42, A43 = 44 / 45, -56 / 15, 32 / 9
A51, A52, A53, A54 = 19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729
A61, A62, A63, A64, A65 = 9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656
B1, B3, B4, B5, B6 = 35 / 384, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84
E1 = 71 / 57600
E3, E4, E5, E6, E7 = -71 / 16695, 71 / 1920, -17253 / 339200, 22 / 525, -1 / 40


@functools.cache
def _ensemble(dtype: type) -> Callable:
    """The compiled ensemble loop whose arithmetic is in `dtype` (np.float64 or
    np.float32): every constant is a `dtype` number, so that numba computes
    nothing in a wider type."""
    c = dtype
    sigma, beta = c(SIGMA), c(BETA)
    a21 = c(A21)
    a31, a32 = c(A31), c(A32)
    a41, a42, a43 = c(A41), c(A42), c(A43)
    a51, a52, a53, a54 = c(A51), c(A52), c(A53), c(A54)
    a61, a62, a63, a64, a65 = c(A61), c(A62), c(A63), c(A64), c(A65)
    b1, b3, b4, b5, b6 = c(B1), c(B3), c(B4), c(B5), c(B6)
    e1, e3, e4, e5, e6, e7 = c(E1), c(E3), c(E4), c(E5), c(E6), c(E7)
    zero, one, three, ten, hundred = c(0), c(1), c(3), c(10), c(100)
    safety, shrink, fifth = c(0.9), c(0.2), c(0.2)
    h_small, d_small, md_small = c(1e-6), c(1e-5), c(1e-15)
    h_ratio, d_ratio = c(1e-3), c(0.01)

    @numba.njit(inline="always", fastmath=False)
    def f(x, y, z, rho):
        return sigma * (y - x), x * (rho - z) - y, x * y - beta * z

    @numba.njit(fastmath=False)
    def one_run(rho, y0, t0, t1, rtol, atol, dt, max_steps, out, steps):
        x, y, z = y0[0], y0[1], y0[2]
        t = t0
        k1x, k1y, k1z = f(x, y, z, rho)
        if dt > 0:
            n = int(round((t1 - t0) / dt))
            h = (t1 - t0) / c(n)
        else:
            # Hairer's initial step.
            sx, sy, sz = (
                atol + abs(x) * rtol,
                atol + abs(y) * rtol,
                atol + abs(z) * rtol,
            )
            d0 = np.sqrt(((x / sx) ** 2 + (y / sy) ** 2 + (z / sz) ** 2) / three)
            d1 = np.sqrt(((k1x / sx) ** 2 + (k1y / sy) ** 2 + (k1z / sz) ** 2) / three)
            h0 = h_small if (d0 < d_small or d1 < d_small) else d_ratio * d0 / d1
            fx, fy, fz = f(x + h0 * k1x, y + h0 * k1y, z + h0 * k1z, rho)
            gx, gy, gz = (fx - k1x) / sx, (fy - k1y) / sy, (fz - k1z) / sz
            d2 = np.sqrt((gx**2 + gy**2 + gz**2) / three) / h0
            md = max(d1, d2)
            h1 = (
                max(h_small, h0 * h_ratio)
                if md <= md_small
                else (d_ratio / md) ** fifth
            )
            h = min(hundred * h0, h1)
            n = max_steps
        taken = 0
        while t < t1 and taken < max_steps:
            if dt <= 0 and t + h > t1:
                h = t1 - t
            k2x, k2y, k2z = f(
                x + h * a21 * k1x, y + h * a21 * k1y, z + h * a21 * k1z, rho
            )
            k3x, k3y, k3z = f(
                x + h * (a31 * k1x + a32 * k2x),
                y + h * (a31 * k1y + a32 * k2y),
                z + h * (a31 * k1z + a32 * k2z),
                rho,
            )
            k4x, k4y, k4z = f(
                x + h * (a41 * k1x + a42 * k2x + a43 * k3x),
                y + h * (a41 * k1y + a42 * k2y + a43 * k3y),
                z + h * (a41 * k1z + a42 * k2z + a43 * k3z),
                rho,
            )
            k5x, k5y, k5z = f(
                x + h * (a51 * k1x + a52 * k2x + a53 * k3x + a54 * k4x),
                y + h * (a51 * k1y + a52 * k2y + a53 * k3y + a54 * k4y),
                z + h * (a51 * k1z + a52 * k2z + a53 * k3z + a54 * k4z),
                rho,
            )
            k6x, k6y, k6z = f(
                x + h * (a61 * k1x + a62 * k2x + a63 * k3x + a64 * k4x + a65 * k5x),
                y + h * (a61 * k1y + a62 * k2y + a63 * k3y + a64 * k4y + a65 * k5y),
                z + h * (a61 * k1z + a62 * k2z + a63 * k3z + a64 * k4z + a65 * k5z),
                rho,
            )
            nx = x + h * (b1 * k1x + b3 * k3x + b4 * k4x + b5 * k5x + b6 * k6x)
            ny = y + h * (b1 * k1y + b3 * k3y + b4 * k4y + b5 * k5y + b6 * k6y)
            nz = z + h * (b1 * k1z + b3 * k3z + b4 * k4z + b5 * k5z + b6 * k6z)
            k7x, k7y, k7z = f(nx, ny, nz, rho)
            taken += 1
            if dt > 0:
                x, y, z, k1x, k1y, k1z = nx, ny, nz, k7x, k7y, k7z
                t = t0 + (t1 - t0) * c(taken) / c(n)
                if taken == n:
                    break
                continue
            ex = h * (e1 * k1x + e3 * k3x + e4 * k4x + e5 * k5x + e6 * k6x + e7 * k7x)
            ey = h * (e1 * k1y + e3 * k3y + e4 * k4y + e5 * k5y + e6 * k6y + e7 * k7y)
            ez = h * (e1 * k1z + e3 * k3z + e4 * k4z + e5 * k5z + e6 * k6z + e7 * k7z)
            sx = atol + rtol * max(abs(x), abs(nx))
            sy = atol + rtol * max(abs(y), abs(ny))
            sz = atol + rtol * max(abs(z), abs(nz))
            err = np.sqrt(((ex / sx) ** 2 + (ey / sy) ** 2 + (ez / sz) ** 2) / three)
            if err < one:
                t = t + h
                x, y, z, k1x, k1y, k1z = nx, ny, nz, k7x, k7y, k7z
                factor = min(ten, max(one, safety * err**-fifth)) if err > zero else ten
            else:
                factor = min(safety, max(shrink, safety * err**-fifth))
            h = h * factor
        out[0], out[1], out[2] = x, y, z
        steps[0] = taken

    @numba.njit(parallel=True)
    def ensemble(rhos, y0, t0, t1, rtol, atol, dt, max_steps):
        n = rhos.shape[0]
        out = np.empty((n, 3), rhos.dtype)
        steps = np.empty(n, np.int64)
        for i in numba.prange(n):
            one_run(
                rhos[i], y0, t0, t1, rtol, atol, dt, max_steps, out[i], steps[i : i + 1]
            )
        return out, steps

    return ensemble


def solve(
    rhos,
    y0,
    t_span,
    *,
    rtol=1e-8,
    atol=1e-8,
    dt=0.0,
    max_steps=100_000,
    dtype: type = np.float64,
):
    """End states `(N, 3)` and attempted step counts `(N,)` of one Lorenz solve
    per ρ in `rhos` (adaptive when `dt <= 0`), computed in `dtype` (np.float64 or
    np.float32)."""
    c = np.dtype(dtype).type
    return _ensemble(c)(
        np.ascontiguousarray(rhos, c),
        np.asarray(y0, c),
        c(t_span[0]),
        c(t_span[1]),
        c(rtol),
        c(atol),
        c(dt),
        int(max_steps),
    )
