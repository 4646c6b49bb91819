"""The uncertainty exponent of a basin boundary: final-state sensitivity, and the
boundary's dimension (Grebogi, McDonald, Ott & Yorke, Phys. Lett. A 99 (1983) 415;
McDonald, Grebogi, Ott & Yorke, Physica D 17 (1985) 125).

A start is ε-uncertain when it and a start ε away reach different attractors. The
fraction f(ε) of uncertain starts in a region scales as ε^α with α = D − d (D the
region's dimension, d the box-counting dimension of the basin boundary in it): α = 1
for a smooth boundary, α < 1 for a fractal one, whose final state stays uncertain
(ten times smaller errors leave 10^−α of the uncertain starts, not a tenth).

Method: N random starts uniform in the region, and for each ε a partner at
x + ε s∘u (u a random unit vector, s the region's spans: ε is relative to the
region). All (1 + #ε) N runs are one scan (`basins`' runs, labelled as there); a
pair counts when both runs converged to an attractor. f(ε) = uncertain / counted with
its binomial standard error, and α is the slope of log f against log ε, by least
squares weighted by the counts (var log f ≈ (1 − f)/(n f)).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import ClassVar

import numpy as np

from .._custom_types import FlowOrMap
from .._protocol import AbstractResult, checked, freeze_fields
from .._results import RunInfo
from ._basins import _checked_names, classify, run_starts, summary


@dataclasses.dataclass(frozen=True, eq=False)
class UncertaintyExponent(AbstractResult):
    """The uncertain fraction of a region's starts against the perturbation ε.

    - `eps` (eps,): the perturbations (relative to the region's spans);
      `uncertain`, `stderr` (eps,): the fraction of counted pairs whose runs reach
      different attractors and its standard error; `pairs` (eps,): the pairs
      counted (both runs converged).
    - `alpha`, `alpha_stderr`: the fitted exponent f ∝ ε^α and its standard error
      (NaN without uncertain pairs at two ε at least); `dimension`: the boundary's
      box-counting dimension in the region, D − α.
    - `region`: state name -> (low, high); `status` (1 + eps, starts): the runs'
      (row 0 the starts, row i their partners at `eps[i − 1]`); `message`, `info`.
    """

    eps: np.ndarray
    uncertain: np.ndarray
    stderr: np.ndarray
    pairs: np.ndarray
    alpha: float
    alpha_stderr: float
    dimension: float
    region: Mapping[str, np.ndarray]
    status: np.ndarray
    message: str
    info: RunInfo

    kind: ClassVar[str] = "uncertainty_exponent"
    dims: ClassVar = {
        "eps": ("eps",),
        "uncertain": ("eps",),
        "stderr": ("eps",),
        "pairs": ("eps",),
        "region": ("bound",),
        "status": ("offset", "start"),
    }

    def __post_init__(self):
        freeze_fields(self)

    def fitted(self, eps) -> np.ndarray:
        """The fitted power law f(ε) = c ε^α at `eps` (NaN when `alpha` is)."""
        _, _, c = power_law(self.eps, self.uncertain, self.pairs)
        return np.exp(c + self.alpha * np.log(np.asarray(eps, float)))

    def figures(self, **options):
        from ..plot import uncertainty

        return [("uncertainty", uncertainty(self, **options))]

    def __repr__(self) -> str:
        return (
            f"UncertaintyExponent(alpha={self.alpha:.4f} ± {self.alpha_stderr:.4f}, "
            f"dimension={self.dimension:.4f}, {self.message!r})"
        )


def uncertainty_exponent(
    model: FlowOrMap,
    region: Mapping[str, tuple[float, float]],
    t_span: tuple[float, float],
    *,
    eps: Sequence[float] = (1e-2, 1e-3, 1e-4, 1e-5),
    n_starts: int = 10_000,
    seed: int = 0,
    tol: float = 1e-2,
    solver: str | None = None,
    rtol: float = 1e-6,
    atol: float = 1e-9,
    max_steps: int = 100_000,
    chunk_size: int | None = None,
    progress: bool | None = None,
    throw: bool = False,
) -> UncertaintyExponent:
    """The uncertainty exponent α of the basin boundary of `model` in `region`
    (state name -> (low, high); the other components start from
    `model.initial_state()`), from `n_starts` random starts and their partners at
    each of `eps` (module docstring). `tol` and the solve options are `basins`';
    the smallest ε must stay well above the solve's error relative to the region.

    **Returns:** an `UncertaintyExponent`; `throw=True` raises `RuntimeError` if a
    run failed.

    **Raises:** `ValueError` for unknown state names, an empty region, ε outside
    (0, 1) or fewer than 2 of them, fewer than 10 starts.
    """
    names = _checked_names(model, region, tol, what="region")
    bounds = np.array([[float(v) for v in region[n]] for n in names])
    if bounds.shape != (len(names), 2) or not np.all(bounds[:, 1] > bounds[:, 0]):
        raise ValueError(f"region must map state names to (low, high), got {region}")
    eps = np.sort(np.atleast_1d(np.asarray(eps, float)))[::-1]
    if eps.ndim != 1 or eps.size < 2 or not np.all((eps > 0) & (eps < 1)):
        raise ValueError(f"eps must hold at least 2 values in (0, 1), got {eps}")
    if n_starts < 10:
        raise ValueError(f"n_starts must be >= 10, got {n_starts}")
    rng = np.random.default_rng(seed)
    span = bounds[:, 1] - bounds[:, 0]
    base = bounds[:, 0] + span * rng.random((n_starts, len(names)))
    u = rng.normal(size=(n_starts, len(names)))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    starts = np.concatenate([base] + [base + e * span * u for e in eps])
    runs = run_starts(
        model, {f"start_{k}": starts[:, k] for k in range(len(names))}, names,
        t_span, grid=False, solver=solver, rtol=rtol, atol=atol,
        max_steps=max_steps, chunk_size=chunk_size, progress=progress,
    )  # fmt: skip
    labels, _ = classify(runs, np.ones(runs.ok.size, bool), tol * runs.size())
    labels = labels.reshape(1 + eps.size, n_starts)
    counted = (labels[0] > 0) & (labels[1:] > 0)
    pairs = counted.sum(axis=1)
    differ = (counted & (labels[1:] != labels[0])).sum(axis=1)
    f = differ / np.maximum(pairs, 1)
    stderr = np.sqrt(f * (1 - f) / np.maximum(pairs, 1))
    alpha, alpha_err, _ = power_law(eps, f, pairs)
    message = _summary(alpha, differ, labels)
    result = UncertaintyExponent(
        eps=eps,
        uncertain=f,
        stderr=stderr,
        pairs=pairs,
        alpha=alpha,
        alpha_stderr=alpha_err,
        dimension=len(names) - alpha,
        region={n: bounds[k] for k, n in enumerate(names)},
        status=runs.status.reshape(1 + eps.size, n_starts),
        message=message,
        info=runs.info,
    )
    return checked(result, throw)


def power_law(eps, f, pairs) -> tuple[float, float, float]:
    """The weighted least-squares fit log f = c + α log ε over the points with
    0 < f < 1 (weights: the inverse variances n f/(1 − f) of log f): α, its
    standard error and c (NaN with fewer than 2 points)."""
    eps, f, pairs = (np.asarray(a, float) for a in (eps, f, pairs))
    use = (f > 0) & (f < 1)
    if use.sum() < 2:
        return float("nan"), float("nan"), float("nan")
    x, y = np.log(eps[use]), np.log(f[use])
    w = pairs[use] * f[use] / (1 - f[use])
    design = np.stack([np.ones_like(x), x], axis=1)
    cov = np.linalg.inv(design.T @ (w[:, None] * design))
    coef = cov @ design.T @ (w * y)
    return float(coef[1]), float(np.sqrt(cov[1, 1])), float(coef[0])


def _summary(alpha: float, differ: np.ndarray, labels: np.ndarray) -> str:
    if np.isnan(alpha):
        fit = (f"uncertain pairs at {int(np.sum(differ > 0))} eps: too few for a "
               "slope (no boundary in the region?)")  # fmt: skip
    else:
        fit = f"alpha = {alpha:.4f}"
    return f"{fit}; {summary(labels.ravel(), int(labels.max(initial=0)))}"
