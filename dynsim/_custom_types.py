"""The types of dynsim's public signatures, in one place.

Shapes use jaxtyping's notation: `"*series time"` is any number of leading series
axes and one time axis.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeAlias

from jaxtyping import ArrayLike, Float, PRNGKeyArray, PyTree

from dynsim.models import AbstractMap, AbstractModel, AbstractSystem

#: Anything `simulate` and `scan` take: a flow (ODE / IMEX / SDE / Langevin) or a map.
System: TypeAlias = AbstractSystem
#: A continuous-time model (continuation, cycles and Lyapunov spectra of flows).
Flow: TypeAlias = AbstractModel
#: A model with a vector field or a map, for analyses that take either.
FlowOrMap: TypeAlias = AbstractModel | AbstractMap
#: A state: an array or a PyTree of arrays, as the model's `initial_state()`.
State: TypeAlias = PyTree[ArrayLike]
#: An interval (start, end): of time, or of a parameter for continuation.
Span: TypeAlias = tuple[float, float]
#: Parameter name -> values: a grid over them by default (`grid=False`: zipped).
Params: TypeAlias = Mapping[str, ArrayLike]
#: A parameter name -> (low, high) per continuation parameter.
Spans: TypeAlias = Mapping[str, Span]
#: Scalar time series: one `(time,)` or many `(series, time)`.
Series: TypeAlias = Float[ArrayLike, "*series time"]
#: A JAX PRNG key (`jax.random.key(seed)`).
Key: TypeAlias = PRNGKeyArray

__all__ = [
    "Flow",
    "FlowOrMap",
    "Key",
    "Params",
    "Series",
    "Span",
    "Spans",
    "State",
    "System",
]
