"""Write tests/data/format_v1.h5 with dynsim's format-version-1 writers."""

import sys

import jax
import numpy as np

import dynsim as ds
from dynsim.analysis import (
    bifurcation_curve,
    continuation,
    cycle_continuation,
    ews,
    lyapunov_spectrum,
    phase_diagram,
    ramp_experiment,
    switch_branch,
)
from dynsim.models import MayHarvesting, SelkovLargeD

assert "headtree" in ds.__file__, ds.__file__
out = sys.argv[1]
save = ds.io.save
lor = ds.models.Lorenz()
save(ds.simulate(lor, (0.0, 1.0), saveat=11), out, "trajectory")
save(
    ds.scan(
        lor,
        {"rho": [10.0, 28.0]},
        (0.0, 5.0),
        observables={"x_max": ds.observables.Max(state="x")},
    ),
    out,
    "scan",
)
save(ds.scan(lor, {"rho": [10.0, 28.0]}, (0.0, 1.0), saveat=5), out, "scan_states")
origin = continuation(lor, "rho", (0.5, 30.0), y0=[0.0, 0.0, 0.0], progress=False)
save(origin, out, "branch")
c_plus = switch_branch(origin, origin.points[0], progress=False)
save(c_plus, out, "branch_hopf")
cyc = cycle_continuation(
    lor,
    "rho",
    (20.0, 30.0),
    hopf=c_plus.special("hopf")[0],
    max_points=6,
    progress=False,
)
save(cyc, out, "cycles")
sel = ds.models.Selkov(alpha=0.05, mu=0.2, zeta=1.0)
b = continuation(sel, "mu", (0.2, 1.2), progress=False)
curve = bifurcation_curve(
    b,
    b.special("hopf")[0],
    "alpha",
    {"mu": (0.0, 1.2), "alpha": (0.002, 0.2)},
    ds_max=0.05,
    max_points=20,
)
save(curve, out, "curve")
save(lyapunov_spectrum(ds.models.Henon(), t_total=200), out, "lyapunov")
x = np.random.default_rng(0).standard_normal((2, 200)).cumsum(1)
save(ews(x, window=0.3, bandwidth=0.25, surrogates=5), out, "ews")
save(
    phase_diagram(
        SelkovLargeD(centers=[(0.5, 0.0), (-0.5, 0.0)]),
        {"D": [1.0], "tau": [0.2, 0.55]},
        progress=False,
    ),
    out,
    "phase_diagram",
)
save(
    ramp_experiment(
        MayHarvesting(),
        "h",
        1.0,
        3.0,
        (0.0, 200.0),
        sigma=0.1,
        realisations=3,
        state="x",
        key=jax.random.key(1),
        saveat=201,
        indicators=["variance"],
    ),
    out,
    "ramp",
)
print(ds.io.runs(out))
