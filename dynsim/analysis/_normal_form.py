"""Normal-form coefficients at bifurcation points, from JAX derivatives of the model.

The first Lyapunov coefficient of a Hopf point follows Kuznetsov, *Elements of
Applied Bifurcation Theory* (3rd ed., 2004), eq. (3.20):

l₁ = 1/(2ω) Re[⟨p, C(q,q,q̄)⟩ − 2⟨p, B(q, A⁻¹B(q,q̄))⟩ + ⟨p, B(q̄, (2iω − A)⁻¹B(q,q))⟩],

with A q = iω q, Aᵀ p = −iω p, ⟨q,q⟩ = ⟨p,q⟩ = 1 (⟨u,v⟩ = ūᵀv), and B, C the second
and third derivatives of f at the equilibrium as multilinear forms (nested JVPs, so
no hand-written derivatives). l₁ < 0: supercritical (a stable cycle is born), l₁ > 0:
subcritical. For ż = (μ + iω)z + (a + ib)|z|²z this gives l₁ = 2a/ω.

At a Bautin point (l₁ = 0) the second Lyapunov coefficient l₂ decides
(Kuznetsov 1999, *SIAM J. Numer. Anal.* 36:1104, §3.2; Kuznetsov 2004, §8.3): with x
= 2 Re(w q) + Σ h_jk w^j w̄^k/(j! k!) the centre manifold and ẇ = iωw + ½G₂₁w|w|²
+ (1/12)G₃₂w|w|⁴ its normal form, the homological equation at each order gives
h_jk = (iω(j−k) − A)⁻¹[F_jk − corrections] and l₂ = Re G₃₂/(12ω) (`second_lyapunov`;
the formulas in its docstring). For ż = (μ + iω)z + a|z|²z + s|z|⁴z at μ = a = 0
it gives l₂ = 4s/ω (the same normalisation of q as l₁).
"""

from __future__ import annotations

import itertools
from typing import Any

import equinox as eqx
import jax
import numpy as np
import scipy.sparse as sp

from ._linalg import LinearSolver, shifted


def _derivative(model, y, vectors, t, args):
    """The k-th derivative of f at y along k real vectors (nested JVPs)."""

    def along(g, v):
        return lambda z: jax.jvp(g, (z,), (v,))[1]

    g = lambda z: model.vector_field(t, z, args)  # noqa: E731
    for v in vectors:
        g = along(g, v)
    return g(y)


@eqx.filter_jit
def _derivatives(model, y, vectors, t, args):
    """`_derivative` along each row of `vectors` (terms × k × y's shape), in one
    compiled call (a loop over the terms: the program is one derivative's, which
    XLA compiles faster than the derivative vectorised over the terms)."""
    return jax.lax.map(lambda v: _derivative(model, y, tuple(v), t, args), vectors)


def multilinear(model: Any, y: np.ndarray, *vectors: np.ndarray, t=0.0, args=None):
    """The symmetric multilinear form of f's k-th derivative at y (k = the number of
    vectors: B, C, D, E for k = 2…5), extended to complex vectors by
    multilinearity: the sum over the vectors' real and imaginary parts, those that
    are zero left out (one compiled call: a Hopf curve evaluates thousands)."""
    # (NumPy arrays go to the compiled call as they are: `jnp.asarray` of each
    # would be a device copy of its own, 0.1 ms.)
    y = np.asarray(y)
    parts = [((v.real, 1), (v.imag, 1j)) for v in map(np.asarray, vectors)]
    terms, coefficients = [], []
    for choice in itertools.product(*parts):
        if all(np.any(v) for v, _ in choice):
            terms.append([v for v, _ in choice])
            coefficients.append(np.prod([c for _, c in choice]))
    if not terms:
        return np.zeros(y.shape)
    # (Padded with zero terms to a power of two: at most k + 1 compilations for the
    # forms of order k, and a form of real vectors evaluates one derivative.)
    k, size = len(vectors), 1 << (len(terms) - 1).bit_length()
    padded = np.zeros((size, k, *y.shape), np.result_type(y.dtype, np.float32))
    padded[: len(terms)] = terms
    d = np.asarray(_derivatives(model, y, padded, t, args))[: len(terms)]
    # (Real coefficients as floats: a form of real vectors stays real.)
    c = np.asarray(coefficients)
    c = c.real if np.all(c.imag == 0) else c
    return (c @ d.reshape(len(terms), -1)).reshape(y.shape)


def _null_vector(matrix, shift, transpose=False, iterations=3):
    """A unit vector of the null space of (matrix − shift) (or its transpose), by
    inverse iteration from a fixed start."""
    n = matrix.shape[0]
    # Nudge off the exact eigenvalue so the factorisation stays regular.
    solve = LinearSolver(shifted(matrix, shift * (1 + 1e-12) + 1e-14))
    x = np.random.default_rng(0).standard_normal(n) + 0j
    for _ in range(iterations):
        x = solve(x, transpose=transpose)
        x = x / np.linalg.norm(x)
    return x


def hopf_vectors(jac: Any, omega: float):
    """(q, p) of Kuznetsov's normalisation: A q = iωq, Aᵀp = −iωp, ⟨q,q⟩=⟨p,q⟩=1."""
    q = _null_vector(jac, 1j * omega)
    # (A − iω)ᵀ p' = 0 ⇒ Aᵀ p̄' = −iω p̄'.
    p = np.conj(_null_vector(jac, 1j * omega, transpose=True))
    return q, p / np.conj(np.vdot(p, q))


def first_lyapunov(
    model: Any, y: np.ndarray, jac: Any, omega: float, t=0.0, args=None
) -> float:
    """The first Lyapunov coefficient l₁ of a Hopf point (see the module docstring)."""
    q, p = hopf_vectors(jac, omega)
    qb = np.conj(q)
    b_qqb = multilinear(model, y, q, qb, t=t, args=args).real
    b_qq = multilinear(model, y, q, q, t=t, args=args)
    h11 = LinearSolver(jac)(b_qqb)
    h20 = -LinearSolver(shifted(jac, 2j * omega))(b_qq)
    c = multilinear(model, y, q, q, qb, t=t, args=args)
    term = (
        np.vdot(p, c)
        - 2 * np.vdot(p, multilinear(model, y, q, h11, t=t, args=args))
        + np.vdot(p, multilinear(model, y, qb, h20, t=t, args=args))
    )
    return float(term.real / (2 * omega))


def second_lyapunov(
    model: Any, y: np.ndarray, jac: Any, omega: float, t=0.0, args=None
) -> float:
    """The second Lyapunov coefficient l₂ = Re G₃₂/(12ω) of a Hopf point (meaningful
    where l₁ = 0, at a Bautin point; module docstring). With B…E the derivatives of
    f as multilinear forms, q, p as for l₁, h₀₂ = h̄₂₀, h₁₂ = h̄₂₁ and
    (z − A)⁻¹ written R(z):

    - h₂₀ = R(2iω) B(q,q), h₁₁ = R(0) B(q,q̄), h₃₀ = R(3iω)[C(q,q,q) + 3B(q,h₂₀)];
    - G₂₁ = ⟨p, F₂₁⟩ with F₂₁ = C(q,q,q̄) + B(q̄,h₂₀) + 2B(q,h₁₁), and h₂₁ the
      solution of (iω − A) h₂₁ = F₂₁ − G₂₁q with ⟨p, h₂₁⟩ = 0 (bordered);
    - h₃₁ = R(2iω)[D(q,q,q,q̄) + 3C(q,q,h₁₁) + 3C(q,q̄,h₂₀) + 3B(h₂₀,h₁₁)
      + B(q̄,h₃₀) + 3B(q,h₂₁) − 3G₂₁h₂₀];
    - h₂₂ = R(0)[D(q,q,q̄,q̄) + 4C(q,q̄,h₁₁) + C(q̄,q̄,h₂₀) + C(q,q,h₀₂) + 2B(h₁₁,h₁₁)
      + 2B(q,h₁₂) + 2B(q̄,h₂₁) + B(h₂₀,h₀₂) − 4 Re G₂₁ h₁₁];
    - G₃₂ = ⟨p, E(q,q,q,q̄,q̄) + D(q,q,q,h₀₂) + 3D(q,q̄,q̄,h₂₀) + 6D(q,q,q̄,h₁₁)
      + C(q̄,q̄,h₃₀) + 3C(q,q,h₁₂) + 6C(q,q̄,h₂₁) + 3C(q,h₂₀,h₀₂) + 6C(q,h₁₁,h₁₁)
      + 6C(q̄,h₂₀,h₁₁) + 2B(q̄,h₃₁) + 3B(q,h₂₂) + B(h₀₂,h₃₀) + 3B(h₁₂,h₂₀)
      + 6B(h₁₁,h₂₁)⟩.

    The terms in G₂₁ are the normal form's own (ẇ's cubic term acting on h₂₀, h₁₁);
    ⟨p, h₂₁⟩ = 0 removes them from G₃₂."""
    q, p = hopf_vectors(jac, omega)
    qb = np.conj(q)

    def form(*vectors):
        return multilinear(model, y, *vectors, t=t, args=args)

    def resolvent(z, rhs):
        return -LinearSolver(shifted(jac, z))(rhs)

    h20 = resolvent(2j * omega, form(q, q))
    h11 = resolvent(0.0, form(q, qb))
    h30 = resolvent(3j * omega, form(q, q, q) + 3 * form(q, h20))
    f21 = form(q, q, qb) + form(qb, h20) + 2 * form(q, h11)
    g21 = np.vdot(p, f21)
    h21 = _bordered_solve(shifted(jac, 1j * omega), q, p, g21 * q - f21)
    h02, h12 = np.conj(h20), np.conj(h21)
    f31 = (form(q, q, q, qb) + 3 * form(q, q, h11) + 3 * form(q, qb, h20)
           + 3 * form(h20, h11) + form(qb, h30) + 3 * form(q, h21))  # fmt: skip
    h31 = resolvent(2j * omega, f31 - 3 * g21 * h20)
    f22 = (form(q, q, qb, qb) + 4 * form(q, qb, h11) + form(qb, qb, h20)
           + form(q, q, h02) + 2 * form(h11, h11) + 2 * form(q, h12)
           + 2 * form(qb, h21) + form(h20, h02))  # fmt: skip
    h22 = resolvent(0.0, f22 - 4 * g21.real * h11)
    f32 = (form(q, q, q, qb, qb) + form(q, q, q, h02) + 3 * form(q, qb, qb, h20)
           + 6 * form(q, q, qb, h11) + form(qb, qb, h30) + 3 * form(q, q, h12)
           + 6 * form(q, qb, h21) + 3 * form(q, h20, h02) + 6 * form(q, h11, h11)
           + 6 * form(qb, h20, h11) + 2 * form(qb, h31) + 3 * form(q, h22)
           + form(h02, h30) + 3 * form(h12, h20) + 6 * form(h11, h21))  # fmt: skip
    return float(np.vdot(p, f32).real / (12 * omega))


def _bordered_solve(matrix: Any, q: np.ndarray, p: np.ndarray, rhs: np.ndarray):
    """x with matrix·x = rhs and ⟨p, x⟩ = 0, where matrix is singular with null
    vector q and left null vector p̄ (rhs ⟂ p): the bordered system
    [[matrix, q], [p̄ᵀ, 0]]."""
    n = q.size
    if sp.issparse(matrix):
        bordered = sp.bmat([[matrix, q[:, None]], [np.conj(p)[None, :], None]])
    else:
        bordered = np.block([[matrix, q[:, None]], [np.conj(p)[None, :], 0.0]])
    return LinearSolver(bordered)(np.append(rhs, 0.0))[:n]
