"""Small-ε linear stability of the cell–bulk model in the unit disk: the steady state
and the globally coupled eigenvalue problem (GCEP) of Iyaniwura & Ward (2021), §2.

Strong localized perturbation theory (ν = −1/log ε): near cell j the bulk is
U ≈ Aⱼ + Sⱼ log(|x − xⱼ|/ε); the membrane condition gives d₁Aⱼ − d₂vⱼ = D Sⱼ and
matching to the outer solution U = −2π Σ Sᵢ G(x; xᵢ) gives

    (I + 2πν𝒢 + νD P₁) S = −ν P₂ v,        P₁ = diag(1/d₁ⱼ), P₂ = diag(d₂ⱼ/d₁ⱼ),

with 𝒢 the reduced-wave Green's matrix of Δ − 1/D. The cells obey
u̇ⱼ = F(uⱼ) + (2πD/τ) Sⱼ e₁; for Sel'kov kinetics F₂ = 0 gives F₁ = μ − v, so the
steady state solves a linear system for v (the paper's eq. 2.28). Perturbing by
e^{λt} gives M(λ) c = 0 with

    M(λ) = I + 2πν𝒢_λ + νD P₁ + (2πνD/τ) P₂ K(λ),
    Kⱼ(λ) = (λ − J₂₂)/(λ² − λ tr Jⱼ + det Jⱼ)   (= (λ + det J)/(…) for Sel'kov),

𝒢_λ the reduced-wave Green's matrix of Δ − (1 + τλ)/D. The null vector c holds the
cells' flux perturbations and K c their v-amplitudes (equal phases: in phase).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import equinox as eqx
import jax
import numpy as np

from ._disk import AREA, reduced_wave_green, reduced_wave_matrix
from ._single import kinetics_jacobian


def _params(model: Any) -> dict[str, Any]:
    m = len(model.centers)
    out = {"centers": np.asarray(model.centers, dtype=float), "m": m}
    for name in ("D", "tau", "eps"):
        out[name] = float(np.asarray(getattr(model, name)))
    for name in ("d1", "d2", "alpha", "mu", "zeta"):
        out[name] = np.broadcast_to(np.asarray(getattr(model, name), float), (m,))
    out["nu"] = -1.0 / np.log(out["eps"])
    return out


@dataclasses.dataclass(frozen=True)
class SmallEpsSteadyState:
    """The steady state to all orders in ν: cell states, fluxes S and the bulk."""

    v: np.ndarray
    w: np.ndarray
    S: np.ndarray
    U_mean: float
    U_wall: np.ndarray
    centers: np.ndarray
    D: float

    def bulk(self, x: np.ndarray) -> np.ndarray:
        """U(x) = −2π Σ Sᵢ G(x; xᵢ) at points x (..., 2) away from the cells."""
        theta = 1.0 / np.sqrt(self.D)
        total = sum(
            s * reduced_wave_green(x, c, theta).real
            for s, c in zip(self.S, self.centers, strict=True)
        )
        return -2 * np.pi * np.asarray(total)


def small_eps_steady_state(model: Any) -> SmallEpsSteadyState:
    """The small-ε steady state of a unit-disk cell–bulk model (Sel'kov kinetics)."""
    p = _params(model)
    D, tau, nu = p["D"], p["tau"], p["nu"]
    green = reduced_wave_matrix(p["centers"], 1.0 / np.sqrt(D)).real
    m0 = np.eye(p["m"]) + 2 * np.pi * nu * green + nu * D * np.diag(1 / p["d1"])
    p2 = np.diag(p["d2"] / p["d1"])
    a = np.eye(p["m"]) + 2 * np.pi * D * nu / tau * np.linalg.solve(m0, p2)
    v = np.linalg.solve(a, p["mu"])
    S = -nu * np.linalg.solve(m0, p2 @ v)
    w = p["mu"] / (p["alpha"] + v**2)
    return SmallEpsSteadyState(
        v=v,
        w=w,
        S=S,
        U_mean=float(-2 * np.pi * D * S.sum() / AREA),
        U_wall=(D * S + p["d2"] * v) / p["d1"],
        centers=p["centers"],
        D=D,
    )


def _cell_response(v, w, p) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(J₂₂, tr J, det J) of each cell's kinetics Jacobian at (v, w) (NumPy)."""
    J = np.asarray(kinetics_jacobian(v, w, p["alpha"], p["mu"], p["zeta"]))
    tr = J[:, 0, 0] + J[:, 1, 1]
    det = J[:, 0, 0] * J[:, 1, 1] - J[:, 0, 1] * J[:, 1, 0]
    return J[:, 1, 1], tr, det


def gcep_matrix(
    model: Any, lam: complex, steady: SmallEpsSteadyState | None = None, response=None
):
    """M(λ) of the GCEP (complex m×m) and K(λ)."""
    p = _params(model)
    steady = small_eps_steady_state(model) if steady is None else steady
    D, tau, nu = p["D"], p["tau"], p["nu"]
    theta = np.sqrt((1.0 + tau * lam) / D + 0j)
    j22, tr, det = (
        _cell_response(steady.v, steady.w, p) if response is None else (response)
    )
    K = (lam - j22) / (lam**2 - lam * tr + det)
    return (
        np.eye(p["m"])
        + 2 * np.pi * nu * reduced_wave_matrix(p["centers"], theta)
        + nu * D * np.diag(1 / p["d1"])
        + 2 * np.pi * nu * D / tau * np.diag(p["d2"] / p["d1"] * K)
    ), K


@dataclasses.dataclass(frozen=True)
class GCEPMode:
    """One eigenvalue λ of the GCEP with its null vector c (fluxes) and the cells'
    relative v-amplitudes K c (normalised to max modulus 1); `kind` is "in-phase" when
    all cells oscillating noticeably share the phase (within π/2), else
    "anti-phase"."""

    lam: complex
    c: np.ndarray
    amplitudes: np.ndarray
    kind: str

    @property
    def unstable(self) -> bool:
        return self.lam.real > 0


def _smallest(matrix, lam):
    M, K = matrix(lam)
    ev, vec = np.linalg.eig(M)
    i = int(np.argmin(np.abs(ev)))
    return ev[i], vec[:, i], K


def _newton(matrix, lam, tol=1e-12, max_iter=60) -> complex | None:
    """A root of the smallest eigenvalue g(λ) of M(λ) (an analytic branch), by the
    secant method (superlinear, one evaluation of M per iteration)."""
    try:
        with np.errstate(all="ignore"):
            lam0, lam1 = lam, lam + 1e-4 * (1 + abs(lam))
            g0 = _smallest(matrix, lam0)[0]
            for _ in range(max_iter):
                g1 = _smallest(matrix, lam1)[0]
                if g1 == g0 or not np.isfinite(g1):
                    break
                lam2 = lam1 - g1 * (lam1 - lam0) / (g1 - g0)
                if not np.isfinite(lam2):
                    return None
                lam0, g0, lam1 = lam1, g1, lam2
                if abs(lam1 - lam0) < tol * (1 + abs(lam1)):
                    break
            else:
                return None
            ok = abs(_smallest(matrix, lam1)[0]) < 1e-9
    except (np.linalg.LinAlgError, ArithmeticError):
        return None  # the iteration ran off to where M(λ) overflows
    return lam1 if ok else None


def nonlinear_eigenvalues(matrix, guesses, accept=lambda lam: True) -> list[GCEPMode]:
    """Roots λ (Im λ ≥ 0) of det M(λ) = 0 for `matrix(λ) -> (M, K)`, from `guesses`,
    with their null vectors c and cell amplitudes K c; sorted by decreasing Re λ."""
    roots: list[complex] = []
    for g in guesses:
        g = complex(g)
        lam = _newton(matrix, g.conjugate() if g.imag < 0 else g)
        if lam is None or lam.imag < -1e-9 or not accept(lam):
            continue
        lam = complex(lam.real, abs(lam.imag))
        if all(abs(lam - r) > 1e-6 * (1 + abs(r)) for r in roots):
            roots.append(lam)
    modes = []
    for lam in sorted(roots, key=lambda z: -z.real):
        _, c, K = _smallest(matrix, lam)
        amp = K * c
        amp = amp / amp[np.argmax(np.abs(amp))]
        big = np.abs(amp) > 1e-3
        phases = np.angle(amp[big])
        spread = np.max(np.abs(np.angle(np.exp(1j * (phases[:, None] - phases[None])))))
        kind = "in-phase" if spread < np.pi / 2 else "anti-phase"
        modes.append(GCEPMode(lam, c, amp, kind))
    return modes


def _default_guesses(model) -> list[complex]:
    ld = _large_d_eigenvalues(model)
    return [z for z in ld if z.imag > 0] + [0.05 + 1j * w for w in (0.5, 1.5)]


def gcep(model: Any, guesses: Any = None) -> list[GCEPMode]:
    """Eigenvalues of the GCEP (with Im λ ≥ 0), by Newton's method on the smallest
    eigenvalue of M(λ) from several starting points, sorted by decreasing Re λ.

    **Arguments:** `model` with unit-disk cell–bulk parameters (`centers`, `D`, `tau`,
    `eps`, `d1`, `d2`, `alpha`, `mu`, `zeta`: `SelkovLargeD` or `SelkovCellBulk`);
    `guesses`: starting values. By default the eigenvalues of the large-D ODE with the
    same parameters, and points on the imaginary axis.

    **Returns:** a list of `GCEPMode` (the roots found: a root far from every guess can
    be missed; pass guesses to look elsewhere). Roots with ε|θ(λ)| > 1/2, where the
    log-expansion behind the GCEP no longer holds, are discarded.
    """
    steady = small_eps_steady_state(model)
    p = _params(model)

    def valid(lam):
        # The theory needs the inner scale ε|θ| ≪ 1; roots beyond it are artefacts.
        return p["eps"] * abs(np.sqrt((1 + p["tau"] * lam) / p["D"] + 0j)) <= 0.5

    response = _cell_response(steady.v, steady.w, p)
    return nonlinear_eigenvalues(
        lambda lam: gcep_matrix(model, lam, steady, response),
        _default_guesses(model) if guesses is None else guesses,
        valid,
    )


def discrete_eigenvalues(model: Any, guesses: Any = None) -> list[GCEPMode]:
    """Eigenvalues of the Jacobian of a discretised `SelkovCellBulk` at its steady
    state (with Im λ ≥ 0), exactly, through the m×m reduction

        [I + diag(c_v K(λ)/τ) + diag(c_u) W Zλ] q = 0,
        Zλ = ((1 + τλ) − DΔ_h)⁻¹ Wᵀ/areas,

    (q: the cells' exchange perturbations, W the spread/sample weights), found by
    Newton's method like `gcep`. Modes confined to the bulk (no cell involvement)
    are not found: they are all damped (Re λ ≤ −1/τ).
    """
    import jax
    import jax.numpy as jnp

    y = np.asarray(model.steady_state())
    grid = model.grid
    size, m = grid.size, model.n_cells
    v, w = y[size : size + m], y[size + m :]
    _, weights, _ = model._geo
    c_u, c_v = (np.asarray(c) for c in model._coefficients())
    p = _params(model)
    j22, tr, det = _cell_response(v, w, p)
    spread = jnp.asarray((weights / grid.areas).T + 0j)
    shifted = jax.jit(lambda a: grid.solve_shifted(a, p["D"], spread))

    def matrix(lam):
        K = (lam - j22) / (lam**2 - lam * tr + det)
        z = np.asarray(shifted(jnp.asarray(1.0 + p["tau"] * lam + 0j)))
        M = np.eye(m) + np.diag(c_v * K / p["tau"]) + c_u[:, None] * (weights @ z)
        return M, K

    return nonlinear_eigenvalues(
        matrix, _default_guesses(model) if guesses is None else guesses
    )


def _large_d_eigenvalues(model: Any) -> np.ndarray:
    from ._large_d import SelkovLargeD

    p = _params(model)
    ld = SelkovLargeD(
        centers=model.centers,
        D=p["D"],
        tau=p["tau"],
        eps=p["eps"],
        d1=p["d1"],
        d2=p["d2"],
        alpha=p["alpha"],
        mu=p["mu"],
        zeta=p["zeta"],
    )
    return np.linalg.eigvals(np.asarray(_steady_jacobian(ld)))


@eqx.filter_jit
def _steady_jacobian(model):
    y = model.steady_state()
    return jax.jacfwd(lambda u: model.vector_field(0.0, u, None))(y)
