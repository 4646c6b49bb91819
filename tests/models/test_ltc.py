"""LTC and CfC cells against their defining properties and ncps' conventions
(docs/models.md §4; parameter names, initial ranges and counts from ncps'
`ltc_cell.py` / `cfc_cell.py`)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import dynsim as ds
from dynsim.models import LTC, CfC, fully_connected, ncp
from dynsim.models._ltc import LTC_INIT_RANGES


def irregular(n=20, inputs=3, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    ts = np.cumsum(rng.uniform(0.3, 1.7, n))
    return ts, scale * rng.standard_normal((n, inputs))


def small_ncp():
    return ncp(
        3, inter=6, command=4, motor=2, sensory_fanout=2, inter_fanout=2,
        recurrent_command_synapses=3, motor_fanin=2,
    )  # fmt: skip


def test_ncps_names_and_initial_ranges():
    model = LTC(3, 8, output_dim=2, key=jr.key(0))
    for name, (lo, hi) in LTC_INIT_RANGES.items():
        value = np.asarray(getattr(model, name))
        assert lo <= value.min() and value.max() <= hi, name
    assert set(np.unique(model.erev)) <= {-1.0, 1.0}
    assert np.all(model.input_w == 1) and np.all(model.input_b == 0)
    assert model.output_w.shape == (2,)


def test_frozen_gates_fused_step_is_implicit_euler():
    # With sigma = 0 every gate is sigmoid(0) = 1/2 whatever v: the LTC ODE is linear
    # in v, and each of the fused step's substeps is exactly one implicit Euler step.
    model = LTC(3, 6, key=jr.key(1))
    model = eqx.tree_at(
        lambda m: (m.sigma, m.sensory_sigma),
        model,
        (jnp.zeros_like(model.sigma), jnp.zeros_like(model.sensory_sigma)),
    )
    u, v0, elapsed = jnp.array([0.5, -1.0, 2.0]), jnp.linspace(-0.5, 0.5, 6), 0.9
    fused = model.fused_step(v0, u, elapsed)
    traj = ds.simulate(
        model, (0.0, elapsed), y0=v0, solver="implicit_euler", adaptive=False,
        dt0=elapsed / model.ode_unfolds, args=u,
    )  # fmt: skip
    # Equal up to ncps' ε = 1e-8 added to the step's denominator (~ cm/dt ≈ 3 here).
    assert np.abs(np.asarray(fused) - np.asarray(traj.ys[-1])).max() < 1e-8


@pytest.mark.parametrize("wiring", ["full", "ncp"])
def test_states_stay_within_reversal_potentials(wiring):
    # dv/dt pulls v towards vleak and the synapses' reversal potentials (±1): started
    # inside, v stays inside [min, max] of them, for large irregular inputs.
    w = fully_connected(8, 3, 2) if wiring == "full" else small_ncp()
    model = LTC(wiring=w, key=jr.key(2))
    ts, us = irregular(40, scale=5.0)
    lo = min(float(model.vleak.min()), -1.0)
    hi = max(float(model.vleak.max()), 1.0)
    for m in (model, model.with_integration("ode")):
        v = np.asarray(m.states(ts, us))
        assert lo - 1e-9 <= v.min() and v.max() <= hi + 1e-9
        assert np.ptp(v) > 0.1  # the inputs do move it


def test_fused_converges_to_adaptive_solution():
    model = LTC(3, 8, output_dim=2, key=jr.key(0))
    ts, us = irregular()
    exact = model.with_integration("ode").states(ts, us, rtol=1e-10, atol=1e-12)
    errors = [
        float(
            jnp.abs(model.with_integration(ode_unfolds=k).states(ts, us) - exact).max()
        )
        for k in (6, 48, 384)
    ]
    # First order in the substep: 8× the unfolds, ~8× smaller error.
    assert errors[0] / errors[1] > 6 and errors[1] / errors[2] > 6, errors
    assert errors[2] < 5e-3


def test_ncp_wiring_structure_and_sparsity():
    w = small_ncp()
    motor, command, inter = np.arange(2), 2 + np.arange(4), 6 + np.arange(6)
    a, s = np.abs(w.adjacency), np.abs(w.sensory_adjacency)
    assert s[:, np.r_[motor, command]].sum() == 0  # inputs reach inter neurons only
    assert np.all(s.sum(0)[inter] > 0)  # every inter neuron reached
    assert a[np.ix_(inter, np.r_[inter, motor])].sum() == 0
    assert np.all(a[np.ix_(inter, command)].sum(0) > 0)
    assert np.all(a[np.ix_(command, motor)].sum(0) >= 2)  # motor fan-in
    assert np.all(a[np.ix_(command, motor)].sum(1) > 0)  # every command reaches one
    assert a[np.ix_(motor, np.arange(12))].sum() == 0  # motors project nowhere
    # A masked synapse does nothing: changing its weight leaves the outputs alone.
    model = LTC(wiring=w, key=jr.key(3))
    ts, us = irregular(10)
    src, dest = np.argwhere(a == 0)[0]
    other = eqx.tree_at(lambda m: m.w, model, model.w.at[src, dest].set(5.0))
    assert np.array_equal(model.predict(ts, us), other.predict(ts, us))


def count(model, exclude=()):
    leaves = jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_inexact_array))
    return sum(x.size for x in leaves) - sum(x.size for x in exclude)


def test_parameter_counts_match_ncps():
    # ncps' LTCCell: gleak, vleak, cm (u each), w, sigma, mu, erev (u²), sensory_w,
    # _sigma, _mu, _erev (m u), input_w, input_b (m), output_w, output_b (motor);
    # the sparsity masks are not trained.
    u, m, motor = 8, 3, 2
    ltc = LTC(m, u, output_dim=motor, key=jr.key(0))
    masks = (ltc.sparsity_mask, ltc.sensory_sparsity_mask)
    assert count(ltc, masks) == 3 * u + 4 * u * u + 4 * m * u + 2 * m + 2 * motor
    # ncps' CfCCell: backbone Linear(m + h, U) and (layers − 1) Linear(U, U); heads
    # ff1, ff2, time_a, time_b = Linear(U, h) (pure: ff1, w_tau, A); CfC's
    # proj_size adds Linear(h, out).
    h, units, layers, out = 5, 16, 2, 2
    backbone = (m + h) * units + units + (layers - 1) * (units * units + units)
    head = units * h + h
    for mode, heads in (
        ("default", 4 * head),
        ("no_gate", 4 * head),
        ("pure", head + 2 * h),
    ):
        cfc = CfC(
            m, h, mode=mode, backbone_units=units, backbone_layers=layers,
            output_size=out, key=jr.key(0),
        )  # fmt: skip
        assert count(cfc) == backbone + heads + h * out + out, mode


def test_cfc_output_bounds():
    ts, us = irregular(30, scale=10.0)
    dts = np.concatenate([[ts[1] - ts[0]], np.diff(ts)])
    bounds = {"default": 1.0, "no_gate": 2.0}
    for mode, bound in bounds.items():
        h = np.asarray(CfC(3, 6, mode=mode, key=jr.key(4)).hidden_states(ts, us))
        assert np.abs(h).max() <= bound and np.abs(h).max() > 0.3 * bound / 2
    # pure: h − A = −A e^{−t(|w_tau| + |f|)} f, and |f e^{−t|f|}| <= 1/(e t).
    cell = CfC(3, 6, mode="pure", key=jr.key(4))
    cell = eqx.tree_at(lambda c: c.A, cell, jnp.linspace(-2.0, 2.0, 6))
    h = np.asarray(cell.hidden_states(ts, us))
    bound = np.abs(np.asarray(cell.A)) / (np.e * dts[:, None])
    assert np.all(np.abs(h - np.asarray(cell.A)) <= bound + 1e-12)


def test_bad_input():
    with pytest.raises(ValueError, match="integration must be"):
        LTC(2, 3, integration="rk4", key=jr.key(0))
    with pytest.raises(ValueError, match="inputs and units"):
        LTC(key=jr.key(0))
    with pytest.raises(ValueError, match="inputs must be"):
        LTC(2, 3, key=jr.key(0)).predict(np.arange(4.0), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="unknown CfC mode"):
        CfC(2, 3, mode="gated", key=jr.key(0))
    with pytest.raises(ValueError, match="fan-outs"):
        ncp(2, 2, 2, 1, sensory_fanout=3, inter_fanout=1,
            recurrent_command_synapses=0, motor_fanin=1)  # fmt: skip


def test_positivity_by_clipping_or_softplus_as_the_two_ncps_forms():
    # ncps' LTCCell clips cm, gleak, w and sensory_w at 0 after each update; its
    # LTC wrapper (implicit_param_constraints=True) passes them through softplus.
    # The same raw weights — some negative, as an unconstrained optimiser leaves
    # them — give each form's vector field, written out here by hand.
    def unconstrained(model):
        return eqx.tree_at(
            lambda m: (m.w, m.gleak, m.cm),
            model,
            (model.w - 0.6, model.gleak - 0.4, model.cm - 0.2),
        )

    raw = unconstrained(LTC(2, 3, output_dim=1, key=jr.key(4)))
    soft = unconstrained(LTC(2, 3, output_dim=1, positivity="softplus", key=jr.key(4)))
    v = jnp.array([0.3, -0.2, 0.1])
    u = jnp.array([0.5, -1.0])

    def by_hand(pos):
        su = raw.input_w * u + raw.input_b
        sact = pos(raw.sensory_w) * jax.nn.sigmoid(
            raw.sensory_sigma * (su[:, None] - raw.sensory_mu)
        )
        sact = sact * raw.sensory_sparsity_mask
        act = pos(raw.w) * jax.nn.sigmoid(raw.sigma * (v[:, None] - raw.mu))
        act = act * raw.sparsity_mask
        num = pos(raw.gleak) * (raw.vleak - v) + (sact * raw.sensory_erev).sum(0)
        num = num + (act * raw.erev).sum(0) - (sact.sum(0) + act.sum(0)) * v
        return num / pos(raw.cm)

    clip = raw  # the default
    assert np.allclose(clip.vector_field(0.0, v, u), by_hand(jax.nn.relu), rtol=1e-12)
    assert np.allclose(
        soft.vector_field(0.0, v, u), by_hand(jax.nn.softplus), rtol=1e-12
    )
    assert not np.allclose(clip.vector_field(0.0, v, u), soft.vector_field(0.0, v, u))
    with pytest.raises(ValueError, match="positivity must be 'clip' or 'softplus'"):
        LTC(2, 3, positivity="exp", key=jr.key(0))
