"""The ensemble executor's per-trajectory programs as one fused kernel
(`jax.experimental.pallas`): a GPU design for fixed-size small systems.

`integrate_blocks` splits a batch's runs into blocks of `block` runs; one kernel
instance (a `pallas_call` grid point) solves one block from start to end, its runs
in lockstep (on a GPU: one thread per run, their states in registers, nothing
between steps written to memory), and writes each run's outputs. The programs are
the executor's own (`LaneProgram`: diffrax's solver step, guarded controller,
reductions, saving, events), so a run takes the same steps as its generic solve.
A block runs until its slowest run has finished (no refill: on a GPU the warps of a
block step together anyway), so blocks of neighbouring runs, which take similar
numbers of steps, waste least.

On a CPU the kernel runs in Pallas' interpret mode, which checks its numerics but
not the GPU's rules on block shapes and operations; `dynsim.scan` uses it only when
asked (`executor="pallas"`) until it has been measured on a GPU.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import jax.tree_util as jtu
from jax.experimental import pallas as pl
from jaxtyping import ArrayLike, PyTree

from ._lanes import LaneProgram, Setup
from ._problem import SolveOptions
from ._solution import Solution

#: Runs per block (a power of two, as GPU kernels' block shapes must be).
BLOCK = 128


def integrate_blocks(
    setup: Setup,
    inputs: PyTree[ArrayLike],
    t0: ArrayLike,
    t1: ArrayLike,
    args: Any = None,
    *,
    options: SolveOptions,
    block: int = BLOCK,
    interpret: bool | None = None,
) -> Solution:
    """Solve every run of a batch in a fused kernel, `block` runs per kernel
    instance (module doc).

    **Arguments:** `setup`, `inputs`, `t0`, `t1`, `args`, `options` as
    `integrate_ensemble` (`ensemble_support(problem, options)` must be None);
    `block`: runs per kernel instance (a power of two); `interpret`: run the kernel
    in Pallas' interpret mode (default: on a CPU).

    **Returns:** a `Solution` whose every field has a leading run axis, equal to
    `jax.vmap` of `integrate` over the runs (to round-off).
    """
    leaves = jtu.tree_leaves(inputs)
    if not leaves:
        raise ValueError("integrate_blocks needs inputs with a leading run axis")
    if block < 1 or block & (block - 1):
        raise ValueError(f"block must be a power of two, got {block}")
    if interpret is None:
        interpret = jax.default_backend() == "cpu"
    inputs = jtu.tree_map(jnp.asarray, inputs)
    n_runs = int(leaves[0].shape[0])
    n_blocks = -(-n_runs // block)
    # The last block is filled up with copies of the last run (real work, discarded).
    padded = jtu.tree_map(
        lambda a: jnp.concatenate(
            [a, jnp.repeat(a[-1:], n_blocks * block - n_runs, 0)]
        ),
        inputs,
    )
    one = jtu.tree_map(lambda a: a[0], inputs)
    # (Not `together`, a help for XLA's CPU fusion: the kernel is one fused
    # program already.)
    program = LaneProgram(setup, one, t0, t1, args, options, together=False)

    def solve_block(block_inputs):
        lane = jax.vmap(program.init)(block_inputs, jnp.arange(block))
        lane = jax.lax.while_loop(
            lambda lane: jnp.any(lane.running),
            lambda lane: jax.vmap(program.step)(block_inputs, lane),
            lane,
        )
        return jax.vmap(program.finish)(block_inputs, lane)

    # A kernel sees only its arguments: the arrays the programs close over (the
    # model's, the times, the save times) become inputs, read whole by every block.
    block_struct = jtu.tree_map(
        lambda a: jax.ShapeDtypeStruct((block,) + a.shape[1:], a.dtype), padded
    )
    closed, out_struct = jax.make_jaxpr(solve_block, return_shape=True)(block_struct)
    consts = [jnp.atleast_1d(jnp.asarray(c)) for c in closed.consts]
    const_shapes = [jnp.shape(c) for c in closed.consts]
    flat_inputs = jtu.tree_leaves(padded)
    out_leaves, out_tree = jtu.tree_flatten(out_struct)
    n_in, n_const = len(flat_inputs), len(consts)

    def kernel(*refs):
        ins = [r[...] for r in refs[:n_in]]
        const_refs = refs[n_in : n_in + n_const]
        cs = [r[...].reshape(s) for r, s in zip(const_refs, const_shapes, strict=True)]
        outs = jax.core.eval_jaxpr(closed.jaxpr, cs, *ins)
        for ref, value in zip(refs[n_in + n_const :], outs, strict=True):
            ref[...] = value

    def per_block(shape):
        rest = (0,) * (len(shape) - 1)
        return pl.BlockSpec((block,) + tuple(shape[1:]), lambda i: (i, *rest))

    def whole(shape):
        return pl.BlockSpec(tuple(shape), lambda i: (0,) * len(shape))

    outs = pl.pallas_call(
        kernel,
        out_shape=[
            jax.ShapeDtypeStruct((n_blocks * block,) + s.shape[1:], s.dtype)
            for s in out_leaves
        ],
        grid=(n_blocks,),
        in_specs=[per_block(a.shape) for a in flat_inputs]
        + [whole(c.shape) for c in consts],
        out_specs=[per_block((block,) + s.shape[1:]) for s in out_leaves],
        interpret=interpret,
        name="dynsim_ensemble_block",
    )(*flat_inputs, *consts)
    return jtu.tree_unflatten(out_tree, [o[:n_runs] for o in outs])
