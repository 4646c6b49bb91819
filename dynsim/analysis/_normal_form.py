"""Normal-form coefficients at bifurcation points, from JAX derivatives of the model.

The first Lyapunov coefficient of a Hopf point follows Kuznetsov, *Elements of
Applied Bifurcation Theory* (3rd ed., 2004), eq. (3.20):

l₁ = 1/(2ω) Re[⟨p, C(q,q,q̄)⟩ − 2⟨p, B(q, A⁻¹B(q,q̄))⟩ + ⟨p, B(q̄, (2iω − A)⁻¹B(q,q))⟩],

with A q = iω q, Aᵀ p = −iω p, ⟨q,q⟩ = ⟨p,q⟩ = 1 (⟨u,v⟩ = ūᵀv), and B, C the second
and third derivatives of f at the equilibrium as multilinear forms (nested JVPs, so
no hand-written derivatives). l₁ < 0: supercritical (a stable cycle is born), l₁ > 0:
subcritical. For ż = (μ + iω)z + (a + ib)|z|²z this gives l₁ = 2a/ω.
"""

from __future__ import annotations

import itertools
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._linalg import LinearSolver, shifted


@eqx.filter_jit
def _d2(model, y, u, v, t, args):
    def f(z):
        return model.vector_field(t, z, args)

    return jax.jvp(lambda z: jax.jvp(f, (z,), (v,))[1], (y,), (u,))[1]


@eqx.filter_jit
def _d3(model, y, u, v, w, t, args):
    def f(z):
        return model.vector_field(t, z, args)

    def d2(z):
        return jax.jvp(lambda x: jax.jvp(f, (x,), (w,))[1], (z,), (v,))[1]

    return jax.jvp(d2, (y,), (u,))[1]


def multilinear(model: Any, y: np.ndarray, *vectors: np.ndarray, t=0.0, args=None):
    """B(u, v) (two vectors) or C(u, v, w) (three) at y, extended to complex vectors
    by multilinearity."""
    form = {2: _d2, 3: _d3}[len(vectors)]
    y = jnp.asarray(y)
    out = 0.0
    parts = [((v.real, 1.0), (v.imag, 1j)) for v in map(np.asarray, vectors)]
    for choice in itertools.product(*parts):
        coef = np.prod([c for _, c in choice])
        vecs = [jnp.asarray(v) for v, _ in choice]
        if all(np.any(v) for v in vecs):
            out = out + coef * np.asarray(form(model, y, *vecs, t, args))
    return np.asarray(out) * np.ones(y.shape)


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
