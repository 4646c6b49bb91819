"""Learning as a dynamical system: gradient flow on the weights of deep linear
networks (Saxe, McClelland & Ganguli, ICLR 2014; `MODELS.md` §5)."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ._base import AbstractModel, param


class DeepLinearGradientFlow(AbstractModel):
    """Gradient flow τ Ẇ_l = −∂E/∂W_l of a deep linear network y = W_L ⋯ W₁ x on
    E = ½ tr(W Σ₁₁ Wᵀ) − tr(Σ₃₁ᵀ W), W = W_L ⋯ W₁ (the mean squared error up to a
    constant), i.e. τ Ẇ_l = (W_L ⋯ W_{l+1})ᵀ (Σ₃₁ − W Σ₁₁)(W_{l−1} ⋯ W₁)ᵀ; the
    gradients by JAX autodiff.

    The state is the weights, flattened layer by layer (`weights(y)` unflattens
    them); `widths` = (inputs, hidden…, outputs). `sigma11`: the input correlation,
    a matrix or a scalar times the identity (default 1: whitened inputs).

    Closed forms (two layers, Σ₁₁ = I, Σ₃₁ = U S Vᵀ, balanced aligned start
    W₁ = √u₀ Vᵀ, W₂ = U √u₀): every mode strength obeys τ u̇ = 2u(s − u), so
    u(t) = s e^{2st/τ} / (e^{2st/τ} − 1 + s/u₀); W₁W₁ᵀ − W₂ᵀW₂ is conserved along
    every trajectory (and W_{l+1}ᵀW_{l+1} − W_l W_lᵀ for deeper networks).
    """

    sigma31: Float[Array, "out inp"] = param()
    sigma11: Float[Array, "*inp"] = param(1.0)
    tau: Float[Array, ""] = param(1.0)
    widths: tuple[int, ...] = eqx.field(static=True, default=())
    init_scale: float = eqx.field(static=True, default=1e-3)
    seed: int = eqx.field(static=True, default=0)

    def __check_init__(self):
        out, inp = jnp.shape(self.sigma31)
        if len(self.widths) < 3:
            raise ValueError(
                "widths must list inputs, at least one hidden width and outputs, "
                f"got {self.widths}"
            )
        if (self.widths[0], self.widths[-1]) != (inp, out):
            raise ValueError(
                f"widths {self.widths} do not match sigma31 of shape {(out, inp)} "
                "(outputs x inputs)"
            )
        if jnp.ndim(self.sigma11) != 0 and jnp.shape(self.sigma11) != (inp, inp):
            raise ValueError(
                f"sigma11 must be a scalar (times the identity) or {inp} x {inp}, "
                f"got shape {jnp.shape(self.sigma11)}"
            )

    @property
    def shapes(self) -> tuple[tuple[int, int], ...]:
        """(rows, columns) of W₁ … W_L."""
        w = self.widths
        return tuple((w[i + 1], w[i]) for i in range(len(w) - 1))

    @property
    def state_names(self) -> tuple[str, ...]:
        return tuple(
            f"W{layer + 1}[{i},{j}]"
            for layer, (r, c) in enumerate(self.shapes)
            for i in range(r)
            for j in range(c)
        )

    def weights(self, y) -> list[Array]:
        """The layers W₁ … W_L of a flattened state (or of many: (..., size))."""
        y = jnp.asarray(y)
        out, start = [], 0
        for r, c in self.shapes:
            out.append(y[..., start : start + r * c].reshape(*y.shape[:-1], r, c))
            start += r * c
        return out

    @staticmethod
    def flatten(weights) -> Array:
        """The state of the layers W₁ … W_L."""
        return jnp.concatenate([jnp.ravel(w) for w in weights])

    def product(self, y) -> Array:
        """W = W_L ⋯ W₁, the network's input–output map."""
        ws = self.weights(y)
        total = ws[0]
        for w in ws[1:]:
            total = w @ total
        return total

    def energy(self, y) -> Array:
        """E(W) = ½ tr(W Σ₁₁ Wᵀ) − tr(Σ₃₁ᵀ W)."""
        w = self.product(y)
        s11 = (
            self.sigma11 * jnp.eye(w.shape[1])
            if jnp.ndim(self.sigma11) == 0
            else self.sigma11
        )
        return 0.5 * jnp.trace(w @ s11 @ w.T) - jnp.sum(self.sigma31 * w)

    def vector_field(self, t, y, args):
        return -jax.grad(self.energy)(y) / self.tau

    def initial_state(self):
        # Small random weights (scale `init_scale`), reproducible from `seed`.
        rng = np.random.default_rng(self.seed)
        return self.flatten(
            [self.init_scale * rng.standard_normal(shape) for shape in self.shapes]
        )

    @staticmethod
    def mode_strength(t, s, u0, tau=1.0):
        """Saxe et al.'s u(t) = s e^{2st/τ} / (e^{2st/τ} − 1 + s/u₀)."""
        e = jnp.exp(2.0 * s * jnp.asarray(t) / tau)
        return s * e / (e - 1.0 + s / u0)
