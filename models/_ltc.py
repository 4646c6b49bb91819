"""Liquid time-constant networks (Hasani et al., AAAI 2021) and their closed-form
continuous-time counterpart (CfC; Hasani et al., Nature Machine Intelligence 2022),
with the parameter names, initial ranges and update rules of the ncps library
(docs/models.md §4)."""

import copy
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, PRNGKeyArray

from dynsim import solvers
from dynsim.solvers import solve_options

from ._base import AbstractModel, AbstractPredictor
from ._wiring import Wiring, fully_connected

# ncps' initial ranges (uniform), by parameter name.
LTC_INIT_RANGES = {
    "gleak": (0.001, 1.0),
    "vleak": (-0.2, 0.2),
    "cm": (0.4, 0.6),
    "w": (0.001, 1.0),
    "sigma": (3.0, 8.0),
    "mu": (0.3, 0.8),
    "sensory_w": (0.001, 1.0),
    "sensory_sigma": (3.0, 8.0),
    "sensory_mu": (0.3, 0.8),
}


def _elapsed(ts: Array) -> Array:
    # Step k runs over (t_{k−1}, t_k]; the first step as long as the second.
    ts = jnp.asarray(ts)
    first = ts[1:2] - ts[0:1] if ts.shape[0] > 1 else jnp.ones(1)
    return jnp.concatenate([first, jnp.diff(ts)])


class LTC(AbstractModel):
    """A liquid time-constant network: membrane potentials v of `units` neurons,

        cm dv/dt = gleak (vleak − v) + Σ_j w_ji σ_ji(v_j) (erev_ji − v)
                   + Σ_k w^s_ki σ^s_ki(u_k) (erev^s_ki − v),

    σ_ji(x) = sigmoid(sigma_ji (x − mu_ji)), synapses masked by the wiring, inputs
    u = input_w ⊙ I + input_b, outputs = output_w ⊙ v[:motor] + output_b. (The
    form dv/dt = −[1/τ + f] v + f A of `docs/models.md`.) The parameters that must be
    positive (cm, gleak, w, sensory_w) enter through `positivity`: `"clip"` (max(0,
    ·), what ncps' `LTCCell` does by clipping after each update) or `"softplus"`
    (what ncps' `LTC` wrapper does, `implicit_param_constraints=True`), so weights
    trained in either ncps form load unchanged.

    As a model, its input is `args`: a function u(t) or a constant array (None: no
    input). `predict(ts, inputs)` runs it on an input sequence sampled at `ts` (any
    spacing; input k held over (t_{k−1}, t_k]): `integration="fused"` takes ncps'
    fused semi-implicit Euler step with `ode_unfolds` substeps per sample,
    `"ode"` solves the ODE adaptively.
    """

    gleak: Array
    vleak: Array
    cm: Array
    w: Array
    sigma: Array
    mu: Array
    erev: Array
    sensory_w: Array
    sensory_sigma: Array
    sensory_mu: Array
    sensory_erev: Array
    input_w: Array
    input_b: Array
    output_w: Array
    output_b: Array
    sparsity_mask: Array
    sensory_sparsity_mask: Array
    output_dim: int = eqx.field(static=True)
    ode_unfolds: int = eqx.field(static=True)
    integration: str = eqx.field(static=True)
    positivity: str = eqx.field(static=True)
    epsilon: ClassVar[float] = 1e-8

    def __init__(
        self,
        inputs: int | None = None,
        units: int | None = None,
        *,
        wiring: Wiring | None = None,
        output_dim: int | None = None,
        ode_unfolds: int = 6,
        integration: str = "fused",
        positivity: str = "clip",
        key: PRNGKeyArray,
    ):
        if wiring is None:
            if inputs is None or units is None:
                raise ValueError("LTC needs inputs and units, or a wiring")
            wiring = fully_connected(units, inputs, output_dim)
        if integration not in ("fused", "ode"):
            raise ValueError(
                f"integration must be 'fused' or 'ode', got {integration!r}"
            )
        if ode_unfolds < 1:
            raise ValueError(f"ode_unfolds must be >= 1, got {ode_unfolds}")
        if positivity not in _POSITIVE:
            raise ValueError(
                f"positivity must be 'clip' or 'softplus', got {positivity!r}"
            )
        n, m = wiring.units, wiring.input_dim
        shapes = {"gleak": (n,), "vleak": (n,), "cm": (n,), "w": (n, n)}
        shapes |= {"sigma": (n, n), "mu": (n, n)}
        shapes |= {f"sensory_{p}": (m, n) for p in ("w", "sigma", "mu")}
        keys = jr.split(key, len(shapes))
        for k, (name, shape) in zip(keys, shapes.items(), strict=True):
            lo, hi = LTC_INIT_RANGES[name]
            setattr(self, name, jr.uniform(k, shape, minval=lo, maxval=hi))
        self.erev = jnp.asarray(wiring.adjacency, dtype=float)
        self.sensory_erev = jnp.asarray(wiring.sensory_adjacency, dtype=float)
        self.sparsity_mask = jnp.abs(self.erev)
        self.sensory_sparsity_mask = jnp.abs(self.sensory_erev)
        self.input_w, self.input_b = jnp.ones(m), jnp.zeros(m)
        self.output_w = jnp.ones(wiring.output_dim)
        self.output_b = jnp.zeros(wiring.output_dim)
        self.output_dim = wiring.output_dim
        self.ode_unfolds = ode_unfolds
        self.integration = integration
        self.positivity = positivity

    def with_integration(
        self, integration: str | None = None, ode_unfolds: int | None = None
    ) -> "LTC":
        """The same network (same weights) integrated differently."""
        new = copy.copy(self)
        if integration is not None:
            if integration not in ("fused", "ode"):
                raise ValueError(
                    f"integration must be 'fused' or 'ode', got {integration!r}"
                )
            object.__setattr__(new, "integration", integration)
        if ode_unfolds is not None:
            if ode_unfolds < 1:
                raise ValueError(f"ode_unfolds must be >= 1, got {ode_unfolds}")
            object.__setattr__(new, "ode_unfolds", int(ode_unfolds))
        return new

    @property
    def units(self) -> int:
        return self.gleak.shape[0]

    @property
    def state_names(self) -> tuple[str, ...]:
        return tuple(f"v{i}" for i in range(self.units))

    def initial_state(self):
        return jnp.zeros(self.units)

    def _positive(self, x: Array) -> Array:
        return _POSITIVE[self.positivity](x)

    # The synaptic sums: Σ w σ (conductance) and Σ w σ erev (its reversal current).
    def _sensory(self, u):
        u = self.input_w * u + self.input_b
        act = self._positive(self.sensory_w) * jax.nn.sigmoid(
            self.sensory_sigma * (u[:, None] - self.sensory_mu)
        )
        act = act * jax.lax.stop_gradient(self.sensory_sparsity_mask)
        return jnp.sum(act, 0), jnp.sum(act * self.sensory_erev, 0)

    def _recurrent(self, v):
        act = self._positive(self.w) * jax.nn.sigmoid(
            self.sigma * (v[:, None] - self.mu)
        )
        act = act * jax.lax.stop_gradient(self.sparsity_mask)
        return jnp.sum(act, 0), jnp.sum(act * self.erev, 0)

    def _input(self, t, args):
        if args is None:
            return jnp.zeros(self.input_w.shape)
        return args(t) if callable(args) else jnp.asarray(args)

    def vector_field(self, t, y, args):
        g_s, i_s = self._sensory(self._input(t, args))
        g_r, i_r = self._recurrent(y)
        gleak = self._positive(self.gleak)
        dv = gleak * (self.vleak - y) + (i_s + i_r) - (g_s + g_r) * y
        return dv / self._positive(self.cm)

    def fused_step(self, v: Array, u: Array, elapsed: Array) -> Array:
        """ncps' update over `elapsed` time: `ode_unfolds` semi-implicit Euler
        substeps, each implicit in v and explicit in the synaptic gates."""
        g_s, i_s = self._sensory(u)
        cm_t = self._positive(self.cm) / (elapsed / self.ode_unfolds)
        gleak = self._positive(self.gleak)

        def substep(v, _):
            g_r, i_r = self._recurrent(v)
            num = cm_t * v + gleak * self.vleak + i_r + i_s
            den = cm_t + gleak + g_r + g_s
            return num / (den + self.epsilon), None

        return jax.lax.scan(substep, v, None, length=self.ode_unfolds)[0]

    def readout(self, v: Array) -> Array:
        """The outputs of states v (..., units)."""
        return self.output_w * v[..., : self.output_dim] + self.output_b

    def predict(self, ts: Array, inputs: Array, **solve: Any) -> Array:
        """Outputs (times, output_dim) for inputs (times, input_dim) sampled at
        `ts`, from v = 0; `solve`: solver options for `integration="ode"`
        (solver, rtol, atol, adjoint, max_steps)."""
        return self.readout(self.states(ts, inputs, **solve))

    def states(self, ts: Array, inputs: Array, **solve: Any) -> Array:
        """The membrane potentials (times, units) after each input sample."""
        ts, inputs = jnp.asarray(ts), jnp.asarray(inputs)
        if inputs.ndim != 2 or inputs.shape != (ts.shape[0], self.input_w.shape[0]):
            raise ValueError(
                f"inputs must be (times, {self.input_w.shape[0]}) for {ts.shape[0]} "
                f"times, got {inputs.shape}"
            )
        if self.integration == "fused":

            def step(v, xs):
                u, dt = xs
                v = self.fused_step(v, u, dt)
                return v, v

        else:
            options = solve_options(
                "ode", **({"rtol": 1e-6, "atol": 1e-8, "max_steps": 4096} | solve)
            )
            problem = self.problem()

            def step(v, xs):
                # The model's own problem, its input u held over the step as args.
                u, dt = xs
                sol = solvers.integrate(problem, v, 0.0, dt, u, options=options)
                return sol.ys[-1], sol.ys[-1]

        return jax.lax.scan(step, self.initial_state(), (inputs, _elapsed(ts)))[1]


_POSITIVE = {"clip": jax.nn.relu, "softplus": jax.nn.softplus}


def _lecun_tanh(x):
    return 1.7159 * jnp.tanh(0.666 * x)


_CFC_ACTIVATIONS = {
    "lecun_tanh": _lecun_tanh,
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "silu": jax.nn.silu,
    "gelu": jax.nn.gelu,
}


class CfC(AbstractPredictor):
    """A closed-form continuous-time cell (ncps' `CfCCell`), stepped over input
    sequences with any spacing: with x = backbone([input, h]) and elapsed time t,

    - `"default"`: h' = tanh(ff1(x)) (1 − s) + s tanh(ff2(x)), s = σ(t_a(x) t + t_b(x));
    - `"no_gate"`: h' = tanh(ff1(x)) + s tanh(ff2(x));
    - `"pure"`: h' = −A e^{−t(|w_tau| + |ff1(x)|)} ff1(x) + A, the closed-form
      solution of the LTC ODE with frozen gates.

    No ODE solver is involved. `output_size`: an optional linear readout (ncps'
    `proj_size`). Initial weights: Xavier-uniform matrices, as ncps.
    """

    backbone: list[eqx.nn.Linear]
    ff1: eqx.nn.Linear
    ff2: eqx.nn.Linear | None
    time_a: eqx.nn.Linear | None
    time_b: eqx.nn.Linear | None
    w_tau: Array | None
    A: Array | None
    readout: eqx.nn.Linear | None
    hidden_size: int = eqx.field(static=True)
    mode: str = eqx.field(static=True)
    activation: str = eqx.field(static=True)

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        mode: str = "default",
        backbone_units: int = 128,
        backbone_layers: int = 1,
        activation: str = "lecun_tanh",
        output_size: int | None = None,
        key: PRNGKeyArray,
    ):
        if mode not in ("default", "no_gate", "pure"):
            raise ValueError(
                f"unknown CfC mode {mode!r}; use 'default', 'no_gate' or 'pure'"
            )
        if activation not in _CFC_ACTIVATIONS:
            raise ValueError(
                f"unknown activation {activation!r}; "
                f"use one of {', '.join(_CFC_ACTIVATIONS)}"
            )
        keys = iter(jr.split(key, backbone_layers + 6))
        sizes = [input_size + hidden_size] + [backbone_units] * backbone_layers
        self.backbone = [
            _linear(a, b, next(keys))
            for a, b in zip(sizes[:-1], sizes[1:], strict=True)
        ]
        cat = sizes[-1]
        self.ff1 = _linear(cat, hidden_size, next(keys))
        if mode == "pure":
            self.ff2 = self.time_a = self.time_b = None
            self.w_tau = jnp.zeros(hidden_size)
            self.A = jnp.ones(hidden_size)
        else:
            self.ff2, self.time_a, self.time_b = (
                _linear(cat, hidden_size, next(keys)) for _ in range(3)
            )
            self.w_tau = self.A = None
        self.readout = (
            None
            if output_size is None
            else eqx.nn.Linear(hidden_size, output_size, key=next(keys))
        )
        self.hidden_size = hidden_size
        self.mode = mode
        self.activation = activation

    def cell(self, u: Array, h: Array, t: Array) -> Array:
        """One update of the hidden state h on input u over elapsed time t."""
        x = jnp.concatenate([u, h])
        for layer in self.backbone:
            x = _CFC_ACTIVATIONS[self.activation](layer(x))
        ff1 = self.ff1(x)
        if self.mode == "pure":
            return -self.A * jnp.exp(
                -t * (jnp.abs(self.w_tau) + jnp.abs(ff1))
            ) * ff1 + (self.A)
        ff1, ff2 = jnp.tanh(ff1), jnp.tanh(self.ff2(x))
        s = jax.nn.sigmoid(self.time_a(x) * t + self.time_b(x))
        return ff1 + s * ff2 if self.mode == "no_gate" else ff1 * (1 - s) + s * ff2

    def hidden_states(self, ts: Array, inputs: Array) -> Array:
        """h after each input sample (times, hidden_size), from h = 0."""

        def step(h, xs):
            u, dt = xs
            h = self.cell(u, h, dt)
            return h, h

        h0 = jnp.zeros(self.hidden_size)
        return jax.lax.scan(step, h0, (jnp.asarray(inputs), _elapsed(ts)))[1]

    def predict(self, ts: Array, inputs: Array, **solve: Any) -> Array:
        """Outputs (through `readout` if any) for inputs (times, input_size) at
        `ts`; `solve` is ignored (a CfC needs no solver)."""
        h = self.hidden_states(ts, inputs)
        return h if self.readout is None else jax.vmap(self.readout)(h)


def _linear(fan_in: int, fan_out: int, key: PRNGKeyArray) -> eqx.nn.Linear:
    # Xavier-uniform weights (ncps' `init_weights`), equinox's default biases.
    kl, kw = jr.split(key)
    layer = eqx.nn.Linear(fan_in, fan_out, key=kl)
    bound = np.sqrt(6.0 / (fan_in + fan_out))
    w = jr.uniform(kw, (fan_out, fan_in), minval=-bound, maxval=bound)
    return eqx.tree_at(lambda m: m.weight, layer, w)
