"""The two cycle problems the arclength engine follows: shooting (`Cycles`) and
orthogonal collocation (`CollocationCycles`), and the tests both monitor along a
branch (multipliers, folds of cycles, period doublings, Neimark–Sacker points, and
the signs of a step that landed on another solution)."""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from dynsim import solvers
from dynsim.models import AbstractModel, replace_parameters
from dynsim.solvers import SaveSpec

from .._checks import options_for
from ._branch import Bifurcation
from ._collocation import Collocation
from ._linalg import field

#: A corrected orbit smaller than this fraction of the previous one has collapsed
#: onto the equilibrium (a constant solves the collocation equations for any T).
COLLAPSE = 1e-2
#: The trivial multiplier's largest error before a step counts as a jump.
TRIVIAL_TOLERANCE = 1e-3
#: The largest factor of change of the period in one step.
PERIOD_JUMP = 1.5
#: Accepted points between two adaptations of a collocation mesh (AUTO's IAD).
ADAPT_EVERY = 3


class _CycleTests:
    """What both cycle problems monitor along a branch: multipliers (by decreasing
    modulus), the trivial multiplier's error, stability, the orbit's extremes, and
    the test functions of folds of cycles, period doublings (a real multiplier
    through −1) and Neimark–Sacker points (a complex pair through the unit circle).
    A problem gives `multipliers(X)`, `orbit(X)` and `x0_period(X)`.

    A step is too coarse (and halved) where more than one of these happens in it,
    and where its corrector landed on a different solution: the trivial multiplier
    off by more than `TRIVIAL_TOLERANCE` (from a point where it was not), or the
    period changing by more than a factor `PERIOD_JUMP`."""

    def monitor(self, X, t):
        mu = self.multipliers(X)
        trivial = int(np.argmin(np.abs(mu - 1.0)))
        others = np.delete(mu, trivial)
        is_real = np.abs(others.imag) <= 1e-8 * max(
            1.0, np.max(np.abs(others), initial=0)
        )
        real, pairs = others[is_real], others[~is_real]
        pd = real[np.argmin(np.abs(real + 1.0))].real + 1.0 if real.size else np.nan
        torus = torus_multiplier(pairs)
        orbit = self.orbit(X)
        x0, period = self.x0_period(X)
        record = {
            "multipliers": mu,
            "trivial_error": float(abs(mu[trivial] - 1.0)),
            "stable": bool(np.all(np.abs(others) < 1.0)),
            "n_below": int(np.sum(real.real < -1.0)),
            "n_outside": int(np.sum(np.abs(pairs) > 1.0)),
            "y_max": orbit.max(0),
            "y_min": orbit.min(0),
            "x0": x0,
            "period": period,
        }
        tests = {"fold": float(t[-1]), "pd": float(pd), "ns": abs(torus) - 1.0}
        return tests, record

    def remember_size(self, X):
        """The size of the orbit X (the largest peak-to-peak of a component), the
        reference of `valid`."""
        self._size = float(np.ptp(self.orbit(X), axis=0).max())

    def valid(self, X):
        """Not collapsed onto an equilibrium (which solves the cycle equations for
        any period): at least `COLLAPSE` times the size of the previous orbit (or
        of the start)."""
        return bool(np.ptp(self.orbit(X), axis=0).max() > COLLAPSE * self._size)

    def crossings(self, a, b):
        names = []
        if a.tests["fold"] * b.tests["fold"] < 0:
            names.append("fold")
        d_pd = b.record["n_below"] - a.record["n_below"]
        if d_pd != 0 and a.tests["pd"] * b.tests["pd"] < 0:
            names.append("pd")
        d_ns = b.record["n_outside"] - a.record["n_outside"]
        if d_ns != 0 and a.tests["ns"] * b.tests["ns"] < 0:
            names.append("ns")
        jumped = (
            b.record["trivial_error"] > TRIVIAL_TOLERANCE >= a.record["trivial_error"]
        ) or not (
            1 / PERIOD_JUMP <= b.record["period"] / a.record["period"] <= PERIOD_JUMP
        )
        return names, jumped or abs(d_pd) > 1 or abs(d_ns) > 2 or len(names) > 1


def torus_multiplier(pairs: np.ndarray) -> complex:
    """Of complex multipliers, the one (Im > 0) nearest the unit circle."""
    upper = pairs[pairs.imag > 0]
    if not upper.size:
        return complex("nan")
    return complex(upper[np.argmin(np.abs(np.abs(upper) - 1.0))])


def merged(points: list[Bifurcation]) -> list[Bifurcation]:
    """Special points without duplicates (one point located twice, from both sides
    of a step)."""
    out: list[Bifurcation] = []
    for q in points:
        same = [
            o
            for o in out
            if o.kind == q.kind
            and abs(o.value - q.value) <= 1e-8 * (1 + abs(q.value))
            and abs(o.period - q.period) <= 1e-6 * q.period
        ]
        if not same:
            out.append(q)
    return out


class Cycles(_CycleTests):
    """The shooting problem for `follow`: X = (x₀, T, p)."""

    def __init__(self, model, param, *, solver, rtol, atol, samples, max_steps):
        self.model, self.param = model, param
        self.opts = options_for(
            model, solver=solver, rtol=rtol, atol=atol, max_steps=max_steps
        )
        self.ts = jnp.linspace(0.0, 1.0, samples)
        self.x_ref: np.ndarray | None = None
        self.v_ref: np.ndarray | None = None
        self._cache: tuple[bytes, np.ndarray] | None = None

    def orbit(self, X):
        """The orbit through x₀ over one period, at `samples` times."""
        return np.asarray(
            orbit(self.model, (self.param,), jnp.asarray(X), self.ts, self.opts)
        )

    def residual(self, X):
        return np.asarray(self._residual(X))

    def _args(self, X):
        return (self.model, self.param, jnp.asarray(X), jnp.asarray(self.x_ref),
                jnp.asarray(self.v_ref), self.opts)  # fmt: skip

    def _residual(self, X):
        return _shoot(*self._args(X))

    def jacobian(self, X):
        key = X.tobytes() + self.x_ref.tobytes()
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, np.asarray(_shoot_jacobian(*self._args(X))))
        return self._cache[1]

    def multipliers(self, X):
        n = X.size - 2
        monodromy = self.jacobian(X)[:n, :n] + np.eye(n)
        mu = np.linalg.eigvals(monodromy)
        return mu[np.argsort(-np.abs(mu))]

    def x0_period(self, X):
        return X[:-2].copy(), float(X[-2])

    def accept(self, X):
        n = X.size - 2
        self.x_ref = X[:n].copy()
        p_model = replace_parameters(self.model, {self.param: X[-1]})
        v = field(p_model, self.x_ref)
        self.v_ref = v / np.linalg.norm(v)
        self.remember_size(X)


class CollocationCycles(Collocation, _CycleTests):
    """The collocation problem (`Collocation`) for `follow`, its mesh adapted every
    `ADAPT_EVERY` accepted points."""

    def x0_period(self, X):
        U, T, _ = self.split(X)
        return U[0].copy(), T

    def accept(self, X):
        super().accept(X)
        self.remember_size(X)
        self._accepted = getattr(self, "_accepted", 0) + 1

    def adapt(self, point):
        if self._accepted % ADAPT_EVERY:
            return None
        X, t = self.remeshed(point.X, point.tangent)
        return dataclasses.replace(point, X=X, tangent=t)


class _Rescaled(AbstractModel):
    """`base` at parameters `params` = `values`, in the time of one period: τ = t/T,
    dx/dτ = T f(x). A model like any other, solved through its problem."""

    base: AbstractModel
    params: tuple[str, ...] = eqx.field(static=True)
    period: jax.Array
    values: jax.Array

    @property
    def state_names(self) -> tuple[str, ...]:
        return self.base.state_names

    def vector_field(self, t, u, args):
        values = {name: self.values[i] for i, name in enumerate(self.params)}
        at = replace_parameters(self.base, values)
        return self.period * at.vector_field(t, u, args)

    def initial_state(self):
        return self.base.initial_state()


def over_one_period(model, params, X, opts):
    """The solve over one period of X = (x₀, T, values of `params`)."""
    n = X.size - 1 - len(params)
    problem = _Rescaled(model, params, X[n], X[n + 1 :]).problem()
    return solvers.integrate(problem, X[:n], 0.0, 1.0, None, options=opts)


@eqx.filter_jit
def orbit(model, params, X, ts, opts):
    """The orbit of X = (x₀, T, values of `params`) at the times ts ⊂ [0, 1]."""
    opts = dataclasses.replace(opts, saveat=SaveSpec(ts=ts))
    return over_one_period(model, params, X, opts).ys


@eqx.filter_jit
def _shoot(model, param, X, x_ref, v_ref, opts):
    return shooting_residual(model, (param,), X, x_ref, v_ref, opts)


def shooting_residual(model, params, X, x_ref, v_ref, opts):
    """φ_T(x₀) − x₀ (NaN where the solve failed) and the phase condition
    ⟨v_ref, x₀ − x_ref⟩, at X = (x₀, T, values of `params`)."""
    n = X.size - 1 - len(params)
    sol = over_one_period(model, params, X, opts)
    end = jnp.where(sol.status == 0, sol.ys[-1], jnp.nan)
    return jnp.append(end - X[:n], v_ref @ (X[:n] - x_ref))


@eqx.filter_jit
def _shoot_jacobian(model, param, X, x_ref, v_ref, opts):
    return jax.jacfwd(lambda Z: _shoot(model, param, Z, x_ref, v_ref, opts))(X)
