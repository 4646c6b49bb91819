"""Equilibria, Jacobians and their eigenvalues, dense or sparse.

A model's Jacobian comes from JAX (`jax.jacfwd`, dense) unless the model provides
`sparse_jacobian(y) -> scipy.sparse matrix` (large discretised PDEs), in which case
linear solves use a sparse LU and eigenvalues come from shift-invert Arnoldi
(`scipy.sparse.linalg.eigs`, ARPACK) instead of a dense eigendecomposition.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
import scipy.linalg as sla
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from dynsim.models import replace_parameters
from dynsim.solvers import Status

from .._custom_types import State, System
from .._protocol import AbstractResult, freeze_fields

# Above this size a model without `sparse_jacobian` still gets a dense Jacobian, but
# eigenvalues are computed by Arnoldi (k of them) rather than all of them.
DENSE_EIG_LIMIT = 400


@eqx.filter_jit
def _field(model, y, t, args):
    return model.vector_field(t, y, args)


@eqx.filter_jit
def _dense_jacobian(model, y, t, args):
    return jax.jacfwd(lambda u: model.vector_field(t, u, args))(y)


def field(model: Any, y: Any, t: float = 0.0, args: Any = None) -> np.ndarray:
    """f(t, y) as a NumPy array."""
    return np.asarray(_field(model, jnp.asarray(y), t, args))


def jacobian(model: Any, y: Any, t: float = 0.0, args: Any = None) -> Any:
    """∂f/∂y at y: the model's `sparse_jacobian(y, args)` if it gives one, else the
    dense JAX Jacobian (a NumPy array)."""
    sparse = model.sparse_jacobian(np.asarray(y), args)
    if sparse is not None:
        return sp.csc_matrix(sparse)
    return np.asarray(_dense_jacobian(model, jnp.asarray(y), t, args))


def parameter_derivative(
    model: Any, name: str, y: Any, t: float = 0.0, args: Any = None
) -> np.ndarray:
    """∂f/∂p at y for the scalar parameter `name` (forward-mode JAX)."""
    return np.asarray(_param_jvp(model, name, jnp.asarray(y), t, args))


@eqx.filter_jit
def _param_jvp(model, name, y, t, args):
    p0 = jnp.asarray(parameter_value(model, name), float)

    def f(p):
        return replace_parameters(model, {name: p}).vector_field(t, y, args)

    return jax.jvp(f, (p0,), (jnp.ones_like(p0),))[1]


def parameter_value(model, name):
    for part in name.split("."):
        model = getattr(model, part)
    return model


def eigenvalues(
    matrix: Any,
    n_eigenvalues: int | None = None,
    shift: float = 0.0,
    vectors: bool = False,
) -> Any:
    """Eigenvalues of a Jacobian, sorted by decreasing real part.

    Dense matrices up to `DENSE_EIG_LIMIT` rows (or with `n_eigenvalues=None`): all
    of them (LAPACK). Sparse or large ones: the `n_eigenvalues` (default 8) nearest
    `shift`, by shift-invert Arnoldi (ARPACK) — the ones that decide stability when
    `shift` is near the imaginary axis. With `vectors=True`, also the right
    eigenvectors (columns).
    """
    n = matrix.shape[0]
    k = n_eigenvalues
    if not sp.issparse(matrix) and (k is None or n <= DENSE_EIG_LIMIT):
        vals, vecs = np.linalg.eig(np.asarray(matrix))
    else:
        k = min(8 if k is None else k, n - 2)
        vals, vecs = spla.eigs(sp.csc_matrix(matrix), k=k, sigma=shift, which="LM")
    order = np.lexsort((-vals.imag, -vals.real))
    vals, vecs = vals[order], vecs[:, order]
    return (vals, vecs) if vectors else vals


class LinearSolver:
    """Solves with one matrix (dense or sparse), factorised once."""

    def __init__(self, matrix: Any):
        self.sparse = sp.issparse(matrix)
        if self.sparse:
            self._lu = spla.splu(sp.csc_matrix(matrix))
        else:
            self._lu = sla.lu_factor(np.asarray(matrix))

    def __call__(self, rhs: np.ndarray, transpose: bool = False) -> np.ndarray:
        if self.sparse:
            trans = "T" if transpose else "N"
            if np.iscomplexobj(rhs) and not np.iscomplexobj(self._lu.L.data):
                # A real factorisation solves the real and imaginary parts apart.
                return self._lu.solve(rhs.real.copy(), trans=trans) + 1j * (
                    self._lu.solve(rhs.imag.copy(), trans=trans)
                )
            return self._lu.solve(rhs, trans=trans)
        return sla.lu_solve(self._lu, rhs, trans=1 if transpose else 0)


def shifted(matrix: Any, shift: complex) -> Any:
    """matrix − shift·I, dense or sparse."""
    n = matrix.shape[0]
    if sp.issparse(matrix):
        return sp.csc_matrix(matrix - shift * sp.identity(n, format="csc"))
    return np.asarray(matrix) - shift * np.eye(n)


@dataclasses.dataclass(frozen=True, eq=False)
class Equilibrium(AbstractResult):
    """A steady state y of f(t, y) = 0: its `status` (`SUCCESS`, or
    `NO_CONVERGENCE` when Newton's method failed) and `message`, the `residual`
    max-norm, the Newton `steps` and the leading `eigenvalues` (decreasing real
    part)."""

    y: np.ndarray
    status: int
    residual: float
    steps: int
    eigenvalues: np.ndarray
    message: str

    kind: ClassVar[str] = "equilibrium"
    dims: ClassVar = {"y": ("state",), "eigenvalues": ("eigenvalue",)}

    def __post_init__(self):
        freeze_fields(self)

    @property
    def converged(self) -> bool:
        return self.status == Status.SUCCESS

    @property
    def stable(self) -> bool:
        """Asymptotically stable (all computed eigenvalues in the left half-plane)."""
        return bool(np.all(self.eigenvalues.real < 0))


def equilibrium(
    model: System,
    y0: State | None = None,
    *,
    t: float = 0.0,
    args: Any = None,
    rtol: float = 1e-10,
    atol: float = 1e-12,
    max_steps: int = 50,
    n_eigenvalues: int | None = None,
    shift: float = 0.0,
    throw: bool = False,
) -> Equilibrium:
    """An equilibrium of `model` near `y0` (default: the model's `steady_state()` if
    it has one, else its `initial_state()`), by Newton's method with the exact JAX
    Jacobian (optimistix), or a sparse-LU Newton iteration for models with
    `sparse_jacobian`. Eigenvalues as `eigenvalues(..., n_eigenvalues, shift)`.

    **Returns:** an `Equilibrium`; status `NO_CONVERGENCE` with a `message` when
    Newton fails (or a `RuntimeError` with `throw=True`).
    """
    if y0 is None:
        y0 = model.steady_state()
        y0 = model.initial_state() if y0 is None else y0
    y0 = np.asarray(y0, float)
    if model.sparse_jacobian(y0, args) is None:
        roots, counts = _newton(model, y0[None], t, args, rtol, atol, max_steps)
        y, steps = np.asarray(roots[0]), int(counts[0])
    else:
        y, steps = y0, 0
        for steps in range(1, max_steps + 1):  # noqa: B007
            dy = LinearSolver(jacobian(model, y, t, args))(-field(model, y, t, args))
            y = y + dy
            if np.max(np.abs(dy)) <= atol + rtol * np.max(np.abs(y)):
                break
    res = float(np.max(np.abs(field(model, y, t, args))))
    converged = _converged(y, res, rtol, atol)
    message = (
        "converged"
        if converged
        else f"Newton's method did not converge in {max_steps} steps from the given "
        f"y0 (residual {res:.2e}); try another initial guess"
    )
    if throw and not converged:
        raise RuntimeError(message)
    vals = (
        eigenvalues(jacobian(model, y, t, args), n_eigenvalues, shift)
        if converged
        else np.array([], complex)
    )
    status = Status.SUCCESS if converged else Status.NO_CONVERGENCE
    return Equilibrium(y, int(status), res, steps, vals, message)


@eqx.filter_jit
def _newton(model, seeds, t, args, rtol, atol, max_steps):
    """Newton's method (optimistix, exact JAX Jacobian) from each row of `seeds` at
    once: the roots and the step counts."""

    def one(y0):
        sol = optx.root_find(
            lambda u, m: m.vector_field(t, u, args),
            optx.Newton(rtol=rtol, atol=atol),
            y0,
            args=model,
            max_steps=max_steps,
            throw=False,
        )
        return sol.value, sol.stats["num_steps"]

    return jax.vmap(one)(seeds)


def _converged(y, residual, rtol, atol) -> bool:
    scale = max(1.0, float(np.max(np.abs(y))))
    return bool(np.all(np.isfinite(y))) and residual <= 1e3 * (atol + rtol * scale)


def distinct_equilibria(
    model: System,
    seeds: np.ndarray,
    *,
    t: float = 0.0,
    args: Any = None,
    rtol: float = 1e-10,
    atol: float = 1e-12,
    max_steps: int = 50,
) -> list[np.ndarray]:
    """The distinct equilibria Newton's method reaches from the rows of `seeds`: one
    batched solve (or one solve per seed for models with `sparse_jacobian`), the
    non-converged dropped, duplicates (within 10⁻⁶ relative) merged, in seed
    order."""
    seeds = np.atleast_2d(np.asarray(seeds, float))
    if model.sparse_jacobian(seeds[0], args) is None:
        roots, _ = _newton(model, jnp.asarray(seeds), t, args, rtol, atol, max_steps)
        roots = np.asarray(roots)
        ok = [
            _converged(y, float(np.max(np.abs(field(model, y, t, args)))), rtol, atol)
            for y in roots
        ]
        candidates = roots[np.asarray(ok, bool)]
    else:
        solved = [equilibrium(model, y, t=t, args=args) for y in seeds]
        candidates = [np.asarray(e.y, float) for e in solved if e.ok]
    found: list[np.ndarray] = []
    for y in candidates:
        if all(np.max(np.abs(y - f)) > 1e-6 * (1 + np.max(np.abs(f))) for f in found):
            found.append(y)
    return found
