"""Green's functions of the unit disk with Neumann walls.

- `neumann_green` / `neumann_regular`: the Laplacian's Neumann Green's function
  ΔG₀ = 1/π − δ(x − ξ), ∫G₀ = 0 (closed form, docs/models.md §1; JAX).
- `reduced_wave_green` / `reduced_wave_regular`: ΔG − θ²G = −δ(x − ξ), ∂ᵣG = 0 on
  r = 1, for complex θ (the eigenvalue problem needs θ² = (1 + τλ)/D), by the Bessel
  series obtained from Graf's addition theorem (host-side NumPy / SciPy):

      G = (1/2π) [K₀(θ|x − ξ|) − Σₙ σₙ (Kₙ'(θ)/Iₙ'(θ)) Iₙ(θr) Iₙ(θρ) cos n(φ − φ₀)],

  σ₀ = 1, σₙ = 2, so that the sum cancels the wall flux of the free-space K₀. The
  regular part R = lim (G + log|x − ξ|/2π) uses K₀(z) = −log(z/2) − γ + O(z² log z).
  The series is truncated when a term falls below 1e-16 of the sum (adaptively; its
  terms decay like (rρ)ⁿ).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike

AREA = np.pi
_NMAX = 160  # Iₙ/Kₙ products stay in double range up to here


def neumann_green(x: ArrayLike, xi: ArrayLike) -> Array:
    """G₀(x; ξ) of the unit disk (x ≠ ξ), points as arrays (..., 2)."""
    x, xi = jnp.asarray(x), jnp.asarray(xi)
    r2 = jnp.sum(x**2, -1)
    p2 = jnp.sum(xi**2, -1)
    d = jnp.sqrt(jnp.sum((x - xi) ** 2, -1))
    return (
        -jnp.log(d) / (2 * jnp.pi)
        - jnp.log(r2 * p2 + 1.0 - 2.0 * jnp.sum(x * xi, -1)) / (4 * jnp.pi)
        + (r2 + p2) / (4 * jnp.pi)
        - 3.0 / (8 * jnp.pi)
    )


def neumann_regular(xi: ArrayLike) -> Array:
    """R₀(ξ) = lim_{x→ξ} [G₀(x; ξ) + log|x − ξ|/(2π)]."""
    p2 = jnp.sum(jnp.asarray(xi) ** 2, -1)
    return -jnp.log(1.0 - p2) / (2 * jnp.pi) + p2 / (2 * jnp.pi) - 3.0 / (8 * jnp.pi)


def neumann_green_matrix(centers: ArrayLike) -> Array:
    """𝒢₀: G₀(xᵢ; xⱼ) off the diagonal, R₀(xⱼ) on it."""
    c = jnp.asarray(centers)
    m = c.shape[0]
    eye = jnp.eye(m, dtype=bool)
    # Shift the diagonal's arguments apart to keep the masked entries finite.
    xj = jnp.where(eye[..., None], c[None, :, :] + 0.5, c[None, :, :])
    off = neumann_green(c[:, None, :], xj)
    return jnp.where(eye, neumann_regular(c)[:, None] * jnp.eye(m), off)


def _series(
    theta: complex, r: ArrayLike, rho: ArrayLike, dphi: ArrayLike
) -> np.ndarray:
    """Σₙ σₙ (Kₙ'(θ)/Iₙ'(θ)) Iₙ(θr) Iₙ(θρ) cos(n Δφ), summed to convergence (in
    vectorised blocks of orders), elementwise over the broadcast `r`, `rho`, `dphi`."""
    # (SciPy's special functions take 0.2 s to import: imported where first used.)
    from scipy import special

    r, rho, dphi = np.broadcast_arrays(
        np.asarray(r, float), np.asarray(rho, float), np.asarray(dphi, float)
    )
    total = np.zeros(r.shape, dtype=complex)
    points = theta * np.stack([r, rho])
    block = 16
    for start in range(0, _NMAX, block):
        # Kₙ'(θ)/Iₙ'(θ) from Kₙ₋₁ + Kₙ₊₁ over Iₙ₋₁ + Iₙ₊₁ (K₋₁ = K₁, I₋₁ = I₁): one
        # Bessel call each for the block's orders and their neighbours.
        n = np.arange(start, start + block)
        around = np.abs(np.arange(start - 1, start + block + 1))
        with np.errstate(over="ignore", invalid="ignore"):  # (checked below)
            k, i = special.kv(around, theta), special.iv(around, theta)
            coef = -(k[:-2] + k[2:]) / (i[:-2] + i[2:])
        n = n.reshape((block,) + (1,) * r.ndim)
        at_r, at_rho = special.iv(n[:, None], points).swapaxes(0, 1)
        with np.errstate(invalid="ignore"):  # (inf · 0 at the centre: checked)
            size = np.where(n == 0, 1.0, 2.0) * coef.reshape(n.shape) * at_r * at_rho
        if not np.all(np.isfinite(size)):
            break  # (Kₙ'/Iₙ' overflowed before the terms fell off)
        total = total + (size * np.cos(n * dphi)).sum(axis=0)
        # (Converged by the terms' size, not by their value: cos(nΔφ) can vanish
        # at the block's last order.)
        if np.all(np.abs(size[-1]) <= 1e-16 * np.maximum(np.abs(total), 1e-300)):
            return total
    raise ArithmeticError(
        "reduced-wave Green's function series did not converge: a point too close "
        "to the wall (|x| -> 1)"
    )


def _polar(p: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(p, dtype=float)
    return np.hypot(p[..., 0], p[..., 1]), np.arctan2(p[..., 1], p[..., 0])


def reduced_wave_green(x: ArrayLike, xi: ArrayLike, theta: complex) -> np.ndarray:
    """G(x; ξ) for Δ − θ², Neumann walls (x ≠ ξ); complex θ with Re θ > 0."""
    from scipy import special

    r, phi = _polar(x)
    rho, phi0 = _polar(xi)
    d = np.hypot(*np.moveaxis(np.asarray(x, float) - np.asarray(xi, float), -1, 0))
    return (special.kv(0, theta * d) - _series(theta, r, rho, phi - phi0)) / (2 * np.pi)


def reduced_wave_regular(xi: ArrayLike, theta: complex) -> complex:
    """R(ξ) = lim_{x→ξ} [G(x; ξ) + log|x − ξ|/(2π)] for Δ − θ²."""
    rho, _ = _polar(xi)
    return complex(_regular(theta, rho))


def _regular(theta: complex, rho: np.ndarray) -> np.ndarray:
    """R at points of radius `rho` (K₀'s expansion minus the series at x = ξ)."""
    series = _series(theta, rho, rho, 0.0)
    return (-(np.log(theta / 2) + np.euler_gamma) - series) / (2 * np.pi)


def reduced_wave_matrix(centers: ArrayLike, theta: complex) -> np.ndarray:
    """𝒢_θ: G(xᵢ; xⱼ) off the diagonal, R(xⱼ) on it (complex, symmetric)."""
    from scipy import special

    c = np.asarray(centers, dtype=float)
    m = c.shape[0]
    r, phi = _polar(c)
    # Every pair i < j in one series (one SciPy call per block of orders).
    i, j = np.triu_indices(m, 1)
    d = np.hypot(*(c[i] - c[j]).T)
    out = np.zeros((m, m), dtype=complex)
    out[i, j] = (
        special.kv(0, theta * d) - _series(theta, r[i], r[j], phi[i] - phi[j])
    ) / (2 * np.pi)
    out = out + out.T
    out[np.diag_indices(m)] = _regular(theta, r)
    return out
