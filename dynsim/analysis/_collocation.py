"""Periodic orbits by orthogonal collocation, and their Floquet multipliers.

**The discretisation** (as in AUTO and MatCont). Time is rescaled to τ = t/T ∈ [0, 1]
and cut by a mesh 0 = τ₀ < … < τ_N = 1; on each interval the orbit is the
polynomial of degree m through its values at m + 1 equally spaced points (neighbours
share their end point, and the orbit's end u(1) is a value like the others). The
equations: u' = T f(u, p) at the m Gauss–Legendre points of every interval
(N·m·n equations), periodicity u(1) = u(0) (n), and the integral phase condition
∫₀¹ ⟨u(τ), u_ref'(τ)⟩ dτ = 0 against the previous orbit of the branch (1). Unknowns:
the N·m + 1 node values, the period T and the parameter p. Errors at the mesh points
fall like h^{2m} (superconvergence), like h^{m+1} in between.

The Jacobian is assembled sparse from one dense block per interval (JAX forward
mode), so a Newton step costs one sparse LU of a banded-plus-border matrix.

**Mesh adaptation** by equidistribution (de Boor; AUTO's `ADAPT`): the m-th
derivative of the orbit is constant on each interval; its jumps between intervals
estimate the (m+1)-th, and the new mesh puts equal shares of
∫ |u^{(m+1)}|^{1/(m+1)} dτ in every interval.

**Floquet multipliers** by the method of Fairgrieve and Jepson (SIAM J. Numer.
Anal. 28, 1446–1462, 1991: "O.K. Floquet multipliers"), on the condensed collocation
system. The linearised collocation equations of interval j, with its interior node
values eliminated by a QR factorisation, relate its end values: A_j v_j + B_j v_{j+1}
= 0. Orthogonal (QR) eliminations of v₁, …, v_{N−1} in turn reduce the chain to one
relation P₀ v₀ + P₁ v_N = 0 without inverting any block, and the multipliers are the
eigenvalues μ of the pencil P₀ + μ P₁ (v_N = μ v₀; QZ). Forming the monodromy matrix
as the product of the B_j⁻¹ A_j instead loses the small multipliers of strongly
unstable orbits (near a homoclinic orbit) to rounding.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from dynsim.models import replace_parameters

#: Collocation degree (Gauss points per mesh interval).
DEGREE = 4
#: Mesh intervals.
INTERVALS = 40


@dataclasses.dataclass(frozen=True)
class Basis:
    """The Lagrange basis of degree m on [0, 1] at equally spaced nodes: its values
    (`L`) and derivatives (`D`) at the Gauss points, the Gauss weights `w`."""

    m: int
    nodes: np.ndarray
    gauss: np.ndarray
    w: np.ndarray
    L: np.ndarray
    D: np.ndarray

    @classmethod
    def of(cls, m: int) -> Basis:
        z, w = np.polynomial.legendre.leggauss(m)
        z, w = (z + 1) / 2, w / 2
        nodes = np.linspace(0.0, 1.0, m + 1)
        return cls(m, nodes, z, w, lagrange(nodes, z), lagrange(nodes, z, 1))


def lagrange(nodes: np.ndarray, x: np.ndarray, derivative: int = 0) -> np.ndarray:
    """ℓ_i(x_k) (or their first derivative): the Lagrange basis of `nodes` at `x`,
    shape (len(x), len(nodes))."""
    x = np.asarray(x, float)
    out = np.empty((x.size, nodes.size))
    for i in range(nodes.size):
        others = np.delete(nodes, i)
        denom = np.prod(nodes[i] - others)
        if derivative == 0:
            out[:, i] = np.prod(x[:, None] - others[None, :], axis=1) / denom
        else:
            total = np.zeros(x.size)
            for k in range(others.size):
                rest = np.delete(others, k)
                total += np.prod(x[:, None] - rest[None, :], axis=1)
            out[:, i] = total / denom
    return out


@dataclasses.dataclass(frozen=True)
class Mesh:
    """A mesh `tau` (N + 1 points from 0 to 1) and the basis on its intervals."""

    tau: np.ndarray
    basis: Basis

    @property
    def N(self) -> int:
        return self.tau.size - 1

    @property
    def h(self) -> np.ndarray:
        return np.diff(self.tau)

    @property
    def times(self) -> np.ndarray:
        """τ of every node (N·m + 1)."""
        m = self.basis.m
        inner = self.tau[:-1, None] + self.h[:, None] * self.basis.nodes[None, :m]
        return np.append(inner.ravel(), 1.0)

    def intervals(self, U: np.ndarray) -> np.ndarray:
        """Node values (N·m + 1, n) as (N, m + 1, n) per interval."""
        m = self.basis.m
        idx = np.arange(self.N)[:, None] * m + np.arange(m + 1)[None, :]
        return U[idx]

    def evaluate(self, U: np.ndarray, tau: np.ndarray) -> np.ndarray:
        """The piecewise polynomial through node values `U` at times `tau` ∈ [0, 1]."""
        tau = np.clip(np.asarray(tau, float), 0.0, 1.0)
        j = np.clip(np.searchsorted(self.tau, tau, side="right") - 1, 0, self.N - 1)
        local = (tau - self.tau[j]) / self.h[j]
        ell = lagrange(self.basis.nodes, local)
        return np.einsum("ki,kin->kn", ell, self.intervals(U)[j])

    def quadrature(self) -> np.ndarray:
        """Weights of the node values in ∫₀¹ u dτ (the Gauss rule of each interval,
        through the basis), (N·m + 1,)."""
        b = self.basis
        per = self.h[:, None] * (b.w @ b.L)[None, :]  # (N, m + 1)
        out = np.zeros(self.N * b.m + 1)
        idx = np.arange(self.N)[:, None] * b.m + np.arange(b.m + 1)[None, :]
        np.add.at(out, idx, per)
        return out

    def adapted(self, U: np.ndarray, N: int | None = None) -> Mesh:
        """A mesh of `N` intervals (default: as many) equidistributing
        |u^{(m+1)}|^{1/(m+1)} of the orbit with node values `U` (module doc)."""
        m, N = self.basis.m, self.N if N is None else N
        sign = (-1.0) ** (m - np.arange(m + 1))
        binom = np.array([float(math.comb(m, i)) for i in range(m + 1)])
        diffs = np.einsum("i,jin->jn", sign * binom, self.intervals(U))
        dm = diffs / (self.h[:, None] / m) ** m  # u^(m) per interval
        h = self.h
        jump = (dm - np.roll(dm, 1, axis=0)) / (0.5 * (h + np.roll(h, 1)))[:, None]
        left = np.linalg.norm(jump, axis=1)
        d_next = np.roll(left, -1)
        density = (0.5 * (left + d_next)) ** (1.0 / (m + 1))
        density = density + 0.05 * max(np.mean(density), 1e-300)  # a floor
        cumulative = np.concatenate([[0.0], np.cumsum(density * h)])
        targets = np.linspace(0.0, cumulative[-1], N + 1)
        tau = np.interp(targets, cumulative, self.tau)
        tau[0], tau[-1] = 0.0, 1.0
        return Mesh(tau, self.basis)


def uniform_mesh(N: int = INTERVALS, m: int = DEGREE) -> Mesh:
    return Mesh(np.linspace(0.0, 1.0, N + 1), Basis.of(m))


def _interval_residual(model, param, Uj, T, p, h, L, D):
    at = replace_parameters(model, {param: p})
    u = L @ Uj  # (m, n) at the Gauss points
    f = jax.vmap(lambda y: at.vector_field(0.0, y, None))(u)
    return (D @ Uj) / h - T * f


@eqx.filter_jit
def _residuals(model, param, Uj, T, p, h, L, D):
    return jax.vmap(lambda U, hh: _interval_residual(model, param, U, T, p, hh, L, D))(
        Uj, h
    )


@eqx.filter_jit
def _blocks(model, param, Uj, T, p, h, L, D):
    """Per interval: ∂(collocation residual)/∂(its node values, T, p)."""

    def one(U, hh):
        return jax.jacfwd(
            lambda U_, T_, p_: _interval_residual(model, param, U_, T_, p_, hh, L, D),
            argnums=(0, 1, 2),
        )(U, T, p)

    return jax.vmap(one)(Uj, h)


@eqx.filter_jit
def _gauss_terms(model, param, Uj, p, L):
    """At every Gauss point: the state u, f(u, p) and ∂f/∂p (for models whose
    Jacobian in the state comes as a sparse matrix)."""

    def f(pp):
        at = replace_parameters(model, {param: pp})
        u = jnp.einsum("ki,jin->jkn", L, Uj)
        return jax.vmap(jax.vmap(lambda y: at.vector_field(0.0, y, None)))(u)

    values, dp = jax.jvp(f, (p,), (jnp.ones_like(p),))
    return jnp.einsum("ki,jin->jkn", L, Uj), values, dp


def _block_indices(N: int, m: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows (interval j, Gauss point r, component a) and columns (node j·m + i,
    component b) of the collocation blocks' entries (N, m, n, m + 1, n) in the
    matrix of derivatives in the node values."""
    rows = (
        np.arange(N)[:, None, None] * (m * n)
        + np.arange(m)[None, :, None] * n
        + np.arange(n)[None, None, :]
    )
    cols = (np.arange(N)[:, None] * m + np.arange(m + 1)[None, :])[
        :, :, None
    ] * n + np.arange(n)[None, None, :]
    shape = (N, m, n, m + 1, n)
    R = np.broadcast_to(rows[:, :, :, None, None], shape)
    C = np.broadcast_to(cols[:, None, None, :, :], shape)
    return R, C


def _ends(n: int, k: int, first: float, last: float) -> sp.csr_matrix:
    """The (n, k·n) matrix of `first`·u(0) + `last`·u(1) (node values u, k nodes)."""
    a = np.arange(n)
    return sp.csr_matrix(
        (
            np.concatenate([np.full(n, first), np.full(n, last)]),
            (np.concatenate([a, a]), np.concatenate([a, (k - 1) * n + a])),
        ),
        shape=(n, k * n),
    )


class Collocation:
    """The collocation problem for `arclength.follow`: X = (scaled node values, T, p).

    The node values enter X multiplied by the square roots of their quadrature
    weights, so that the Euclidean norm of a change of X is the L² norm of the change
    of the orbit (not growing with the mesh size); the period enters multiplied by
    `period_weight`.
    """

    def __init__(self, model, param, mesh: Mesh, n: int, period_weight: float = 1.0):
        self.model, self.param, self.n = model, param, n
        state = np.asarray(model.initial_state(), float).reshape(-1)
        self.sparse = model.sparse_jacobian(state) is not None
        self.period_weight = float(period_weight)
        self.set_mesh(mesh)
        self.u_ref: np.ndarray | None = None  # node values of the phase reference
        self._cache: tuple[bytes, Any] | None = None

    def set_mesh(self, mesh: Mesh) -> None:
        self.mesh = mesh
        self.sqrt_w = np.sqrt(mesh.quadrature())
        self._cache = None

    # X <-> (U, T, p)
    def split(self, X: np.ndarray) -> tuple[np.ndarray, float, float]:
        n, k = self.n, self.sqrt_w.size
        U = X[: k * n].reshape(k, n) / self.sqrt_w[:, None]
        return U, float(X[k * n] / self.period_weight), float(X[k * n + 1])

    def join(self, U: np.ndarray, T: float, p: float) -> np.ndarray:
        return np.concatenate(
            [(U * self.sqrt_w[:, None]).ravel(), [T * self.period_weight, p]]
        )

    def _args(self, U, T, p):
        b = self.mesh.basis
        # NumPy arrays go to the jitted functions as they are (no device_put each).
        return (self.model, self.param, self.mesh.intervals(U), np.float64(T),
                np.float64(p), self.mesh.h, b.L, b.D)  # fmt: skip

    def _ref_derivative_weights(self) -> np.ndarray:
        """∂(phase condition)/∂U: Σ_k h_j w_k ℓ_i(z_k) u_ref'(z_jk) per node."""
        mesh, b = self.mesh, self.mesh.basis
        ref = mesh.intervals(self.u_ref)  # (N, m + 1, n)
        dref = np.einsum("ki,jin->jkn", b.D, ref) / mesh.h[:, None, None]
        per = np.einsum("k,ki,jkn->jin", b.w, b.L, dref) * mesh.h[:, None, None]
        out = np.zeros((mesh.N * b.m + 1, self.n))
        idx = np.arange(mesh.N)[:, None] * b.m + np.arange(b.m + 1)[None, :]
        np.add.at(out, idx, per)
        return out

    def residual(self, X):
        U, T, p = self.split(X)
        coll = np.asarray(_residuals(*self._args(U, T, p))).ravel()
        periodic = U[-1] - U[0]
        phase = np.sum(self._ref_derivative_weights() * U)
        return np.concatenate([coll, periodic, [phase]])

    def derivatives(self, X):
        """∂(collocation equations)/∂(node values) as a sparse (N·m·n, (N·m + 1)·n)
        matrix, and the equations' derivatives in T and p, (N·m·n,) each; in the
        node values themselves (not X's scaled ones). From JAX's dense blocks per
        interval, or, for a model with a `sparse_jacobian` (a discretised PDE), from
        its sparse Jacobian at every Gauss point."""
        key = X.tobytes() + self.mesh.tau.tobytes()
        if self._cache is None or self._cache[0] != key:
            U, T, p = self.split(X)
            if self.sparse:
                value = self._sparse_derivatives(U, T, p)
            else:
                value = self._dense_derivatives(U, T, p)
            self._cache = (key, value)
        return self._cache[1]

    def _dense_derivatives(self, U, T, p):
        mesh, n = self.mesh, self.n
        m, N = mesh.basis.m, mesh.N
        dU, dT, dp = (np.asarray(a) for a in _blocks(*self._args(U, T, p)))
        R, C = _block_indices(N, m, n)
        S = sp.csr_matrix(
            (dU.ravel(), (R.ravel(), C.ravel())), shape=(N * m * n, (N * m + 1) * n)
        )
        return S, dT.ravel(), dp.ravel()

    def _sparse_derivatives(self, U, T, p):
        mesh, n = self.mesh, self.n
        b, N = mesh.basis, mesh.N
        m = b.m
        Uj = mesh.intervals(U)
        terms = _gauss_terms(self.model, self.param, Uj, np.float64(p), b.L)
        u, f, fp = (np.asarray(a) for a in terms)
        at = replace_parameters(self.model, {self.param: p})
        eye = sp.identity(n, format="csr")
        blocks = [[None] * (N * m + 1) for _ in range(N * m)]
        for j in range(N):
            for k in range(m):
                J = sp.csr_matrix(at.sparse_jacobian(u[j, k]))
                for i in range(m + 1):
                    blocks[j * m + k][j * m + i] = (b.D[k, i] / mesh.h[j]) * eye - (
                        T * b.L[k, i]
                    ) * J
        S = sp.bmat(blocks, format="csr")
        return S, -f.ravel(), -T * fp.ravel()

    def jacobian(self, X):
        S, dT, dp = self.derivatives(X)
        n, k = self.n, self.sqrt_w.size
        scale = sp.diags(np.repeat(1.0 / self.sqrt_w, n))
        periodic = _ends(n, k, -1 / self.sqrt_w[0], 1 / self.sqrt_w[-1])
        phase = (self._ref_derivative_weights() / self.sqrt_w[:, None]).ravel()
        return sp.bmat(
            [
                [S @ scale, dT[:, None] / self.period_weight, dp[:, None]],
                [periodic, None, None],
                [sp.csr_matrix(phase[None, :]), None, None],
            ],
            format="csc",
        )

    def multipliers(self, X) -> np.ndarray:
        """Floquet multipliers by decreasing modulus (Fairgrieve–Jepson, module doc)."""
        S = self.derivatives(X)[0]
        n, m, N = self.n, self.mesh.basis.m, self.mesh.N
        rows, cols = m * n, (m + 1) * n

        def condensed(js):
            E = np.stack(
                [S[j * rows : (j + 1) * rows, j * m * n : j * m * n + cols].toarray()
                 for j in js]
            )  # fmt: skip
            if m > 1:  # the interior nodes eliminated (stacked QR)
                Q, _ = np.linalg.qr(E[:, :, n : m * n], mode="complete")
                E = np.swapaxes(Q, 1, 2) @ E
            return E[:, -n:, :n], E[:, -n:, m * n :]

        # Intervals in groups of bounded memory (large states: one at a time).
        group = max(1, min(N, 2**22 // (rows * cols)))
        parts = [condensed(range(j, min(N, j + group))) for j in range(0, N, group)]
        A = np.concatenate([a for a, _ in parts])
        B = np.concatenate([b for _, b in parts])
        P0, P1 = A[0], B[0]
        zero = np.zeros((n, n))
        for j in range(1, N):
            Q, _ = np.linalg.qr(np.vstack([P1, A[j]]), mode="complete")
            W = Q.T @ np.block([[P0, zero], [zero, B[j]]])
            P0, P1 = W[n:, :n], W[n:, n:]
        mu = sla.eigvals(P0, -P1)
        return mu[np.argsort(-np.abs(mu))]

    def flipped_mode(self, X) -> np.ndarray:
        """At a period doubling: node values V of the solution of the linearised
        collocation equations with v(1) = −v(0) (the multiplier −1's Floquet mode,
        periodic over two periods), of unit L² norm. The linearised equations,
        bordered by a random column b and row c — [[J, b], [cᵀ, 0]] [v; s] = [0; 1]
        is regular where J has a one-dimensional null space, and gives it — are
        solved by a sparse LU."""
        S = self.derivatives(X)[0]
        n, k = self.n, self.sqrt_w.size
        size = k * n
        antiperiodic = _ends(n, k, 1.0, 1.0)
        rng = np.random.default_rng(0)
        M = sp.bmat(
            [
                [S, rng.standard_normal((S.shape[0], 1))],
                [antiperiodic, rng.standard_normal((n, 1))],
                [sp.csr_matrix(rng.standard_normal((1, size))), None],
            ],
            format="csc",
        )
        rhs = np.zeros(size + 1)
        rhs[-1] = 1.0
        v = spla.spsolve(M, rhs)[:size].reshape(k, n)
        return v / np.sqrt(np.sum(self.mesh.quadrature()[:, None] * v**2))

    def orbit(self, X, per_interval: int = 8) -> np.ndarray:
        U, _, _ = self.split(X)
        mesh = self.mesh
        local = np.linspace(0.0, 1.0, per_interval, endpoint=False)
        tau = np.append((mesh.tau[:-1, None] + mesh.h[:, None] * local).ravel(), 1.0)
        return mesh.evaluate(U, tau)

    def accept(self, X):
        self.u_ref = self.split(X)[0].copy()

    def remeshed(self, X: np.ndarray, tangent: np.ndarray, N: int | None = None):
        """(X, tangent) on an adapted mesh (`Mesh.adapted`); the problem moves to it."""
        U, T, p = self.split(X)
        dU, dT, dp = self.split(tangent)
        new = self.mesh.adapted(U, N)
        times = new.times
        U2, dU2 = self.mesh.evaluate(U, times), self.mesh.evaluate(dU, times)
        ref = self.mesh.evaluate(self.u_ref, times) if self.u_ref is not None else U2
        self.set_mesh(new)
        self.u_ref = ref
        t = self.join(dU2, dT, dp)
        return self.join(U2, T, p), t / np.linalg.norm(t)
