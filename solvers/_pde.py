"""Grids, conservative Laplacians with Neumann walls, and fast shifted solves.

`DiskGrid`: the unit disk on a vertex-centred polar grid (a pole node plus `nr` rings
of `ntheta` nodes at r = h, 2h, …, 1), finite volumes (so ∫Δu = 0 exactly); the
shifted system (a − b Δ) x = f is solved by a real FFT in θ and one tridiagonal
system per Fourier mode in r (the pole couples to mode 0 only).

`SquareGrid`: the square [−L/2, L/2]² on a cell-centred grid with the 5-point
Laplacian; the Neumann problem is diagonalised by the type-II DCT.

Both solve in O(N log N), batched over right-hand sides, on any JAX device.
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jax.lax.linalg import tridiagonal_solve
from jax.scipy.fft import dctn, idctn
from jaxtyping import Array, ArrayLike


class AbstractGrid(eqx.Module):
    """A 2-D grid with a conservative Neumann Laplacian.

    Fields live in flat vectors of length `size`; `areas` are the control-volume
    areas (quadrature weights: ∫u ≈ Σ areas·u).
    """

    @property
    @abc.abstractmethod
    def size(self) -> int: ...

    @property
    @abc.abstractmethod
    def areas(self) -> np.ndarray: ...

    @property
    @abc.abstractmethod
    def points(self) -> np.ndarray:
        """Node coordinates, shape (size, 2)."""

    @property
    @abc.abstractmethod
    def spacing(self) -> float:
        """The radial (disk) or uniform (square) grid spacing h."""

    @abc.abstractmethod
    def laplacian(self, u: Array) -> Array:
        """Δu at the nodes (finite volumes: ∫Δu = 0 exactly)."""

    @abc.abstractmethod
    def solve_shifted(self, a: ArrayLike, b: ArrayLike, rhs: Array) -> Array:
        """x with a·x − b·Δx = rhs; `rhs` is (size,) or (size, k) for k columns."""

    @abc.abstractmethod
    def laplacian_matrix(self):
        """The Laplacian as a `scipy.sparse` CSR matrix (for SciPy solvers and
        eigenvalue routines); equal to `laplacian` applied to each unit vector."""

    def integrate(self, u: Array) -> Array:
        return jnp.tensordot(jnp.asarray(self.areas), u, axes=(0, 0))

    def node_at(self, x: float, y: float, tol: float = 1e-9) -> int:
        """The index of the node at (x, y). **Raises:** `ValueError` if none is."""
        d = np.hypot(self.points[:, 0] - x, self.points[:, 1] - y)
        i = int(np.argmin(d))
        if d[i] > tol:
            raise ValueError(
                f"({x}, {y}) is not a grid node (nearest node {d[i]:.3g} away); "
                f"choose the grid size so that every cell centre is a node"
            )
        return i


class DiskGrid(AbstractGrid):
    """The unit disk: pole + `nr` rings × `ntheta` angles (see the module docstring).

    Node (x, y) = (r cos θ, r sin θ) with r = i/nr (i = 1 … nr), θ = 2πk/ntheta; the
    pole is node 0. Cell centres at r = 1/2 need `nr` even; at θ = π, `ntheta` even.
    """

    nr: int = eqx.field(static=True)
    ntheta: int = eqx.field(static=True)

    def __check_init__(self):
        if self.nr < 2 or self.ntheta < 4:
            raise ValueError(
                f"DiskGrid needs nr >= 2 and ntheta >= 4, got {self.nr}, {self.ntheta}"
            )

    @property
    def size(self) -> int:
        return 1 + self.nr * self.ntheta

    @property
    def spacing(self) -> float:
        return 1.0 / self.nr

    @property
    def dtheta(self) -> float:
        return 2 * np.pi / self.ntheta

    @property
    def radii(self) -> np.ndarray:
        return np.arange(1, self.nr + 1) / self.nr

    def _faces(self) -> np.ndarray:
        # Radii of the control-volume faces: r_{i−½}, r_{i+½} per ring; wall at 1.
        h = self.spacing
        inner = self.radii - h / 2
        outer = np.minimum(self.radii + h / 2, 1.0)
        return np.stack([inner, outer])

    @property
    def areas(self) -> np.ndarray:
        inner, outer = self._faces()
        ring = (outer**2 - inner**2) / 2 * self.dtheta
        pole = np.pi * (self.spacing / 2) ** 2
        return np.concatenate([[pole], np.repeat(ring, self.ntheta)])

    @property
    def points(self) -> np.ndarray:
        th = self.dtheta * np.arange(self.ntheta)
        r = self.radii[:, None]
        xy = np.stack([r * np.cos(th), r * np.sin(th)], -1).reshape(-1, 2)
        return np.concatenate([np.zeros((1, 2)), xy])

    def _conductances(self):
        """Pole–ring conductance (per node), radial (between ring i and i+1) and
        angular (along ring i) conductances of the finite-volume fluxes."""
        h, dth = self.spacing, self.dtheta
        inner, outer = self._faces()
        pole = (h / 2) * dth / h
        radial = outer[:-1] * dth / h
        angular = (outer - inner) / (self.radii * dth)
        return pole, radial, angular

    def laplacian_matrix(self):
        import scipy.sparse as sp

        pole_c, radial, angular = self._conductances()
        nr, nt = self.nr, self.ntheta
        idx = 1 + np.arange(nr * nt).reshape(nr, nt)
        rows, cols, vals = [], [], []

        def link(a, b, c):
            c = np.broadcast_to(c, np.shape(a)).ravel()
            a, b = np.ravel(a), np.ravel(b)
            rows.extend([a, b, a, b])
            cols.extend([b, a, a, b])
            vals.extend([c, c, -c, -c])

        link(idx, np.roll(idx, -1, axis=1), angular[:, None])
        link(idx[:-1], idx[1:], radial[:, None])
        link(np.zeros(nt, int), idx[0], pole_c)
        flux = sp.coo_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
            shape=(self.size, self.size),
        ).tocsr()
        return sp.diags(1.0 / self.areas) @ flux

    def laplacian(self, u):
        pole_c, radial, angular = self._conductances()
        p, rings = u[0], u[1:].reshape(self.nr, self.ntheta)
        flux = angular[:, None] * (
            jnp.roll(rings, 1, axis=1) + jnp.roll(rings, -1, axis=1) - 2 * rings
        )
        dr = rings[1:] - rings[:-1]
        flux = flux.at[:-1].add(radial[:, None] * dr).at[1:].add(-radial[:, None] * dr)
        flux = flux.at[0].add(pole_c * (p - rings[0]))
        pole_flux = pole_c * jnp.sum(rings[0] - p)
        areas = jnp.asarray(self.areas)
        return jnp.concatenate([pole_flux[None], flux.ravel()]) / areas

    def solve_shifted(self, a, b, rhs):
        single = rhs.ndim == 1
        f = rhs[:, None] if single else rhs
        k = f.shape[1]
        nr, nt = self.nr, self.ntheta
        areas = self.areas
        pole_c, radial, angular = self._conductances()
        real = not any(jnp.iscomplexobj(z) for z in (a, b, f))
        ctype = jnp.result_type(a, b, f, 1j)
        a, b = jnp.asarray(a, ctype), jnp.asarray(b, ctype)
        # Multiply through by the areas: a·A x − b·(fluxes) = A·f, then Fourier in θ.
        g = jnp.asarray(areas)[:, None] * f
        gr = _ring_fft(g[1:].reshape(nr, nt, k))  # (nr, nt modes, k)
        sigma = 2 - 2 * np.cos(2 * np.pi * np.arange(nt) / nt)
        left = np.concatenate([[pole_c], radial])  # to ring i−1 (or the pole)
        right = np.concatenate([radial, [0.0]])
        ring_area = areas[1::nt]
        diag_r = a * ring_area[None, :] + b * (
            left[None, :] + right[None, :] + angular[None, :] * sigma[:, None]
        )  # (modes, nr)
        # Unknowns per mode: [pole, ring 0 … ring nr−1]. The pole sees only the ring
        # average (mode 0); for the other modes its row is the identity.
        is0 = np.arange(nt) == 0
        pole_d = jnp.where(is0, a * areas[0] + b * pole_c * nt, 1.0)
        pole_u = jnp.where(is0, -b * pole_c, 0.0)
        lower_r = jnp.broadcast_to(-b * left, (nt, nr))
        lower_r = lower_r.at[:, 0].set(jnp.where(is0, -b * pole_c * nt, 0.0))
        upper_r = jnp.broadcast_to(-b * right, (nt, nr))
        d = jnp.concatenate([pole_d[:, None], diag_r], axis=1).astype(ctype)
        du = jnp.concatenate([pole_u[:, None], upper_r], axis=1).astype(ctype)
        dl = jnp.concatenate([jnp.zeros((nt, 1), ctype), lower_r], axis=1)
        rhs_p = jnp.where(is0[:, None], g[0][None, :], 0.0)  # (modes, k)
        rhs_m = jnp.concatenate([rhs_p[:, None, :], jnp.swapaxes(gr, 0, 1)], axis=1)
        sol = tridiagonal_solve(dl, d, du, rhs_m.astype(ctype))  # (modes, nr+1, k)
        x_p = sol[0, 0]
        x_r = _ring_fft(jnp.swapaxes(sol[:, 1:], 0, 1), inverse=True)
        x_r = x_r.reshape(nr * nt, k)
        out = jnp.concatenate([x_p[None, :], x_r], axis=0)
        if real:
            out = out.real
        return out[:, 0] if single else out


# XLA:CPU executes an FFT on its intra-op thread pool and lets ducc fan a large one
# out into that same pool, which deadlocks inside a solver's while loop (the process
# sleeps forever; openxla/xla FftThunk re-entry, seen here from a 64 × 304 polar grid
# on 2 cores). Transforms are therefore split into pieces of a few rings, each small
# enough for one thread.
FFT_ROWS = 8


def _ring_fft(x: Array, inverse: bool = False) -> Array:
    """FFT along axis 1 of (rings, angles, k), FFT_ROWS rings per transform."""
    fn = jnp.fft.ifft if inverse else jnp.fft.fft
    if x.shape[0] <= FFT_ROWS:
        return fn(x, axis=1)
    parts = [fn(x[i : i + FFT_ROWS], axis=1) for i in range(0, x.shape[0], FFT_ROWS)]
    return jnp.concatenate(parts, axis=0)


class SquareGrid(AbstractGrid):
    """The square [−L/2, L/2]², `n` × `n` cell-centred nodes, 5-point Laplacian with
    Neumann walls (ghost-node reflection), solved by the DCT-II."""

    n: int = eqx.field(static=True)
    length: float = eqx.field(static=True, default=2.0)

    def __check_init__(self):
        if self.n < 2 or not self.length > 0:
            raise ValueError(f"SquareGrid needs n >= 2 and length > 0, got {self.n}")

    @property
    def size(self) -> int:
        return self.n * self.n

    @property
    def spacing(self) -> float:
        return self.length / self.n

    @property
    def areas(self) -> np.ndarray:
        return np.full(self.size, self.spacing**2)

    @property
    def points(self) -> np.ndarray:
        c = (np.arange(self.n) + 0.5) * self.spacing - self.length / 2
        x, y = np.meshgrid(c, c, indexing="ij")
        return np.stack([x.ravel(), y.ravel()], -1)

    def laplacian_matrix(self):
        import scipy.sparse as sp

        n = self.n
        second = sp.diags([np.ones(n - 1), -2 * np.ones(n), np.ones(n - 1)], [-1, 0, 1])
        second = second.tolil()
        second[0, 0] = second[-1, -1] = -1.0  # Neumann walls (mirrored ghosts)
        second = second.tocsr() / self.spacing**2
        eye = sp.identity(n)
        return (sp.kron(second, eye) + sp.kron(eye, second)).tocsr()

    def laplacian(self, u):
        n, h = self.n, self.spacing
        g = u.reshape(n, n)
        pad = jnp.pad(g, 1, mode="edge")  # ghost nodes mirror the wall nodes
        lap = (
            pad[2:, 1:-1] + pad[:-2, 1:-1] + pad[1:-1, 2:] + pad[1:-1, :-2] - 4 * g
        ) / h**2
        return lap.ravel()

    def solve_shifted(self, a, b, rhs):
        n, h = self.n, self.spacing
        single = rhs.ndim == 1
        f = (rhs[:, None] if single else rhs).reshape(n, n, -1)
        lam = (2 - 2 * np.cos(np.pi * np.arange(n) / n)) / h**2  # −Δ eigenvalues
        denom = a + b * (lam[:, None] + lam[None, :])
        fh = dctn(f, type=2, axes=(0, 1), norm="ortho")
        x = idctn(fh / denom[..., None], type=2, axes=(0, 1), norm="ortho")
        x = x.reshape(n * n, -1)
        return x[:, 0] if single else x
