"""The full 2-D PDE–ODE cell–bulk model on a grid (docs/models.md §1)."""

from __future__ import annotations

import functools
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from dynsim.solvers import AbstractGrid, DiskGrid, SquareGrid

from .._base import AbstractSemilinearModel, param
from ._disk import reduced_wave_regular
from ._large_d import _as_centers
from ._single import kinetics, kinetics_jacobian

_THETA_REF = 1.0  # reference screening for the equivalent-radius calibration


def _square_regular(xi: np.ndarray, theta: float, half: float) -> float:
    """R(ξ) of Δ − θ² in the Neumann square [−a, a]² (a = `half`), by images:
    G = (1/2π) Σ K₀(θ|x − ξ'|) over the reflections ξ' of ξ."""
    from scipy import special

    p = np.arange(-12, 13)

    def images(c):
        return np.concatenate([c + 4 * half * p, 2 * half - c + 4 * half * p])

    ix, iy = np.meshgrid(images(xi[0]), images(xi[1]), indexing="ij")
    d = np.hypot(ix - xi[0], iy - xi[1]).ravel()
    d = d[d > 1e-12]
    return float(
        (-(np.log(theta / 2) + np.euler_gamma) + special.kv(0, theta * d).sum())
        / (2 * np.pi)
    )


@functools.cache
def _geometry(domain, n, ntheta, length, centers, kernel, sigma):
    """Grid, cell weights (m, size) and calibrated equivalent radii (m,).

    The weights spread a cell's source over the grid (as a density W/areas) and
    sample the grid at the cell (W·U). The equivalent radius r_eff is where the
    continuum point-source field equals the discrete self-value (Peaceman 1978): it is
    computed, not tabulated, by solving the discrete problem (θ² − Δ_h) g = W/areas
    and matching W·g = −log(r_eff)/(2π) + R_θ(xⱼ) with the exact regular part R_θ of
    the domain's Green's function (Bessel series for the disk, images for the square).
    """
    grid: AbstractGrid
    if domain == "disk":
        grid = DiskGrid(n, ntheta)
    else:
        grid = SquareGrid(n, length)
    pts, areas = grid.points, grid.areas
    weights = np.zeros((len(centers), grid.size))
    for j, (x, y) in enumerate(centers):
        if kernel == "nodal":
            weights[j, grid.node_at(x, y)] = 1.0
        else:
            r2 = (pts[:, 0] - x) ** 2 + (pts[:, 1] - y) ** 2
            # Cut at 6σ (relative weight e^{-18} ≈ 2e-8) so the kernel stays local.
            w = np.where(r2 < (6 * sigma) ** 2, areas * np.exp(-r2 / (2 * sigma**2)), 0)
            weights[j] = w / w.sum()
    theta = _THETA_REF
    g = np.asarray(grid.solve_shifted(theta**2, 1.0, jnp.asarray((weights / areas).T)))
    self_values = np.einsum("jn,nj->j", weights, g)
    if domain == "disk":
        regular = np.array([reduced_wave_regular(c, theta).real for c in centers])
    else:
        regular = np.array(
            [_square_regular(np.asarray(c), theta, length / 2) for c in centers]
        )
    r_eff = np.exp(2 * np.pi * (regular - self_values))
    return grid, weights, r_eff


class SelkovCellBulk(AbstractSemilinearModel):
    """m small Sel'kov cells coupled through a 2-D bulk diffusion field, on a grid.

    τ U_t = D ΔU − U + Σⱼ Qⱼ δ(x − xⱼ) in Ω (Neumann walls),
    dvⱼ/dt = F₁(uⱼ) − Qⱼ/τ,  dwⱼ/dt = F₂(uⱼ),
    Qⱼ = 2π (d₂ⱼ vⱼ − d₁ⱼ Uⱼ)/facⱼ,  facⱼ = 1 + (d₁ⱼ/D) log(r_eff,ⱼ/ε).

    Cells of radius ε ≪ h are point sources (`kernel="nodal"`: at grid nodes;
    `"gaussian"`: spread and sampled with a Gaussian of width `sigma`). The grid value
    Uⱼ is the continuum field at the equivalent radius r_eff (computed for this grid
    and kernel; see `_geometry`); the wall value is recovered by the log-correction
    in fac (`correction=True`). Without it (Uⱼ taken as the wall value) the model
    does not converge as h → 0. fac must be positive (else the discrete system has a
    spurious positive eigenvalue): checked, with a message saying how to fix it.

    Domains: `"disk"` (unit disk, polar grid with `n` rings and `ntheta` angles) or
    `"square"` ([−L/2, L/2]², `n`×`n`). The stiff part (diffusion, decay and the
    cell–bulk exchange) is linear and solved exactly per implicit stage (FFT/DCT plus
    an m×m correction); the kinetics are explicit: use `solver="kencarp4"`.

    State: `[U (grid nodes), v₀ … v_{m−1}, w₀ … w_{m−1}]`.
    """

    centers: tuple[tuple[float, float], ...] = eqx.field(
        static=True, converter=_as_centers
    )
    D: Float[Array, ""] = param(1.0)
    tau: Float[Array, ""] = param(1.0)
    eps: Float[Array, ""] = param(0.05)
    d1: Float[Array, "*cells"] = param(0.8)
    d2: Float[Array, "*cells"] = param(0.2)
    alpha: Float[Array, "*cells"] = param(0.9)
    mu: Float[Array, "*cells"] = param(2.0)
    zeta: Float[Array, "*cells"] = param(0.15)
    domain: Literal["disk", "square"] = eqx.field(static=True, default="disk")
    n: int = eqx.field(static=True, default=48)
    ntheta: int | None = eqx.field(static=True, default=None)
    length: float = eqx.field(static=True, default=2.0)
    kernel: Literal["nodal", "gaussian"] = eqx.field(static=True, default="gaussian")
    sigma: float = eqx.field(static=True, default=1.0 / 30.0)
    correction: bool = eqx.field(static=True, default=True)

    def __check_init__(self):
        if self.domain not in ("disk", "square"):
            raise ValueError(f"domain must be 'disk' or 'square', got {self.domain!r}")
        if self.kernel not in ("nodal", "gaussian"):
            raise ValueError(
                f"kernel must be 'nodal' or 'gaussian', got {self.kernel!r}"
            )
        if self.kernel == "gaussian" and self.sigma < 1.5 * self.grid.spacing:
            raise ValueError(
                f"the Gaussian kernel (sigma={self.sigma:g}) is not resolved by the "
                f"grid (h={self.grid.spacing:g}): refine to h <= sigma/1.5"
            )
        if self.domain == "square":
            for x, y in self.centers:
                if max(abs(x), abs(y)) >= self.length / 2:
                    raise ValueError(f"cell centre ({x}, {y}) is outside the square")
        _ = self._geo  # builds the grid and cell weights, or raises
        try:
            fac = np.asarray(self.fac)
        except (
            jax.errors.ConcretizationTypeError,
            jax.errors.TracerArrayConversionError,
        ):
            return  # traced parameters: checked at run time instead
        if np.any(fac <= 0):
            raise ValueError(self._fac_message(fac))

    def _fac_message(self, fac) -> str:
        return (
            f"equivalent-radius factor fac = 1 + (d1/D) log(r_eff/eps) = {fac} is not "
            "positive: the grid's equivalent radius r_eff is too small for this D/d1 "
            "(the discrete system would have a spurious positive eigenvalue). Use a "
            "coarser grid, kernel='gaussian' with sigma ~ eps, or a larger D"
        )

    @property
    def _geo(self):
        ntheta = self.ntheta
        if self.domain == "disk" and ntheta is None:
            ntheta = 4 * int(np.ceil(np.pi * self.n / 4))  # near-square cells at r=1/2
        return _geometry(
            self.domain,
            self.n,
            ntheta,
            float(self.length),
            self.centers,
            self.kernel,
            float(self.sigma),
        )

    @property
    def grid(self) -> AbstractGrid:
        return self._geo[0]

    @property
    def r_eff(self) -> np.ndarray:
        """Equivalent radius of each cell on this grid with this kernel."""
        return self._geo[2]

    @property
    def n_cells(self) -> int:
        return len(self.centers)

    @property
    def state_names(self) -> tuple[str, ...]:
        m = self.n_cells
        return (
            tuple(f"U{i}" for i in range(self.grid.size))
            + tuple(f"v{j}" for j in range(m))
            + tuple(f"w{j}" for j in range(m))
        )

    def _cells(self, name: str) -> Array:
        return jnp.broadcast_to(getattr(self, name), (self.n_cells,))

    @property
    def fac(self) -> Array:
        if not self.correction:
            return jnp.ones(self.n_cells)
        d1 = self._cells("d1")
        return 1.0 + d1 / self.D * jnp.log(jnp.asarray(self.r_eff) / self.eps)

    def _coefficients(self):
        fac = eqx.error_if(self.fac, self.fac <= 0, self._fac_message("<= 0"))
        return 2 * jnp.pi * self._cells("d1") / fac, 2 * jnp.pi * self._cells(
            "d2"
        ) / fac

    def _split(self, y):
        size, m = self.grid.size, self.n_cells
        return y[:size], y[size : size + m], y[size + m :]

    def exchange(self, y) -> Array:
        """Qⱼ: the source strength of each cell seen from the bulk."""
        u, v, _ = self._split(y)
        c_u, c_v = self._coefficients()
        return c_v * v - c_u * (jnp.asarray(self._geo[1]) @ u)

    def nonstiff_part(self, t, y, args):
        u, v, w = self._split(y)
        f1, f2 = kinetics(v, w, self.alpha, self.mu, self.zeta)
        return jnp.concatenate([jnp.zeros_like(u), f1, f2])

    def linear_part(self, y):
        u, v, w = self._split(y)
        grid, weights = self.grid, jnp.asarray(self._geo[1])
        q = self.exchange(y)
        source = (weights.T @ q) / jnp.asarray(grid.areas)
        du = (self.D * grid.laplacian(u) - u + source) / self.tau
        return jnp.concatenate([du, -q / self.tau, jnp.zeros_like(w)])

    def linear_matrix(self):
        """A (the stiff linear part) as a `scipy.sparse` CSR matrix, for SciPy's
        implicit solvers and sparse eigenvalue routines (equals `linear_part`)."""
        import scipy.sparse as sp

        grid, weights = self.grid, np.asarray(self._geo[1])
        c_u, c_v = (np.asarray(c) for c in self._coefficients())
        tau, D = float(self.tau), float(self.D)
        size, m = grid.size, self.n_cells
        w = sp.csr_matrix(weights)
        spread = sp.diags(1.0 / grid.areas) @ w.T  # (size, m)
        bulk = (
            D * grid.laplacian_matrix() - sp.identity(size) - spread @ sp.diags(c_u) @ w
        ) / tau
        return sp.bmat(
            [
                [bulk, spread @ sp.diags(c_v / tau), None],
                [sp.diags(c_u / tau) @ w, sp.diags(-c_v / tau), None],
                [None, None, sp.csr_matrix((m, m))],
            ],
            format="csr",
        )

    def sparse_jacobian(self, y, args=None):
        """∂f/∂y at y as a `scipy.sparse` CSC matrix: A plus the cells' kinetics
        (used by continuation and Arnoldi eigenvalues instead of a dense Jacobian)."""
        import scipy.sparse as sp

        size, m = self.grid.size, self.n_cells
        _, v, w = (np.asarray(part) for part in self._split(jnp.asarray(y)))
        jk = np.asarray(
            kinetics_jacobian(
                v, w, self._cells("alpha"), self._cells("mu"), self._cells("zeta")
            )
        )
        iv, iw = np.arange(size, size + m), np.arange(size + m, size + 2 * m)
        rows = np.concatenate([iv, iv, iw, iw])
        cols = np.concatenate([iv, iw, iv, iw])
        vals = np.concatenate([jk[:, 0, 0], jk[:, 0, 1], jk[:, 1, 0], jk[:, 1, 1]])
        n = size + 2 * m
        kin = sp.csr_matrix((vals, (rows, cols)), shape=(n, n))
        return sp.csc_matrix(self.linear_matrix() + kin)

    def factor_shifted(self, c):
        grid, weights = self.grid, jnp.asarray(self._geo[1])
        c_u, c_v = self._coefficients()
        a, b = 1.0 + c / self.tau, c * self.D / self.tau
        spread = (weights / jnp.asarray(grid.areas)).T  # (size, m)
        z = grid.solve_shifted(a, b, spread)  # H⁻¹ spread
        g = c / self.tau * (weights @ z)
        m = jnp.eye(self.n_cells) + jnp.diag(c / self.tau * c_v) + c_u[:, None] * g
        return (a, b, c, z, jnp.linalg.inv(m), c_u, c_v)

    def solve_shifted(self, factor, rhs):
        a, b, c, z, m_inv, c_u, c_v = factor
        weights = jnp.asarray(self._geo[1])
        r_u, r_v, r_w = self._split(rhs)
        u0 = self.grid.solve_shifted(a, b, r_u)
        q = m_inv @ (c_v * r_v - c_u * (weights @ u0))
        x_u = u0 + c / self.tau * (z @ q)
        x_v = r_v - c / self.tau * q
        return jnp.concatenate([x_u, x_v, r_w])

    def steady_state(self) -> Float[Array, " state"]:
        """The discrete equilibrium (exact: with F₂ = 0, F₁ = μ − v and the rest is
        linear, one shifted solve per cell)."""
        grid, weights = self.grid, jnp.asarray(self._geo[1])
        c_u, c_v = self._coefficients()
        mu, alpha = self._cells("mu"), self._cells("alpha")
        z0 = grid.solve_shifted(1.0, self.D, (weights / jnp.asarray(grid.areas)).T)
        m = (
            jnp.eye(self.n_cells)
            + jnp.diag(c_v / self.tau)
            + c_u[:, None] * (weights @ z0)
        )
        q = jnp.linalg.solve(m, c_v * mu)
        v = mu - q / self.tau
        return jnp.concatenate([z0 @ q, v, mu / (alpha + v**2)])

    def initial_state(self):
        y = self.steady_state()
        size, m = self.grid.size, self.n_cells
        bump = 1.0 + 0.05 * (1.0 + jnp.arange(m)) / m
        return y.at[size : size + m].multiply(bump)

    def total_mass(self, y) -> Array:
        """∫U + Σⱼ vⱼ: d/dt of it is −∫U/τ + Σⱼ F₁(uⱼ) exactly (the exchange
        conserves)."""
        u, v, _ = self._split(y)
        return self.grid.integrate(u) + jnp.sum(v)
