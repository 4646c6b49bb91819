"""Stability phase diagrams of the Sel'kov cell–bulk models on a 2-D parameter grid."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from dynsim.models import describe, from_description, replace_parameters, selkov
from dynsim.models.selkov import SelkovCellBulk, SelkovLargeD, SelkovWellMixed
from dynsim.solvers import Status

from ..._custom_types import Span
from ..._observables import Amplitude, Function
from ..._protocol import AbstractResult, checked, freeze_fields
from ..._provenance import run_info
from ..._results import RunInfo
from ..._scan import scan

METHODS = ("gcep", "jacobian", "simulate")
CELLS = "m"
STABLE, IN_PHASE, ANTI_PHASE, FAILED = 0, 1, 2, 3
MODE_NAMES = {
    STABLE: "stable",
    IN_PHASE: "in-phase",
    ANTI_PHASE: "anti-phase",
    FAILED: "failed",
}


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class PhaseDiagram(AbstractResult):
    """Where the steady state is unstable on a grid of two parameters.

    - `x_name`, `x`, `y_name`, `y`: the grid axes (arrays are `(nx, ny)`-indexed).
    - `growth`: Re λ of the leading eigenvalue (NaN for `method="simulate"` or where
      no eigenvalue was found); `frequency`: its Im λ.
    - `mode`: 0 stable, 1 in-phase, 2 anti-phase (the leading unstable mode, or for
      simulations the observed oscillation), 3 failed (no eigenvalue found, or the
      simulation failed: never counted as stable).
    - `status`: a `dynsim.Status` per point (`NO_CONVERGENCE` where no eigenvalue
      was found, the solver's status where a simulation failed).
    - `amplitude`: oscillation amplitude of v₀ after the transient (simulations).
    - `method`: "gcep" (small-ε theory), "jacobian" (eigenvalues of the model's own
      Jacobian: the discretised PDE through its exact m×m reduction, or the ODE's
      dense Jacobian) or "simulate" (brute force).
    """

    x_name: str
    x: np.ndarray
    y_name: str
    y: np.ndarray
    growth: np.ndarray
    frequency: np.ndarray
    mode: np.ndarray
    amplitude: np.ndarray
    method: str
    info: RunInfo
    status: np.ndarray | None = None

    kind: ClassVar[str] = "phase_diagram"

    def field_dims(self, name: str) -> tuple[str, ...]:
        if name in ("x", "y"):
            return (self.x_name if name == "x" else self.y_name,)
        return (self.x_name, self.y_name)

    def __post_init__(self):
        if self.status is None:
            object.__setattr__(self, "status", np.zeros(np.shape(self.mode), np.int32))
        freeze_fields(self)
        shape = (self.x.size, self.y.size)
        for name in ("growth", "frequency", "mode", "amplitude", "status"):
            if getattr(self, name).shape != shape:
                raise ValueError(f"{name} must have shape {shape}")

    @property
    def unstable(self) -> np.ndarray:
        return (self.mode == IN_PHASE) | (self.mode == ANTI_PHASE)

    @property
    def message(self) -> str:
        return self.status_message

    def figures(self, **options):
        from ...plot import phase_diagram

        return [(f"phase_{self.method}", phase_diagram(self))]

    def __repr__(self) -> str:
        counts = {MODE_NAMES[k]: int(np.sum(self.mode == k)) for k in MODE_NAMES}
        model = self.info.model.rsplit(".", 1)[-1]
        return (
            f"PhaseDiagram({model}, {self.method}, {self.x_name} x {self.y_name} "
            f"[{self.x.size}x{self.y.size}]; "
            + ", ".join(f"{k}={v}" for k, v in counts.items())
            + ")"
        )


def _kind(lam: complex, mode_kind: str) -> int:
    if lam.real <= 0:
        return STABLE
    return IN_PHASE if mode_kind == "in-phase" else ANTI_PHASE


def _cell_indices(model) -> np.ndarray:
    names = model.state_names
    m = model.n_cells
    return np.array([names.index(f"v{j}") for j in range(m)])


def _dense_modes(model) -> list[selkov.GCEPMode]:
    """Eigenvalues of a small ODE model's Jacobian at its steady state, with the
    cells' v-components of each eigenvector as the mode's amplitudes."""
    ev, vec = np.linalg.eig(np.asarray(selkov._gcep._steady_jacobian(model)))
    idx = _cell_indices(model)
    modes = []
    for i in np.argsort(-ev.real):
        if ev[i].imag < 0:
            continue
        amp = vec[idx, i]
        amp = amp / amp[np.argmax(np.abs(amp))]
        big = np.abs(amp) > 1e-3
        ph = np.angle(amp[big])
        spread = np.max(np.abs(np.angle(np.exp(1j * (ph[:, None] - ph[None])))))
        kind = "in-phase" if spread < np.pi / 2 else "anti-phase"
        modes.append(selkov.GCEPMode(complex(ev[i]), vec[:, i], amp, kind))
    return modes


def ring(m: int, radius: float) -> tuple[tuple[float, float], ...]:
    """m cell centres equally spaced on a circle of the given radius (the first on
    the positive x-axis)."""
    angles = 2 * np.pi * np.arange(m) / m
    return tuple((radius * np.cos(a), radius * np.sin(a)) for a in angles)


def with_cells(model: Any, m: int, ring_radius: float = 0.5) -> Any:
    """The same model with m identical cells: on a ring of radius `ring_radius` for
    models with `centers`, or `n_cells = m` for the well-mixed model."""
    if m != int(m) or m < 1:
        raise ValueError(f"the number of cells must be a positive integer, got {m}")
    desc = describe(model)
    static = desc.get("static", {})
    if "centers" in static:
        static["centers"] = ring(int(m), ring_radius)
    elif "n_cells" in static:
        static["n_cells"] = int(m)
    else:
        raise ValueError(
            f"{type(model).__name__} has no cells to count; parameter {CELLS!r} "
            "needs a model with `centers` or `n_cells`"
        )
    per_cell = [k for k, v in desc["params"].items() if np.ndim(v) > 0]
    if per_cell:
        raise ValueError(
            f"parameters {per_cell} differ between cells; a grid over {CELLS!r} "
            "needs identical cells (scalar parameters)"
        )
    return from_description(desc)


def _eigen_method(model, method: str, previous):
    if method == "jacobian" and not isinstance(model, SelkovCellBulk):
        return _dense_modes(model)
    # Newton from the large-D model's eigenvalues and the previous point's roots.
    guesses = selkov._gcep._default_guesses(model) + list(previous)
    if method == "gcep":
        return selkov.gcep(model, guesses)
    return selkov.discrete_eigenvalues(model, guesses)


def phase_diagram(
    model: SelkovCellBulk | SelkovLargeD | SelkovWellMixed,
    params: Mapping[str, Sequence[float]],
    *,
    method: str = "gcep",
    t_span: Span = (0.0, 600.0),
    t_from: float = 400.0,
    threshold: float = 1e-3,
    solver: str | None = None,
    rtol: float = 1e-6,
    atol: float = 1e-9,
    max_steps: int = 100_000,
    ring_radius: float = 0.5,
    progress: bool | None = None,
    config: str | None = None,
    throw: bool = False,
) -> PhaseDiagram:
    """The stability of the steady state of a Sel'kov cell–bulk model over a grid of
    two parameters (e.g. `{"D": Ds, "tau": taus}`).

    **Arguments:**

    - `model`: `SelkovLargeD`, `SelkovCellBulk` (GCEP: unit disk) or, for "jacobian"
      and "simulate", any model with cells named `v0`, `v1`, … and a
      `steady_state()`.
    - `params`: exactly two parameters and their values. The name `"m"` stands for
      the number of identical cells, placed equally spaced on a ring of radius
      `ring_radius` (an (m, τ) diagram); the model's other settings are kept.
    - `method`: "gcep", "jacobian" or "simulate" (see `PhaseDiagram`). The GCEP and
      the PDE's eigenvalues are found by Newton's method from the large-D ODE's
      eigenvalues and the previous grid point's roots.
    - `t_span`, `t_from`, `threshold`, `solver`, `rtol`, `atol`, `max_steps`: the
      brute-force
      simulation (sustained oscillation = amplitude of v₀ over [t_from, t1] above
      `threshold` and, over the window's last quarter, at least 80 % of it; in phase
      when every pair of cells correlates positively).

    `throw=True` raises `RuntimeError` (with the `message`) instead of returning a
    result that is not `ok`.

    **Returns:** a `PhaseDiagram`.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
    if len(params) != 2:
        raise ValueError("a phase diagram needs exactly two parameters")
    (x_name, xs), (y_name, ys) = ((k, np.asarray(v, float)) for k, v in params.items())
    if y_name == CELLS:
        # Count cells along x internally; transpose back at the end.
        flipped = phase_diagram(
            model,
            {y_name: ys, x_name: xs},
            method=method,
            t_span=t_span,
            t_from=t_from,
            threshold=threshold,
            solver=solver,
            rtol=rtol,
            atol=atol,
            max_steps=max_steps,
            ring_radius=ring_radius,
            progress=progress,
            config=config,
        )
        transposed = PhaseDiagram(
            x_name,
            xs,
            y_name,
            ys,
            *(getattr(flipped, k).T for k in ("growth", "frequency", "mode")),
            flipped.amplitude.T,
            method,
            flipped.info,
            flipped.status.T,
        )
        return checked(transposed, throw)
    shape = (xs.size, ys.size)
    growth = np.full(shape, np.nan)
    freq = np.full(shape, np.nan)
    amp = np.full(shape, np.nan)
    mode = np.zeros(shape, dtype=np.int8)
    status = np.zeros(shape, dtype=np.int32)

    def model_at(x):
        return with_cells(model, x, ring_radius) if x_name == CELLS else model

    if method == "simulate":
        sim = dict(
            t_span=t_span,
            t_from=t_from,
            solver=solver,
            rtol=rtol,
            atol=atol,
            max_steps=max_steps,
        )
        if x_name == CELLS:
            for i, xv in enumerate(xs):
                amp[i], mode[i], status[i] = _simulate(
                    model_at(xv), {y_name: ys}, threshold, progress, **sim
                )
        else:
            amp, mode, status = _simulate(
                model, {x_name: xs, y_name: ys}, threshold, progress, **sim
            )
    else:
        total = xs.size * ys.size
        with tqdm(
            total=total,
            disable=not (progress if progress is not None else total > 20),
            desc=method,
            unit="pt",
            leave=False,
        ) as bar:
            for i, xv in enumerate(xs):
                guesses: list[complex] = []
                base = model_at(xv)
                for j, yv in enumerate(ys):
                    values = (
                        {y_name: yv} if x_name == CELLS else {x_name: xv, y_name: yv}
                    )
                    point = replace_parameters(base, values)
                    modes = _eigen_method(point, method, guesses)
                    if modes:
                        lead = modes[0]
                        growth[i, j], freq[i, j] = lead.lam.real, lead.lam.imag
                        mode[i, j] = _kind(lead.lam, lead.kind)
                        guesses = [md.lam for md in modes[:4]]
                    else:  # no eigenvalue found: not known to be stable
                        mode[i, j] = FAILED
                        status[i, j] = Status.NO_CONVERGENCE
                    bar.update(1)
    info = run_info(model, tuple(model.state_names), solver=method, config=config)
    return checked(
        PhaseDiagram(
            x_name, xs, y_name, ys, growth, freq, mode, amp, method, info, status
        ),
        throw,
    )


def _simulate(
    model, grid, threshold, progress, *, t_span, t_from, solver, rtol, atol, max_steps
):
    """Brute force over a grid: (amplitude, mode, status) arrays of the grid's
    shape."""
    idx = _cell_indices(model)

    def sync(ts, ys_flat):
        v = ys_flat[:, idx]
        keep = (ts >= t_from)[:, None]
        mean = jnp.sum(jnp.where(keep, v, 0.0), 0) / jnp.sum(keep)
        dev = jnp.where(keep, v - mean, 0.0)
        cov = dev.T @ dev
        norm = jnp.sqrt(jnp.diag(cov))
        corr = cov / (norm[:, None] * norm[None, :] + 1e-300)
        return jnp.min(corr)

    late_from = t_from + 0.75 * (t_span[1] - t_from)
    obs = {
        "amplitude": Amplitude(state=int(idx[0]), t_from=t_from),
        "late_amplitude": Amplitude(state=int(idx[0]), t_from=late_from),
        "sync": Function(sync),
    }
    if solver is None:
        solver = "kencarp4" if isinstance(model, SelkovCellBulk) else "tsit5"
    res = scan(
        model,
        grid,
        t_span,
        observables=obs,
        samples=2000,
        solver=solver,
        rtol=rtol,
        atol=atol,
        max_steps=max_steps,
        progress=progress,
    )
    amp = res.reshape(res.values["amplitude"])
    late = res.reshape(res.values["late_amplitude"])
    sync = res.reshape(res.values["sync"])
    # Sustained: above the threshold and not decaying across the window (a slowly
    # damped oscillation near a Hopf point is not counted).
    sustained = (amp > threshold) & (late > 0.8 * amp)
    mode = np.where(sustained, np.where(sync > 0, IN_PHASE, ANTI_PHASE), STABLE)
    failed = ~res.reshape(res.ok_mask)
    mode[failed] = FAILED  # a failed solve says nothing about stability
    return amp, mode.astype(np.int8), res.reshape(res.status)
