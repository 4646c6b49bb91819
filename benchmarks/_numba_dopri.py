"""The hand-compiled arm of E1/E2: a per-trajectory Dormand–Prince 5(4) loop for the
Lorenz system in numba, parallel over trajectories on every core (`prange`).

Same method family and step control as the JAX arms: an integral controller
h ← h · clip(0.9 · err^(−1/5), 0.2, 10) (0.9 … 1 after a rejection) on the RMS of
the error scaled by atol + rtol · max(|y₀|, |y₁|), and Hairer's initial step
(Hairer, Nørsett & Wanner, *Solving ODEs I*, §II.4). Fixed steps (`dt > 0`) take
round((t1 − t0)/dt) steps. numba is a benchmark-only dependency (`dynsim[bench]`).
"""

from __future__ import annotations

import os

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


@numba.njit(inline="always", fastmath=False)
def _f(x, y, z, rho):
    return SIGMA * (y - x), x * (rho - z) - y, x * y - BETA * z


@numba.njit(fastmath=False)
def _one(rho, y0, t0, t1, rtol, atol, dt, max_steps, out, steps):
    x, y, z = y0[0], y0[1], y0[2]
    t = t0
    k1x, k1y, k1z = _f(x, y, z, rho)
    if dt > 0:
        n = int(round((t1 - t0) / dt))
        h = (t1 - t0) / n
    else:
        # Hairer's initial step.
        sx, sy, sz = atol + abs(x) * rtol, atol + abs(y) * rtol, atol + abs(z) * rtol
        d0 = np.sqrt(((x / sx) ** 2 + (y / sy) ** 2 + (z / sz) ** 2) / 3)
        d1 = np.sqrt(((k1x / sx) ** 2 + (k1y / sy) ** 2 + (k1z / sz) ** 2) / 3)
        h0 = 1e-6 if (d0 < 1e-5 or d1 < 1e-5) else 0.01 * d0 / d1
        fx, fy, fz = _f(x + h0 * k1x, y + h0 * k1y, z + h0 * k1z, rho)
        gx, gy, gz = (fx - k1x) / sx, (fy - k1y) / sy, (fz - k1z) / sz
        d2 = np.sqrt((gx**2 + gy**2 + gz**2) / 3) / h0
        md = max(d1, d2)
        h1 = max(1e-6, h0 * 1e-3) if md <= 1e-15 else (0.01 / md) ** (1 / 5)
        h = min(100 * h0, h1)
        n = max_steps
    taken = 0
    while t < t1 and taken < max_steps:
        if dt <= 0 and t + h > t1:
            h = t1 - t
        k2x, k2y, k2z = _f(x + h * A21 * k1x, y + h * A21 * k1y, z + h * A21 * k1z, rho)
        k3x, k3y, k3z = _f(
            x + h * (A31 * k1x + A32 * k2x),
            y + h * (A31 * k1y + A32 * k2y),
            z + h * (A31 * k1z + A32 * k2z),
            rho,
        )
        k4x, k4y, k4z = _f(
            x + h * (A41 * k1x + A42 * k2x + A43 * k3x),
            y + h * (A41 * k1y + A42 * k2y + A43 * k3y),
            z + h * (A41 * k1z + A42 * k2z + A43 * k3z),
            rho,
        )
        k5x, k5y, k5z = _f(
            x + h * (A51 * k1x + A52 * k2x + A53 * k3x + A54 * k4x),
            y + h * (A51 * k1y + A52 * k2y + A53 * k3y + A54 * k4y),
            z + h * (A51 * k1z + A52 * k2z + A53 * k3z + A54 * k4z),
            rho,
        )
        k6x, k6y, k6z = _f(
            x + h * (A61 * k1x + A62 * k2x + A63 * k3x + A64 * k4x + A65 * k5x),
            y + h * (A61 * k1y + A62 * k2y + A63 * k3y + A64 * k4y + A65 * k5y),
            z + h * (A61 * k1z + A62 * k2z + A63 * k3z + A64 * k4z + A65 * k5z),
            rho,
        )
        nx = x + h * (B1 * k1x + B3 * k3x + B4 * k4x + B5 * k5x + B6 * k6x)
        ny = y + h * (B1 * k1y + B3 * k3y + B4 * k4y + B5 * k5y + B6 * k6y)
        nz = z + h * (B1 * k1z + B3 * k3z + B4 * k4z + B5 * k5z + B6 * k6z)
        k7x, k7y, k7z = _f(nx, ny, nz, rho)
        taken += 1
        if dt > 0:
            x, y, z, k1x, k1y, k1z = nx, ny, nz, k7x, k7y, k7z
            t = t0 + (t1 - t0) * taken / n
            if taken == n:
                break
            continue
        ex = h * (E1 * k1x + E3 * k3x + E4 * k4x + E5 * k5x + E6 * k6x + E7 * k7x)
        ey = h * (E1 * k1y + E3 * k3y + E4 * k4y + E5 * k5y + E6 * k6y + E7 * k7y)
        ez = h * (E1 * k1z + E3 * k3z + E4 * k4z + E5 * k5z + E6 * k6z + E7 * k7z)
        sx = atol + rtol * max(abs(x), abs(nx))
        sy = atol + rtol * max(abs(y), abs(ny))
        sz = atol + rtol * max(abs(z), abs(nz))
        err = np.sqrt(((ex / sx) ** 2 + (ey / sy) ** 2 + (ez / sz) ** 2) / 3)
        if err < 1:
            t = t + h
            x, y, z, k1x, k1y, k1z = nx, ny, nz, k7x, k7y, k7z
            factor = min(10.0, max(1.0, 0.9 * err ** (-0.2))) if err > 0 else 10.0
        else:
            factor = min(0.9, max(0.2, 0.9 * err ** (-0.2)))
        h = h * factor
    out[0], out[1], out[2] = x, y, z
    steps[0] = taken


@numba.njit(parallel=True)
def ensemble(rhos, y0, t0, t1, rtol, atol, dt, max_steps):
    """End states `(N, 3)` and attempted step counts `(N,)` of one Lorenz solve
    per ρ in `rhos` (adaptive when `dt <= 0`)."""
    n = rhos.shape[0]
    out = np.empty((n, 3))
    steps = np.empty(n, np.int64)
    for i in numba.prange(n):
        _one(rhos[i], y0, t0, t1, rtol, atol, dt, max_steps, out[i], steps[i : i + 1])
    return out, steps


def solve(rhos, y0, t_span, *, rtol=1e-8, atol=1e-8, dt=0.0, max_steps=100_000):
    return ensemble(
        np.ascontiguousarray(rhos, float),
        np.asarray(y0, float),
        float(t_span[0]),
        float(t_span[1]),
        float(rtol),
        float(atol),
        float(dt),
        int(max_steps),
    )
