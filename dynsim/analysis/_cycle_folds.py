"""Two-parameter continuation of folds of cycles (LPC curves), by shooting and a
minimally augmented system (Govaerts, *Numerical Methods for Bifurcations of
Dynamical Equilibria*, SIAM 2000, §4.3; MatCont's LPC curves use the same test
function on collocation).

A cycle is a zero of S(x₀, T; p) = [φ_T(x₀; p) − x₀; ⟨v, x₀ − x_ref⟩] (the shooting
problem of `cycle_continuation`). It is a fold of cycles where M = ∂S/∂(x₀, T) is
singular; the fold test g is the last component of the solution of

    [M  b] [w]   [0]
    [cᵀ 0] [g] = [1],

with b, c the left and right null vectors of M at the previous point (so the
bordered matrix stays regular). The curve solves [S; g] = 0 in Z = (x₀, T, p₁, p₂);
its Jacobian is forward-mode JAX through the solve twice over (M's derivatives),
which suits systems of a few states.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from dynsim.models import replace_parameters

from .._checks import options_for
from ._cycle_problems import PERIOD_JUMP, orbit, shooting_residual
from ._linalg import field

#: Where a curve of folds of cycles ends: its orbits this fraction of the first one.
SHRUNK = 1e-2


def _shooting_parts(model, names, Z, x_ref, v_ref, opts):
    """S and M = ∂S/∂(x₀, T) at Z = (x₀, T, p₁, p₂)."""
    n = Z.size - 3

    def S(W):
        r = shooting_residual(model, names, jnp.concatenate([W, Z[n + 1 :]]),
                              x_ref, v_ref, opts)  # fmt: skip
        return r, r

    M, r = jax.jacfwd(S, has_aux=True)(Z[: n + 1])
    return r, M


def _fold_residual(model, names, Z, x_ref, v_ref, b, c, opts):
    r, M = _shooting_parts(model, names, Z, x_ref, v_ref, opts)
    m = M.shape[0]
    bordered = jnp.block([[M, b[:, None]], [c[None, :], jnp.zeros((1, 1))]])
    g = jnp.linalg.solve(bordered, jnp.zeros(m + 1).at[m].set(1.0))[m]
    return jnp.append(r, g)


_residual = eqx.filter_jit(_fold_residual)
_matrix = eqx.filter_jit(lambda *a: _shooting_parts(*a)[1])


@eqx.filter_jit
def _jacobian(model, names, Z, x_ref, v_ref, b, c, opts):
    return jax.jacfwd(
        lambda W: _fold_residual(model, names, W, x_ref, v_ref, b, c, opts)
    )(Z)


class CycleFolds:
    """The curve of folds of cycles for `follow`: Z = (x₀, T, p₁, p₂)."""

    kind = "cycle_fold"

    def __init__(self, model, names, size, *, solver, rtol, atol, max_steps):
        self.model, self.names, self.size = model, tuple(names), size
        self.opts = options_for(
            model, solver=solver, rtol=rtol, atol=atol, max_steps=max_steps
        )
        self._cache: tuple[bytes, np.ndarray] | None = None
        self.ts = jnp.linspace(0.0, 1.0, 200)
        self.first_size: float | None = None
        self._size_cache: tuple[bytes, float] | None = None

    def _args(self, Z):
        return (self.model, self.names, jnp.asarray(Z), jnp.asarray(self.x_ref),
                jnp.asarray(self.v_ref), jnp.asarray(self.b), jnp.asarray(self.c),
                self.opts)  # fmt: skip

    def residual(self, Z):
        return np.asarray(_residual(*self._args(Z)))

    def jacobian(self, Z):
        key = Z.tobytes() + self.x_ref.tobytes() + self.b.tobytes()
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, np.asarray(_jacobian(*self._args(Z))))
        return self._cache[1]

    def size_of(self, Z):
        """The orbit's largest peak-to-peak over its components (one solve per
        point: `monitor` and `end` both ask)."""
        key = Z.tobytes()
        if self._size_cache is None or self._size_cache[0] != key:
            ys = orbit(self.model, self.names, jnp.asarray(Z), self.ts, self.opts)
            self._size_cache = (key, float(np.ptp(np.asarray(ys), axis=0).max()))
        return self._size_cache[1]

    def monitor(self, Z, t):
        return {}, {"period": float(Z[-3]), "size": self.size_of(Z)}

    def end(self, Z):
        """The curve ends where its orbits have shrunk to `SHRUNK` times the first
        one's: it is meeting a Hopf curve at a Bautin point."""
        return self.size_of(Z) / self.first_size - SHRUNK

    def crossings(self, a, b):
        ratio = b.record["period"] / a.record["period"]
        return [], not 1 / PERIOD_JUMP <= ratio <= PERIOD_JUMP

    def split(self, Z):
        """The orbits' first points and frequencies 2π/T of the points Z (rows)."""
        return Z[:, : self.size], 2 * np.pi / Z[:, self.size]

    def accept(self, Z):
        """Move the phase reference to Z's orbit and the borders to M's null
        vectors there."""
        n = Z.size - 3
        self.x_ref = Z[:n].copy()
        at = replace_parameters(self.model, dict(zip(self.names, Z[-2:], strict=True)))
        v = field(at, self.x_ref)
        self.v_ref = v / np.linalg.norm(v)
        M = _matrix(self.model, self.names, jnp.asarray(Z), jnp.asarray(self.x_ref),
                    jnp.asarray(self.v_ref), self.opts)  # fmt: skip
        u, _, vt = np.linalg.svd(np.asarray(M))
        self.b, self.c = u[:, -1], vt[-1]
        if self.first_size is None:
            self.first_size = self.size_of(Z)
