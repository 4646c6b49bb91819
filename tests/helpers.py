"""Small models with closed-form solutions, written as a user would write them."""

from typing import ClassVar

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

import dynsim as ds
from dynsim.models import param


class ExpSin(ds.AbstractModel):
    """y' = k cos(t) y, so y(t) = y0 exp(k sin t)."""

    k: Float[Array, ""] = param(1.0)
    state_names: ClassVar[tuple[str, ...]] = ("y",)

    def vector_field(self, t, y, args):
        return self.k * jnp.cos(t) * y

    def initial_state(self):
        return jnp.array([1.0])

    def exact(self, t):
        return jnp.exp(self.k * jnp.sin(t))


class BlowUp(ds.AbstractModel):
    """x' = a x² from x(0) = 1: x(t) = 1/(1 − a t), infinite at t = 1/a."""

    a: Float[Array, ""] = param(1.0)
    state_names: ClassVar[tuple[str, ...]] = ("x",)

    def vector_field(self, t, y, args):
        return self.a * y**2

    def initial_state(self):
        return jnp.array([1.0])


class Decay(ds.AbstractModel):
    """y' = −k y: y(t) = y0 e^{−k t}."""

    k: Float[Array, ""] = param(1.0)
    state_names: ClassVar[tuple[str, ...]] = ("y",)

    def vector_field(self, t, y, args):
        return -self.k * y

    def initial_state(self):
        return jnp.array([1.0])


def drawn_lines(fig) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """Every line of a figure: (x, y, label), over all its axes."""
    return [
        (
            np.asarray(ln.get_xdata(), float),
            np.asarray(ln.get_ydata(), float),
            ln.get_label(),
        )
        for ax in fig.axes
        for ln in ax.get_lines()
    ]


def has_line(fig, y, x=None) -> bool:
    """Whether some line of `fig` plots exactly `y` (against `x`, if given)."""
    y = np.asarray(y, float)
    return any(
        ly.shape == y.shape
        and np.allclose(ly, y, equal_nan=True)
        and (x is None or np.allclose(lx, np.asarray(x, float), equal_nan=True))
        for lx, ly, _ in drawn_lines(fig)
    )


def covers(fig, x, y) -> bool:
    """Whether every point (x_i, y_i) lies on some line of `fig` (branches drawn in
    stable and unstable pieces)."""
    pts = [np.column_stack([lx, ly]) for lx, ly, _ in drawn_lines(fig) if lx.size]
    drawn = np.concatenate(pts)
    want = np.column_stack([np.asarray(x, float), np.asarray(y, float)])
    return all(
        np.any(np.all(np.isclose(drawn, p, rtol=0, atol=1e-12), axis=1)) for p in want
    )


class Bautin(ds.AbstractModel):
    """ż = (μ + iω)z + β z|z|² − z|z|⁴ in Cartesian form (r' = μr + βr³ − r⁵,
    θ' = ω): Hopf points on μ = 0 with l₁ = 2β/ω (for ż = (μ + iω)z + (a + ib)|z|²z,
    l₁ = 2a/ω; Kuznetsov 2004, §3.5), a Bautin point at μ = β = 0; for β > 0 the
    Hopf point is subcritical and its cycles (μ + βr² − r⁴ = 0) turn in a fold of
    cycles at μ = −β²/4, r² = β/2 (closed form)."""

    mu: Float[Array, ""] = param(-0.5)
    beta: Float[Array, ""] = param(1.0)
    omega: Float[Array, ""] = param(1.0)
    state_names: ClassVar[tuple[str, ...]] = ("x", "y")

    def vector_field(self, t, y, args):
        x, v = y
        r2 = x**2 + v**2
        g = self.mu + self.beta * r2 - r2**2
        return jnp.stack([g * x - self.omega * v, g * v + self.omega * x])

    def initial_state(self):
        return jnp.zeros(2)
