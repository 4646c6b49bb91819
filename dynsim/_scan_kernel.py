"""A scan chunk's program (one jitted call: a chunk's runs, vmapped or on the
ensemble executor) and its call.

*The call.* A chunk's program depends on the plan's fixed parts (model, start,
times, arguments, solver options, observables) and settings (executor, lanes,
precision). Their arrays are the program's inputs (kept on the devices by value,
`resident`); everything else is compiled in (`_Static`, hashed once). Splitting the
fixed parts into those two took about 0.3 ms per call (equinox's `filter_jit` does
it on every call), an eighth of E1's 1 024 Lorenz solves, so it is done once per
plan and kept (`prepared`, by the identity of the plan's fixed parts, where their
arrays are small: a scan called again with equal arguments reuses its plan's fixed
parts, see `_memo.py`); a chunk's call is then the program's call alone. Programs
are compiled once per value of the compiled-in parts (`_program`, one `jax.jit` per
set of local devices, `compiled_program`), so new parameter values, or plans made
anew from equal arguments, never recompile.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
import numpy as np
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, PyTree

from dynsim import solvers
from dynsim.models import AbstractSystem, replace_parameters
from dynsim.solvers import SolveOptions, Status

from ._observables import Function
from ._packing import Layout, pack
from ._placement import _RESIDENT_NUMBERS, on_each_device, resident, runs_sharding
from ._tangent import tangent_start, with_tangent

#: XLA options of a chunk's program: on a CPU with 512-bit vectors (AVX-512) its
#: loops over runs and lanes use them (XLA's default is 256 bits). A Runge–Kutta
#: step is a chain of dependent operations, so a vector twice as wide steps twice
#: the lanes in the chain's time: E1's executor step (512 lanes, one device) 27.7 →
#: 24.4 ns per lane-step on a 2-core AMD EPYC. CPUs without AVX-512 and other
#: backends ignore it.
CHUNK_OPTIONS = {"xla_cpu_prefer_vector_width": 512}


def _flat_series(ys: PyTree[Array]) -> Array:
    return jax.vmap(lambda y: ravel_pytree(y)[0])(ys)


def _setup(
    model: AbstractSystem,
    y0: PyTree[Array] | None,
    dtype: Any,
    tangent: bool,
    values: dict[str, Array],
) -> tuple[solvers.Problem, PyTree[Array]]:
    """One run's problem and start (in `dtype`): the point's parameters set on the
    model (carried with its tangent dynamics if `tangent`)."""
    m = replace_parameters(model, values)
    # Without a y0 every point starts from its own model's default initial state.
    start = m.initial_state() if y0 is None else y0
    start = jtu.tree_map(lambda a: jnp.asarray(a, dtype), start)
    if tangent:
        return with_tangent(m).problem(), tangent_start(start)
    return m.problem(), start


def _run(
    values: dict[str, Array],
    point: Array,
    real: Array,
    model: AbstractSystem,
    y0: PyTree[Array] | None,
    t0: Any,
    t1: Any,
    args: Any,
    key: Array | None,
    *,
    options: SolveOptions,
    names: tuple[str, ...],
    sampled: tuple[tuple[str, tuple[Function, int | None]], ...],
    several: bool,
    dtype: Any,
    tangent: bool,
):
    """One run: set the point's parameters, solve, reduce."""
    problem, start = _setup(model, y0, dtype, tangent, values)
    run_key = None
    if key is not None:
        run_key = jr.fold_in(key, point)
        run_key = jr.fold_in(run_key, real) if several else run_key
    sol = solvers.integrate(problem, start, t0, t1, args, options=options, key=run_key)
    return _outputs(sol, options, names, sampled, tangent)


def _outputs(
    sol: solvers.Solution,
    options: SolveOptions,
    names: tuple[str, ...],
    sampled: tuple[tuple[str, tuple[Function, int | None]], ...],
    tangent: bool,
):
    """A run's outputs from its solution: (observables, saved states, status, step
    counts); NaN where the solve failed. Functions of samples see the model's own
    state (not its tangent dynamics)."""
    ok = _ok(sol.status)
    # A failed solve has no meaningful values: NaN, never finite-looking numbers.
    nan = lambda a: jnp.where(ok, a, jnp.nan)  # noqa: E731
    if not (names or sampled):
        # Saved states a failed solve never reached are NaN (diffrax leaves the last
        # state it reached in the end-point slot); those it did reach are real.
        saved_times = options.saveat.ts is not None
        reached = jnp.isfinite(sol.ts) & (ok | saved_times)
        ys = jtu.tree_map(lambda a: _where_times(reached, a), sol.ys)
        return {}, ys, sol.status, sol.stats
    out = {name: nan(v) for name, v in zip(names, sol.reductions, strict=True)}
    if sampled:
        flat = _flat_series(sol.ys)
        if tangent:  # (state, tangent, log growth)
            flat = flat[:, : (flat.shape[1] - 1) // 2]
        for name, (fn, idx) in sampled:
            out[name] = nan(fn.fn(sol.ts, flat if idx is None else flat[:, idx]))
    return out, None, sol.status, sol.stats


def _ok(status: Array) -> Array:
    """Which runs' statuses are ok outcomes (`Status.ok`)."""
    return (status == Status.SUCCESS) | (status == Status.EVENT)


def _where_times(reached: Array, ys: Array) -> Array:
    shape = reached.shape + (1,) * (ys.ndim - 1)
    return jnp.where(reached.reshape(shape), ys, jnp.nan)


def _chunk(values, points, real, *rest, **static):
    """A chunk's runs, vmapped; with several local devices each solves its block of
    the runs on its own (`on_each_device`: split by the compiler, a chunk of 8
    Lorenz runs on two CPU devices ran 25× slower than on one)."""

    def solve(values, points, real):
        return jax.vmap(lambda v, p, r: _run(v, p, r, *rest, **static))(
            values, points, real
        )

    return on_each_device(solve, values, points, real)


def _ensemble_chunk(
    values,
    points,
    real,
    model,
    y0,
    t0,
    t1,
    args,
    *,
    options,
    names,
    sampled,
    lanes,
    dtype,
    tangent,
    blocks=False,
    diagnostics=False,
):
    """A chunk's runs on the ensemble executor; with several local devices each
    solves its share of the runs with its share of the lanes (its own queue), and
    the outputs come in the inputs' order. With `blocks`: the executor's fused
    kernel (`solvers.integrate_blocks`)."""
    del points, real  # (None: keys are for SDEs, which the executor does not solve)
    setup = functools.partial(_setup, model, y0, dtype, tangent)
    n = jax.local_device_count()  # (each device its share of the lanes)

    def solve(values):
        if blocks:
            sols = solvers.integrate_blocks(
                setup, values, t0, t1, args, options=options
            )
            iterations = jnp.zeros((), jnp.int32)  # (lockstep within a block)
        else:
            solved = solvers.integrate_ensemble(
                setup,
                values,
                t0,
                t1,
                args,
                options=options,
                lanes=max(1, lanes // n),
                diagnostics=diagnostics,
            )
            sols, iterations = solved if diagnostics else (solved, None)
        out = jax.vmap(lambda sol: _outputs(sol, options, names, sampled, tangent))(
            sols
        )
        return (out, iterations[None]) if diagnostics else out

    # The outputs stay in the order the devices took the runs (the inputs' order,
    # `ScanPlan.chunk_inputs`): putting them back in the runs' order here would
    # join the devices (an all-reduce per output, ≈ 0.3 ms of E1's 1.5 ms solve of
    # 1 024 runs on two devices); `ScanPlan.to_host` does it on the host.
    return on_each_device(solve, values)


# Where an array leaf of the fixed parts goes (`_Static.leaves`).
_ARRAY = object()


class _Static:
    """What a chunk's program compiles in: the tree structure of the plan's fixed
    parts, their leaves that are not arrays (`_ARRAY` where an array goes) and the
    call's settings. Hashed once: `jax.jit` looks it up on every call."""

    __slots__ = ("treedef", "leaves", "settings", "_hash")

    def __init__(self, treedef: Any, leaves: tuple, settings: tuple):
        self.treedef = treedef
        self.leaves = leaves
        self.settings = settings
        try:
            self._hash = hash((treedef, leaves, settings))
        except TypeError:
            bad = [type(x).__name__ for x in leaves if not _hashable(x)]
            raise ValueError(
                "a scan's model, start, args and options must hold arrays or "
                f"hashable values; got unhashable {', '.join(bad) or 'structure'}"
            ) from None

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, _Static) or self._hash != other._hash:
            return False
        return (self.treedef, self.leaves, self.settings) == (
            other.treedef,
            other.leaves,
            other.settings,
        )


def _hashable(x: Any) -> bool:
    try:
        hash(x)
    except TypeError:
        return False
    return True


def _split(fixed: tuple, settings: tuple) -> tuple[_Static, list]:
    leaves, treedef = jtu.tree_flatten(fixed)
    arrays = [x for x in leaves if eqx.is_array(x)]
    marked = tuple(_ARRAY if eqx.is_array(x) else x for x in leaves)
    return _Static(treedef, marked, settings), arrays


def _program(static: _Static, values, points, real, at, arrays: list):
    """A chunk's program: its runs (`values`, `points`, `real`, `at`: see
    `ScanPlan.chunk_inputs`) with the fixed parts rebuilt from `static` and
    `arrays`; its outputs `(observables, saved states, status, step counts,
    check)` (the check None without one)."""
    given = iter(arrays)
    leaves = [next(given) if x is _ARRAY else x for x in static.leaves]
    model, y0, t0, t1, args, key, options, sampled, check = jtu.tree_unflatten(
        static.treedef, leaves
    )
    executor, names, dtype, tangent, lanes, several, diagnostics = static.settings
    common = dict(names=names, sampled=sampled, tangent=tangent)
    own = values
    if check is not None:  # (float64 values: the check's, cast for the scan's own)
        own = jtu.tree_map(lambda v: v.astype(dtype), values)
    if executor in ("ensemble", "pallas"):
        result = _ensemble_chunk(
            own, points, real, model, y0, t0, t1, args, options=options,
            dtype=dtype, lanes=lanes, blocks=executor == "pallas",
            diagnostics=diagnostics, **common,
        )  # fmt: skip
    else:
        result = _chunk(
            own, points, real, model, y0, t0, t1, args, key, options=options,
            dtype=dtype, several=several, **common,
        )  # fmt: skip
    out, iterations = result if diagnostics else (result, None)
    checked = None
    if check is not None:
        checked = _checked(out, values, at, check, executor == "vmap", common)
    out = (*out, checked)
    return (out, iterations) if diagnostics else out


def _checked(out, values, at, check, vmapped: bool, common: dict):
    """A single-precision chunk's check: on each device, the runs at its positions
    `at` (-1: none) solved again in float64 with the `check`'s parts, as the chunk
    solves its runs (`vmapped`, or on the ensemble executor; `common`: the outputs'
    names, sampled functions and tangent flag, as `_program`'s); `(error, compared)`
    per device: the largest difference between the chunk's values (observables,
    or saved states) and theirs relative to 1 + |theirs|, where both solves
    succeeded and both values are finite, and the runs compared."""
    model, y0, t0, t1, args, options = check
    dtype = jnp.result_type(float)
    values_out, ys, status, _ = out
    observed = bool(common["names"] or common["sampled"])

    def solve(values, at):
        runs = jnp.where(at >= 0, at, 0)
        run_values = jtu.tree_map(lambda v: v[runs], values)
        if vmapped:

            def one(v):
                return _run(
                    v, 0, 0, model, y0, t0, t1, args, None, options=options,
                    several=False, dtype=dtype, **common,
                )  # fmt: skip

            theirs = jax.vmap(one)(run_values)
        else:
            setup = functools.partial(_setup, model, y0, dtype, common["tangent"])
            sols = solvers.integrate_ensemble(
                setup, run_values, t0, t1, args, options=options, lanes=runs.size
            )
            theirs = jax.vmap(lambda sol: _outputs(sol, options, **common))(sols)
        return (theirs[0] if observed else theirs[1]), theirs[2]

    def compare(ours, status, theirs, their_status, at):
        runs = jnp.where(at >= 0, at, 0)
        both = (at >= 0) & _ok(status[runs]) & _ok(their_status)
        error = jnp.zeros((), dtype)
        for a, b in zip(jtu.tree_leaves(ours), jtu.tree_leaves(theirs), strict=True):
            a = a[runs].astype(dtype)
            finite = jnp.isfinite(a) & jnp.isfinite(b)
            finite &= both.reshape(both.shape + (1,) * (b.ndim - 1))
            diff = jnp.where(finite, jnp.abs(a - b) / (1 + jnp.abs(b)), 0)
            error = jnp.maximum(error, jnp.max(diff, initial=0))
        return error[None], jnp.sum(both, dtype=jnp.int32)[None]

    # The float64 solves depend on the chunk's inputs alone (not on its solves),
    # so the devices run them alongside.
    theirs, their_status = on_each_device(solve, values, at)
    ours = values_out if observed else ys
    return on_each_device(compare, ours, status, theirs, their_status, at)


# (The program as a nested jit, whose trace `_layout` makes and `_packed_program`
# reuses: compiler options are the top-level jit's.)
_nested = jax.jit(_program, static_argnums=0)


def _packed_program(static: _Static, values, points, real, at, arrays: list):
    """A chunk's program with its outputs packed into one array of bytes
    (`_packing`, laid out as `_layout` says); the program traced once, by
    `_layout`."""
    result = _nested(static, values, points, real, at, arrays)
    diagnostics = static.settings[-1]
    out, iterations = result if diagnostics else (result, None)
    layout = _layout(static, (values, points, real, at), arrays, _shapes(arrays))
    data = pack((out[:4], out[4]), layout)
    return (data, iterations) if diagnostics else data


@functools.cache
def compiled_program(packed: bool, devices: tuple) -> Any:
    """The chunk program (`_packed_program` where `packed`, else `_program`)
    compiled for the local `devices`: a chunk's runs (`values`, `points`, `real`,
    `at`) split over the devices along their first axis as `runs_sharding` says
    (`ScanPlan.chunk_inputs`; host arrays are split so by the call itself); the
    fixed parts' arrays are on the devices already (`resident`; a large one is
    copied by the call). Device arrays split otherwise are refused by the call."""
    runs = runs_sharding(devices)
    return jax.jit(
        _packed_program if packed else _program,
        static_argnums=0,
        compiler_options=CHUNK_OPTIONS,
        in_shardings=(runs, runs, runs, runs, None),
    )


# The layouts of the packed outputs of the last _LAYOUT_ENTRIES programs.
_LAYOUT_ENTRIES = 64
_LAYOUTS: OrderedDict[tuple, Layout] = OrderedDict()


def _layout(static: _Static, runs: tuple, arrays: list, shapes: tuple) -> Layout:
    """The layout of a chunk program's packed outputs, from its outputs' shapes
    (`jax.eval_shape`, kept: its trace is the program's own, reused when the packed
    program calls it); `shapes`: the `arrays`' (`_shapes`)."""
    key = (
        static,
        jtu.tree_structure(runs),
        _shapes(jtu.tree_leaves(runs)),
        shapes,
    )
    with _PREPARED_LOCK:
        layout = _LAYOUTS.get(key)
    if layout is None:
        out = jax.eval_shape(_nested, static, *runs, arrays)
        out = out[0] if static.settings[-1] else out  # (diagnostics: with them)
        layout = Layout((out[:4], out[4]), jax.local_device_count())
        with _PREPARED_LOCK:
            _LAYOUTS[key] = layout
            while len(_LAYOUTS) > _LAYOUT_ENTRIES:
                _LAYOUTS.popitem(last=False)
    return layout


def _shapes(arrays: list) -> tuple:
    """The shapes and dtypes of `arrays` (part of a program's layout's key)."""
    return tuple((a.shape, a.dtype) for a in arrays)


# The fixed parts of the last _PREPARED_ENTRIES plans, split (`prepared`), with
# their arrays' shapes.
_PREPARED_ENTRIES = 32
_PREPARED: OrderedDict[tuple, tuple[tuple, _Static, list, tuple]] = OrderedDict()
_PREPARED_LOCK = threading.Lock()


def prepared(fixed: tuple, settings: tuple) -> tuple[_Static, list]:
    """`fixed` (a plan's fixed parts) split into what its chunks' program compiles
    in and its arrays, kept on the devices (`resident`); kept for the next call
    with the same objects (by identity: the entry holds them, so no other object
    takes their identity while it is kept) where all its arrays are small."""
    static, arrays, _ = _prepared(fixed, settings)
    return static, arrays


def _prepared(fixed: tuple, settings: tuple) -> tuple[_Static, list, tuple | None]:
    """`prepared`, and the arrays' shapes (`_shapes`; None where an array is
    traced), kept with them: a chunk's call reads them instead of the arrays."""
    key = (*map(id, fixed), settings)
    with _PREPARED_LOCK:
        entry = _PREPARED.get(key)
        same = entry is not None and all(
            a is b for a, b in zip(entry[0], fixed, strict=True)
        )
        if same:
            _PREPARED.move_to_end(key)
            return entry[1], entry[2], entry[3]
    static, arrays = _split(resident(fixed), settings)
    if any(isinstance(a, jax.core.Tracer) for a in arrays):
        return static, arrays, None  # (traced, `call_chunk`: never kept)
    shapes = _shapes(arrays)
    if any(np.size(a) > _RESIDENT_NUMBERS for a in arrays):
        # (Not kept: the entry would keep large arrays alive.)
        return static, arrays, shapes
    with _PREPARED_LOCK:
        _PREPARED[key] = (fixed, static, arrays, shapes)
        while len(_PREPARED) > _PREPARED_ENTRIES:
            _PREPARED.popitem(last=False)
    return static, arrays, shapes


def call_chunk(
    fixed: tuple, settings: tuple, values, points, real, at, packed: bool = False
) -> Any:
    """Run a chunk's program (`ScanPlan.run_chunk`): compiled, or, where the runs
    or the plan's fixed parts are traced (`jax.eval_shape`, an outer jit), traced
    in place (a jit's compiler options are the outermost jit's). `packed`: its
    outputs packed, `(bytes, Layout)` (`_packing`; never traced; with the
    diagnostics, `((bytes, Layout), iterations)`)."""
    runs = (values, points, real, at)
    traced = any(isinstance(a, jax.core.Tracer) for a in jtu.tree_leaves(runs))
    if traced:
        static, arrays = _split(fixed, settings)
    else:
        static, arrays, shapes = _prepared(fixed, settings)
        traced = shapes is None
    if traced:
        if packed:
            raise ValueError("a chunk's packed outputs are for the host: not traced")
        return _program(static, *runs, arrays)
    program = compiled_program(packed, tuple(jax.local_devices()))
    if packed:
        layout = _layout(static, runs, arrays, shapes)
        if static.settings[-1]:  # (diagnostics)
            data, iterations = program(static, *runs, arrays)
            return (data, layout), iterations
        return program(static, *runs, arrays), layout
    return program(static, *runs, arrays)
