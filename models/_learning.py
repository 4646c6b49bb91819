"""Learning as a dynamical system: gradient flow on the weights of deep linear
networks (Saxe, McClelland & Ganguli, ICLR 2014; docs/models.md §5)."""

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
    widths: tuple[int, ...] = eqx.field(static=True, kw_only=True)
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


_ACTIVATIONS = {
    "tanh": jnp.tanh,
    "erf": lambda x: jax.scipy.special.erf(x / jnp.sqrt(2.0)),
    "relu": jax.nn.relu,
    "linear": lambda x: x,
}


class TeacherStudentFlow(AbstractModel):
    """Gradient flow of a two-layer student y = W₂ φ(W₁ x / √N) learning a teacher
    y* = W₂* φ(W₁* x / √N) of the same form on P Gaussian inputs x ∈ ℝᴺ (drawn
    from `seed`): τ Ẇ = −S ⊙ ∂E/∂W with E = 1/(2P) Σ_μ |y(x_μ) − y*(x_μ)|².

    `signs` (±1, the shape of the state; default all +1) is the plasticity sign of
    every weight. +1 everywhere is gradient descent on E; flipping the sign of some
    hidden neurons' incoming weights (`with_flips`) gives a non-gradient "curl"
    rule (Ninou, Kadmon & Cayco-Gajic, "Curl Descent", NeurIPS 2025): the teacher
    is still a fixed point, but past a critical flipped fraction the solution
    manifold loses stability and learning oscillates or turns chaotic.

    The state is the flattened weights (W₁ then W₂; `weights(y)` unflattens them);
    `teacher_state()` is the teacher's.
    """

    tau: Float[Array, ""] = param(1.0)
    signs: Float[Array, "*state"] = param(1.0)
    widths: tuple[int, int, int] = eqx.field(static=True, default=(8, 4, 1))
    teacher_hidden: int = eqx.field(static=True, default=2)
    samples: int = eqx.field(static=True, default=256)
    activation: str = eqx.field(static=True, default="tanh")
    init_scale: float = eqx.field(static=True, default=0.1)
    seed: int = eqx.field(static=True, default=0)

    def __check_init__(self):
        if len(self.widths) != 3 or min(self.widths) < 1:
            raise ValueError(
                "widths must be (inputs, hidden, outputs) of positive ints, "
                f"got {self.widths}"
            )
        if self.activation not in _ACTIVATIONS:
            raise ValueError(
                f"unknown activation {self.activation!r}; "
                f"use one of {', '.join(_ACTIVATIONS)}"
            )
        if self.teacher_hidden < 1 or self.samples < 1:
            raise ValueError("teacher_hidden and samples must be positive ints")
        size = self.widths[1] * (self.widths[0] + self.widths[2])
        if jnp.ndim(self.signs) != 0 and jnp.shape(self.signs) != (size,):
            raise ValueError(
                f"signs must be a scalar or one value per weight ({size},), "
                f"got shape {jnp.shape(self.signs)}"
            )

    @property
    def state_names(self) -> tuple[str, ...]:
        n, h, o = self.widths
        return tuple(f"W1[{i},{j}]" for i in range(h) for j in range(n)) + tuple(
            f"W2[{i},{j}]" for i in range(o) for j in range(h)
        )

    def weights(self, y) -> tuple[Array, Array]:
        """(W₁, W₂) of a flattened state (or of many: (..., size))."""
        n, h, o = self.widths
        y = jnp.asarray(y)
        lead = y.shape[:-1]
        return (
            y[..., : h * n].reshape(*lead, h, n),
            y[..., h * n :].reshape(*lead, o, h),
        )

    def _data(self):
        n, _, o = self.widths
        rng = np.random.default_rng(self.seed)
        x = rng.standard_normal((self.samples, n))
        w1 = rng.standard_normal((self.teacher_hidden, n))
        w2 = rng.standard_normal((o, self.teacher_hidden))
        return x, w1, w2

    def _forward(self, w1, w2, x):
        phi = _ACTIVATIONS[self.activation]
        return phi(x @ w1.T / np.sqrt(x.shape[-1])) @ w2.T

    def teacher_state(self) -> Array:
        """The teacher's weights (a fixed point when `teacher_hidden` = hidden)."""
        _, w1, w2 = self._data()
        return jnp.concatenate([jnp.ravel(w1), jnp.ravel(w2)])

    def loss(self, y) -> Array:
        """E = 1/(2P) Σ_μ |y(x_μ) − y*(x_μ)|² on the training inputs."""
        x, t1, t2 = self._data()
        w1, w2 = self.weights(y)
        err = self._forward(w1, w2, x) - self._forward(t1, t2, x)
        return 0.5 * jnp.mean(jnp.sum(err**2, axis=-1))

    def vector_field(self, t, y, args):
        return -self.signs * jax.grad(self.loss)(y) / self.tau

    def initial_state(self):
        n, h, o = self.widths
        rng = np.random.default_rng(self.seed + 1)
        return self.init_scale * rng.standard_normal(h * (n + o))

    def with_flips(
        self, fraction: float, layer: str = "hidden"
    ) -> "TeacherStudentFlow":
        """A copy whose first round(fraction · hidden) hidden neurons have their
        plasticity sign flipped: in their incoming weights (`layer="hidden"`) or in
        their readout weights (`layer="readout"`)."""
        n, h, o = self.widths
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"fraction must lie in [0, 1], got {fraction}")
        if layer not in ("hidden", "readout"):
            raise ValueError(f"layer must be 'hidden' or 'readout', got {layer!r}")
        neuron = np.where(np.arange(h) < round(fraction * h), -1.0, 1.0)
        s1 = np.repeat(neuron, n) if layer == "hidden" else np.ones(h * n)
        s2 = np.tile(neuron, o) if layer == "readout" else np.ones(o * h)
        return eqx.tree_at(
            lambda m: m.signs, self, jnp.asarray(np.concatenate([s1, s2]))
        )
