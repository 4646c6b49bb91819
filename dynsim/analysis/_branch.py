"""Result types of continuation: branches of equilibria and of periodic orbits, and
the special points on them."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np

from .._protocol import AbstractResult, freeze_fields
from .._results import RunInfo

KINDS = (
    "fold",
    "hopf",
    "branch_point",
    "pitchfork",
    "transcritical",
    "cycle_fold",
    "period_doubling",
    "neimark_sacker",
    "user",
)
CRITICALITIES = ("", "supercritical", "subcritical", "degenerate")


@dataclasses.dataclass(frozen=True, eq=False)
class Bifurcation:
    """A located special point of a branch.

    - `kind`: one of `KINDS`; `value`: the parameter value; `y`: the state (for
      cycles, the orbit's initial point); `index`: it lies between points `index − 1`
      and `index` of its branch.
    - `frequency`: ω of a Hopf point or 2π/T of a point on a cycle branch (NaN
      otherwise); `period`: 2π/ω.
    - `kind` "user": the branch at a parameter value the caller asked for (`at`).
    - `coefficient`: the first Lyapunov coefficient l₁ (Hopf), the curvature
      d²p/ds² of the new branch (pitchfork), else NaN.
    - `criticality`: "supercritical", "subcritical", "degenerate" or "".
    - `eigenvalue`: the critical eigenvalue (Floquet multiplier for cycles).
    - `direction`: for branch points, the direction of the other branch in (y, p)
      (used by `switch_branch`); `note`: a remark (e.g. why a point is degenerate).
    """

    kind: str
    value: float
    y: np.ndarray
    index: int
    frequency: float = float("nan")
    coefficient: float = float("nan")
    criticality: str = ""
    eigenvalue: complex = complex("nan")
    direction: np.ndarray | None = None
    note: str = ""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown bifurcation kind {self.kind!r}")
        if self.criticality not in CRITICALITIES:
            raise ValueError(f"unknown criticality {self.criticality!r}")

    @property
    def label(self) -> str:
        """A short label for figures: LP, H, BP, PF, TC, LPC, PD."""
        return {
            "fold": "LP",
            "hopf": "H",
            "branch_point": "BP",
            "pitchfork": "PF",
            "transcritical": "TC",
            "cycle_fold": "LPC",
            "period_doubling": "PD",
            "neimark_sacker": "NS",
            "user": "UZ",
        }[self.kind]

    @property
    def period(self) -> float:
        """2π/ω: a Hopf point's period at birth, or the cycle's (NaN otherwise)."""
        return 2 * np.pi / self.frequency

    def __repr__(self) -> str:
        extra = f", {self.criticality}" if self.criticality else ""
        if self.kind == "hopf":
            extra += f", ω={self.frequency:.6g}, l1={self.coefficient:.4g}"
        return f"Bifurcation({self.kind} at {self.value:.10g}{extra})"

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["y"] = np.asarray(self.y).tolist()
        d["direction"] = None if self.direction is None else self.direction.tolist()
        d["eigenvalue"] = [self.eigenvalue.real, self.eigenvalue.imag]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Bifurcation:
        d = dict(d)
        if "param" in d:  # files of format version 1
            d["value"] = d.pop("param")
        d["y"] = np.asarray(d["y"])
        d["direction"] = None if d["direction"] is None else np.asarray(d["direction"])
        d["eigenvalue"] = complex(*d["eigenvalue"])
        return cls(**d)


#: Codimension-two points located on curves of Hopf points and folds.
CODIM2_KINDS = ("bogdanov_takens", "cusp", "bautin", "zero_hopf", "double_hopf")


@dataclasses.dataclass(frozen=True, eq=False)
class Codim2Point:
    """A located codimension-two point of a curve of Hopf points or folds.

    - `kind`: one of `CODIM2_KINDS`; `values`: the two parameters' values (in the
      curve's `params` order); `y`: the equilibrium; `index`: it lies between
      points `index − 1` and `index` of the curve.
    - `coefficients`: its normal-form coefficients (Kuznetsov, *Elements of Applied
      Bifurcation Theory*, 3rd ed.): Bogdanov–Takens `a` > 0, `b` (ẇ₀ = w₁,
      ẇ₁ = a w₀² + b w₀ w₁); cusp `c` (ẋ = c x³); Bautin `l1` (≈ 0 there) and the
      second Lyapunov coefficient `l2` (l₂ < 0: the cycles' fold curve leaves on the
      side l₁ > 0); `omega` where a Hopf frequency applies. `note`: a remark.
    """

    kind: str
    values: np.ndarray
    y: np.ndarray
    index: int
    coefficients: dict[str, float] = dataclasses.field(default_factory=dict)
    note: str = ""

    def __post_init__(self):
        if self.kind not in CODIM2_KINDS:
            raise ValueError(f"unknown codimension-two kind {self.kind!r}")

    @property
    def label(self) -> str:
        """BT, CP, GH, ZH or HH."""
        return {
            "bogdanov_takens": "BT",
            "cusp": "CP",
            "bautin": "GH",
            "zero_hopf": "ZH",
            "double_hopf": "HH",
        }[self.kind]

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["values"] = np.asarray(self.values).tolist()
        d["y"] = np.asarray(self.y).tolist()
        d["coefficients"] = {k: float(v) for k, v in self.coefficients.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Codim2Point:
        d = dict(d)
        d["values"], d["y"] = np.asarray(d["values"]), np.asarray(d["y"])
        return cls(**d)

    def __repr__(self) -> str:
        coefs = ", ".join(f"{k}={v:.4g}" for k, v in self.coefficients.items())
        at = ", ".join(f"{v:.8g}" for v in np.asarray(self.values))
        return f"Codim2Point({self.kind} at ({at}){', ' + coefs if coefs else ''})"


def _points_codec():
    return (
        lambda points: [b.to_dict() for b in points],
        lambda data: tuple(Bifurcation.from_dict(d) for d in data),
    )


class _Followed(AbstractResult):
    """What branches of equilibria and of cycles share: located points, a status."""

    param: str
    p: np.ndarray
    points: tuple[Bifurcation, ...]
    status: int

    codecs: ClassVar = {"points": _points_codec()}
    transient: ClassVar[tuple[str, ...]] = ("model",)

    def special(self, kind: str) -> list[Bifurcation]:
        return [b for b in self.points if b.kind == kind]

    def figures(self, **options):
        from ..plot import bifurcation_diagram

        return [("bifurcation", bifurcation_diagram(self))]

    def _describe(self, what: str) -> str:
        pts = ", ".join(f"{b.label}@{b.value:.6g}" for b in self.points)
        span = f"from {self.p[0]:.6g} to {self.p[-1]:.6g}, " if self.p.size else ""
        return (
            f"{type(self).__name__}({self.param} {span}{self.p.size} {what}, "
            f"[{pts}], {self.message!r})"
        )


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Branch(_Followed):
    """A branch of equilibria y(p) of `param`, point by point.

    - `p` (points,), `ys` (points, state); `eigenvalues` (points, k): the leading
      eigenvalues by decreasing real part (all of them for small dense systems);
      `n_unstable`: how many have a positive real part; `stable`.
    - `points`: the located `Bifurcation`s; `status`, `message`: how the
      continuation ended (a `dynsim.Status`: `SPAN_REACHED`, `CLOSED`,
      `TURNED_BACK`, `MAX_POINTS`, `STEP_TOO_SMALL`, `NO_CONVERGENCE`).
    - `model`: the model it was computed from (not stored in files).
    """

    param: str
    p: np.ndarray
    ys: np.ndarray
    eigenvalues: np.ndarray
    n_unstable: np.ndarray
    points: tuple[Bifurcation, ...]
    status: int
    message: str
    info: RunInfo
    model: Any = None

    kind: ClassVar[str] = "branch"
    dims: ClassVar = {
        "p": ("point",),
        "ys": ("point", "state"),
        "eigenvalues": ("point", "eigenvalue"),
        "n_unstable": ("point",),
    }

    def __post_init__(self):
        object.__setattr__(self, "status", int(self.status))
        object.__setattr__(self, "points", tuple(self.points))
        freeze_fields(self)

    @property
    def stable(self) -> np.ndarray:
        return self.n_unstable == 0

    def __repr__(self) -> str:
        return self._describe("points")


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class CycleBranch(_Followed):
    """A branch of periodic orbits of `param`.

    - `p`, `period` (points,); `x0` (points, state): a point on each orbit;
      `y_max`, `y_min` (points, state): each component's extremes over the orbit.
    - `multipliers` (points, state): Floquet multipliers, by decreasing modulus;
      `trivial_error`: |μ − 1| of the multiplier nearest 1 (an accuracy check);
      `stable`: all nontrivial multipliers inside the unit circle.
    - `points`, `status`, `message`, `info`, `model`: as for `Branch`.
    """

    param: str
    p: np.ndarray
    period: np.ndarray
    x0: np.ndarray
    y_max: np.ndarray
    y_min: np.ndarray
    multipliers: np.ndarray
    trivial_error: np.ndarray
    stable: np.ndarray
    points: tuple[Bifurcation, ...]
    status: int
    message: str
    info: RunInfo
    model: Any = None

    kind: ClassVar[str] = "cycle_branch"
    dims: ClassVar = {
        "p": ("point",),
        "period": ("point",),
        "x0": ("point", "state"),
        "y_max": ("point", "state"),
        "y_min": ("point", "state"),
        "multipliers": ("point", "multiplier"),
        "trivial_error": ("point",),
        "stable": ("point",),
    }

    def __post_init__(self):
        object.__setattr__(self, "status", int(self.status))
        object.__setattr__(self, "points", tuple(self.points))
        freeze_fields(self)

    @property
    def amplitude(self) -> np.ndarray:
        """(y_max − y_min)/2 per component."""
        return (self.y_max - self.y_min) / 2

    def __repr__(self) -> str:
        return self._describe("orbits")


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Curve(AbstractResult):
    """A curve of Hopf points, folds or folds of cycles in the plane of two
    parameters.

    - `bifurcation`: "hopf", "fold" or "cycle_fold"; `params`: the two names;
      `values` (points, 2); `ys` (points, state): the equilibrium along the curve
      (for folds of cycles, a point of the orbit); `frequency`: ω of the Hopf curve,
      2π/T of the folds of cycles (NaN for folds); `status`, `message`, `info`,
      `model`: as for `Branch`; `points`: the codimension-two points located on it
      (`Codim2Point`).
    """

    bifurcation: str
    params: tuple[str, str]
    values: np.ndarray
    ys: np.ndarray
    frequency: np.ndarray
    status: int
    message: str
    info: RunInfo
    points: tuple[Codim2Point, ...] = ()
    model: Any = None

    kind: ClassVar[str] = "curve"
    transient: ClassVar[tuple[str, ...]] = ("model",)
    codecs: ClassVar = {
        "points": (
            lambda points: [q.to_dict() for q in points],
            lambda data: tuple(Codim2Point.from_dict(d) for d in data),
        )
    }

    def special(self, kind: str) -> list[Codim2Point]:
        return [q for q in self.points if q.kind == kind]

    dims: ClassVar = {
        "values": ("point", "parameter"),
        "ys": ("point", "state"),
        "frequency": ("point",),
    }

    def __post_init__(self):
        object.__setattr__(self, "status", int(self.status))
        object.__setattr__(self, "params", tuple(self.params))
        object.__setattr__(self, "points", tuple(self.points))
        freeze_fields(self)

    def figures(self, **options):
        from ..plot import bifurcation_diagram

        return [("bifurcation", bifurcation_diagram(self))]

    def __repr__(self) -> str:
        return (
            f"Curve({self.bifurcation} in ({', '.join(self.params)}), "
            f"{len(self.values)} points, {self.message!r})"
        )
