"""Gradient-flow learning dynamics against Saxe et al.'s closed forms."""

import jax
import numpy as np
import pytest

import dynsim as ds
from dynsim.models import DeepLinearGradientFlow, TeacherStudentFlow


def saxe_problem(seed=0):
    # Σ₃₁ = U S Vᵀ with 3 outputs, 4 inputs, singular values (3, 2, 1).
    rng = np.random.default_rng(seed)
    u, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    v, _ = np.linalg.qr(rng.standard_normal((4, 3)))
    s = np.array([3.0, 2.0, 1.0])
    return u, s, v, u @ np.diag(s) @ v.T


def test_two_layer_modes_follow_saxe_closed_form():
    # Balanced, aligned start W₁ = √u₀ Vᵀ, W₂ = U √u₀ (hidden width 3): each mode
    # strength u_i = (Uᵀ W₂W₁ V)_ii follows u(t) = s e^{2st/τ}/(e^{2st/τ} − 1 + s/u₀)
    # (Saxe, McClelland & Ganguli 2014, eq. 6); off-diagonal entries stay 0.
    u, s, v, s31 = saxe_problem()
    tau, u0 = 2.0, 1e-3
    model = DeepLinearGradientFlow(sigma31=s31, tau=tau, widths=(4, 3, 3))
    w1 = np.sqrt(u0) * v.T
    w2 = u * np.sqrt(u0)
    y0 = model.flatten([w1, w2])
    ts = np.linspace(0.0, 12.0, 49)
    traj = ds.simulate(model, (0.0, 12.0), y0=y0, saveat=ts, rtol=1e-10, atol=1e-12)
    modes = np.einsum("oi,toh,hj->tij", u, np.asarray(model.product(traj.ys)), v)
    expected = DeepLinearGradientFlow.mode_strength(ts[:, None], s, u0, tau)
    assert np.allclose(np.diagonal(modes, axis1=1, axis2=2), expected, atol=1e-6)
    off = modes - np.einsum("tii->ti", modes)[:, :, None] * np.eye(3)
    assert np.abs(off).max() < 1e-6
    # The plateau-then-drop learning curve: strong modes are learnt first.
    half = [
        ts[np.argmax(np.diagonal(modes, axis1=1, axis2=2)[:, i] > s[i] / 2)]
        for i in range(3)
    ]
    assert half[0] < half[1] < half[2]


def test_conserved_quantities_deep_network():
    # W_{l+1}ᵀ W_{l+1} − W_l W_lᵀ is conserved by gradient flow on any start, for
    # every pair of consecutive layers (three layers here, random start, Σ₁₁ ≠ I).
    u, s, v, s31 = saxe_problem(1)
    rng = np.random.default_rng(2)
    a = rng.standard_normal((4, 4))
    model = DeepLinearGradientFlow(
        sigma31=s31,
        sigma11=a @ a.T / 4 + np.eye(4),
        widths=(4, 5, 5, 3),
        init_scale=0.3,
        seed=3,
    )
    traj = ds.simulate(model, (0.0, 20.0), saveat=5, rtol=1e-10, atol=1e-12)
    ws = model.weights(traj.ys)
    for low, high in zip(ws[:-1], ws[1:], strict=True):
        c = np.einsum("tji,tjk->tik", high, high) - np.einsum("tij,tkj->tik", low, low)
        assert np.abs(c - c[0]).max() < 1e-7
    # And the energy decreases to the least-squares optimum W = Σ₃₁ Σ₁₁⁻¹.
    energy = np.array([model.energy(y) for y in traj.ys])
    assert np.all(np.diff(energy) <= 1e-12)
    best = s31 @ np.linalg.inv(np.asarray(model.sigma11))
    assert np.abs(np.asarray(model.product(traj.ys[-1])) - best).max() < 1e-3


def test_bad_widths():
    _, _, _, s31 = saxe_problem()
    with pytest.raises(ValueError, match="do not match sigma31"):
        DeepLinearGradientFlow(sigma31=s31, widths=(3, 3, 4))
    with pytest.raises(ValueError, match="at least one hidden"):
        DeepLinearGradientFlow(sigma31=s31, widths=(4, 3))
    with pytest.raises(ValueError, match="sigma11 must be"):
        DeepLinearGradientFlow(sigma31=s31, sigma11=np.eye(3), widths=(4, 3, 3))
    with pytest.raises(ValueError, match="unknown activation"):
        TeacherStudentFlow(activation="softsign")
    with pytest.raises(ValueError, match="signs must be"):
        TeacherStudentFlow(widths=(2, 3, 1), signs=np.ones(4))
    with pytest.raises(ValueError, match="fraction"):
        TeacherStudentFlow().with_flips(1.5)


def jacobian_at_teacher(model):
    y = model.teacher_state()
    return np.asarray(jax.jacfwd(lambda w: model.vector_field(0.0, w, None))(y))


def test_teacher_student_gradient_and_curl_rules():
    # Gradient descent: the flow is −∇E, so its Jacobian is symmetric (the negative
    # Hessian) and E decreases; flipping plasticity signs keeps the teacher a fixed
    # point but adds a curl (a non-symmetric Jacobian): no loss it descends.
    model = TeacherStudentFlow(widths=(3, 4, 2), teacher_hidden=4, samples=64)
    assert np.abs(model.vector_field(0.0, model.teacher_state(), None)).max() < 1e-14
    jac = jacobian_at_teacher(model)
    assert np.abs(jac - jac.T).max() < 1e-12
    curl = model.with_flips(0.5, "hidden")
    assert np.abs(curl.vector_field(0.0, curl.teacher_state(), None)).max() < 1e-14
    jac = jacobian_at_teacher(curl)
    assert np.abs(jac - jac.T).max() > 1e-2
    traj = ds.simulate(model, (0.0, 50.0), saveat=51, rtol=1e-8, atol=1e-10)
    loss = np.asarray(jax.vmap(model.loss)(traj.ys))
    assert np.all(np.diff(loss) <= 1e-12) and loss[-1] < 1e-2 * loss[0]


def test_curl_rule_stability_threshold_linear_network():
    # Linear two-layer teacher–student (the analytically tractable case of Curl
    # Descent, Ninou, Kadmon & Cayco-Gajic 2025): with readout-layer flips the
    # solution manifold keeps its stability (no eigenvalue of the Jacobian at the
    # teacher with positive real part, beyond the zero modes along the manifold)
    # for small flipped fractions and loses it past a critical fraction (here
    # between 0.5 and 0.6).
    base = TeacherStudentFlow(
        widths=(4, 10, 2), teacher_hidden=10, samples=200, activation="linear"
    )
    growth = {
        f: np.linalg.eigvals(
            jacobian_at_teacher(base.with_flips(f, "readout"))
        ).real.max()
        for f in (0.0, 0.1, 0.2, 0.3, 0.7, 0.8, 0.9)
    }
    assert all(growth[f] < 1e-8 for f in (0.0, 0.1, 0.2, 0.3)), growth
    assert all(growth[f] > 0.1 for f in (0.7, 0.8, 0.9)), growth


def test_curl_rule_learning_small_vs_large_flips():
    # Nonlinear (tanh) student with 20 hidden units learning a 20-unit teacher from a
    # small random start: 10 % flipped readout neurons learn as well as gradient
    # descent; 80 % keep the loss high; and started next to the teacher, the large
    # curl rule throws the weights off the solution (loss up by orders of magnitude).
    base = TeacherStudentFlow(
        widths=(2, 20, 20), teacher_hidden=20, samples=200, init_scale=0.3
    )

    def final_loss(model, y0=None, t1=300.0):
        traj = ds.simulate(model, (0.0, t1), y0=y0, saveat=101, rtol=1e-6, atol=1e-8)
        return np.asarray(jax.vmap(model.loss)(traj.ys)), traj

    gd, _ = final_loss(base)
    small, _ = final_loss(base.with_flips(0.1, "readout"))
    large, _ = final_loss(base.with_flips(0.8, "readout"))
    assert gd[-1] < 3e-4 * gd[0] and small[-1] < 3e-4 * small[0]
    assert large[-1] > 10 * max(gd[-1], small[-1])
    curl = base.with_flips(0.8, "readout")
    near = curl.teacher_state() + 1e-2 * np.random.default_rng(5).standard_normal(
        curl.teacher_state().shape
    )
    loss, traj = final_loss(curl, y0=near, t1=200.0)
    assert loss.max() > 100 * loss[0]
    assert np.linalg.norm(traj.ys[-1] - curl.teacher_state()) > 10.0
