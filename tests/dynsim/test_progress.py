"""Long calls show progress by default (also when stderr is not a terminal, as in a
notebook or a log), and the bars move before the work is done."""

import re

import jax.random as jr
import numpy as np

import dynsim as ds
from dynsim.analysis import continuation
from dynsim.models import NeuralODE


def _percentages(text: str) -> list[float]:
    return [float(p) for p in re.findall(r"(\d+(?:\.\d+)?)%", text)]


def test_a_few_long_solves_show_their_time_not_a_jump(capsys):
    # Eight noisy runs in one chunk (a ramp's realisations): the bar follows the
    # solves' time span instead of jumping from 0 to 100 % at the end.
    noisy = ds.models.AdditiveNoise(ds.models.Lorenz(), sigma=0.1)
    ds.scan(noisy, {"sigma": np.full(8, 0.1)}, (0.0, 20.0), dt0=1e-3, key=jr.key(0))
    seen = _percentages(capsys.readouterr().err)
    assert any(5 < p < 95 for p in seen), seen


def test_many_chunks_count_points(capsys):
    ds.scan(
        ds.models.Lorenz(),
        {"rho": np.linspace(0, 30, 600)},
        (0.0, 1.0),
        chunk_size=300,
    )
    err = capsys.readouterr().err
    assert re.search(r"scan: +\d+%.*\d+/600", err), err
    ds.scan(ds.models.Lorenz(), {"rho": [1.0, 2.0]}, (0.0, 1.0), progress=False)
    assert capsys.readouterr().err == ""


def test_fit_and_continuation_show_bars_by_default(capsys):
    t = np.linspace(0, 1, 5)
    y0 = np.ones((4, 2))
    ys = y0[:, None, :] * np.exp(-t)[None, :, None]
    ds.fit(NeuralODE(2, width=8, key=jr.key(0)), (t, y0, ys), steps=3)
    assert "fit" in capsys.readouterr().err
    continuation(ds.models.Lorenz(), "rho", (0.5, 5.0), y0=[0.0, 0.0, 0.0])
    err = capsys.readouterr().err
    assert "continuation in rho" in err and "of the span" in err
