"""Automatic bifurcation diagrams: every branch once, streamed, resumable."""

import jax.numpy as jnp
import numpy as np
import pytest

import dynsim as ds
from dynsim.analysis import _diagram, bifurcation_diagram
from dynsim.models import param
from tests.helpers import Bautin


class Transcritical(ds.AbstractModel):
    """ẋ = μx − x²: the branches x = 0 and x = μ exchange stability at μ = 0."""

    mu: float = param(-1.0)
    state_names = ("x",)

    def vector_field(self, t, y, args):
        return self.mu * y - y**2

    def initial_state(self):
        return jnp.array([0.3])


def test_lorenz_diagram_has_every_branch_once(tmp_path):
    # Lorenz in ρ ∈ [0.5, 30]: the origin's branch (a pitchfork at ρ = 1), C+ and
    # C− switched onto from it (each with its subcritical Hopf point at
    # ρ = 470/19), and the cycles born at each Hopf point.
    path = tmp_path / "lorenz.h5"
    d = bifurcation_diagram(
        ds.models.Lorenz(),
        "rho",
        (0.5, 30.0),
        store=path,
        cycle_options=dict(max_points=40),
    )
    kinds = sorted(type(b).__name__ for b in d.branches.values())
    assert kinds == ["Branch"] * 3 + ["CycleBranch"] * 2
    assert [q.value for _, q in d.special("pitchfork")] == pytest.approx([1.0])
    hopfs = [q.value for _, q in d.special("hopf")]
    assert hopfs == pytest.approx([470 / 19] * 2)
    c_plus, c_minus = d.branches["eq1.PF1+"], d.branches["eq1.PF1-"]
    assert np.allclose(c_plus.ys[:, 0], -c_minus.ys[:, 0], atol=1e-6)  # symmetric
    assert d.parents["eq1.PF1+.H1"][0] == "eq1.PF1+"
    # Every branch is in the file as it was computed, and reloads equal.
    for name, b in d.branches.items():
        back = ds.io.load(path, name)
        assert type(back) is type(b) and np.array_equal(back.p, b.p)
        states = "ys" if isinstance(b, ds.analysis.Branch) else "x0"
        assert np.array_equal(getattr(back, states), getattr(b, states))
        assert [(q.kind, q.value) for q in back.points] == [
            (q.kind, q.value) for q in b.points
        ]
    fig = d.figure(state="x")
    assert len(fig.axes[0].lines) >= 5


def test_retraced_branches_are_dropped_and_a_rerun_resumes(tmp_path, monkeypatch):
    # ẋ = μx − x² from μ = −1: two equilibria (x = 0, x = −1), each branch crossing
    # the other at the transcritical point μ = 0; switching there from either
    # lands on the other, already followed: dropped, nothing traced twice.
    path = tmp_path / "tc.h5"
    d = bifurcation_diagram(Transcritical(), "mu", (-1.0, 1.0), store=path)
    assert len(d.branches) == 2 and len(d.dropped) == 4
    ys = sorted(float(b.ys[-1, 0]) for b in d.branches.values())
    assert ys == pytest.approx([0.0, 1.0], abs=1e-8)
    assert all(q.kind == "transcritical" for _, q in d.special("transcritical"))

    # Run again with the same arguments: the finished branches come from the file
    # (continuation is not called at all).
    def refuse(*args, **kwargs):
        raise AssertionError("a finished branch was recomputed")

    monkeypatch.setattr(_diagram, "continuation", refuse)
    again = bifurcation_diagram(Transcritical(), "mu", (-1.0, 1.0), store=path)
    assert list(again.branches) == list(d.branches)
    for name in d.branches:
        assert np.array_equal(again.branches[name].p, d.branches[name].p)
    monkeypatch.undo()

    # Interrupted while switching (after both first branches were finished): the
    # re-run takes them from the file and goes on.
    path = tmp_path / "interrupted.h5"
    switch = _diagram.switch_branch

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(_diagram, "switch_branch", interrupt)
    with pytest.raises(KeyboardInterrupt):
        bifurcation_diagram(Transcritical(), "mu", (-1.0, 1.0), store=path)
    monkeypatch.setattr(_diagram, "switch_branch", switch)
    monkeypatch.setattr(_diagram, "continuation", refuse)
    resumed = bifurcation_diagram(Transcritical(), "mu", (-1.0, 1.0), store=path)
    assert list(resumed.branches) == list(d.branches)
    assert resumed.dropped == d.dropped
    with pytest.raises(ValueError, match="depth must be >= 0"):
        bifurcation_diagram(Transcritical(), "mu", (-1.0, 1.0), depth=-1)


def test_diagram_with_cycles_and_their_fold():
    d = bifurcation_diagram(Bautin(), "mu", (-0.5, 0.5))
    assert list(d.branches) == ["eq1", "eq1.H1"]
    (hopf,) = [q for _, q in d.special("hopf")]
    assert hopf.value == pytest.approx(0.0, abs=1e-9)
    assert hopf.criticality == "subcritical"
    (fold,) = [q for _, q in d.special("cycle_fold")]
    assert fold.value == pytest.approx(-0.25, abs=1e-7)
    assert np.linalg.norm(fold.y) ** 2 == pytest.approx(0.5, abs=1e-6)
