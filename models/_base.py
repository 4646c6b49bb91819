"""The model contract: what every dynamical system in dynsim provides."""

import abc
import dataclasses
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
from equinox import AbstractVar
from jaxtyping import Array, ArrayLike, PyTree

from dynsim import solvers
from dynsim.solvers import Problem, SaveSpec, solve_options

_PARAM = "dynsim_param"


def _as_param(value: ArrayLike) -> Array:
    # Parameters are arrays of the default floating dtype, so that a new *value* is new
    # data for a compiled function, never a new compilation.
    return jnp.asarray(value, dtype=jnp.result_type(float))


def param(default: Any = dataclasses.MISSING, **kwargs: Any) -> Any:
    """Declare a numeric model parameter (a traced array field).

    Parameters are the fields that `dynsim.scan` may vary and that provenance records.
    Python numbers are converted to JAX arrays of the default float dtype.
    """
    metadata = dict(kwargs.pop("metadata", {}))
    metadata[_PARAM] = True
    return eqx.field(default=default, converter=_as_param, metadata=metadata, **kwargs)


class AbstractSystem(eqx.Module):
    """Anything dynsim solves: a continuous-time `AbstractModel` or a discrete-time
    `AbstractMap`.

    Required: `state_names`, `initial_state()` and `problem()` (the system as the
    solver core sees it; the base classes below implement it). Optional hooks, with
    their defaults here (analyses call them instead of probing for attributes):
    `steady_state()` (None: no closed form), `sparse_jacobian(y, args)` (None: use
    the dense JAX Jacobian), `analytic_curves(x, y, values)` (none),
    `check_solver(name)` (accept).
    """

    state_names: AbstractVar[tuple[str, ...]]

    @abc.abstractmethod
    def initial_state(self) -> PyTree[Array]:
        """A sensible default initial state y0."""

    @abc.abstractmethod
    def problem(self) -> Problem:
        """The system as a `dynsim.solvers.Problem` (its kind and its pieces)."""

    def steady_state(self) -> PyTree[Array] | None:
        """The equilibrium in closed form, if known (None: not known)."""
        return None

    def sparse_jacobian(self, y: Array, args: Any = None) -> Any:
        """The Jacobian at `y` as a SciPy sparse matrix, for large systems (None:
        the analyses use JAX's dense Jacobian)."""
        del y, args
        return None

    def analytic_curves(
        self, x: str, y: str, y_values: Array
    ) -> dict[str, tuple[Array, Array]]:
        """Closed-form bifurcation curves in the (x, y) parameter plane, if known.

        **Arguments:** `x`, `y` parameter names; `y_values` where to evaluate.

        **Returns:** a dict label -> (x_values, y_values); empty when the model knows
        none for this pair of parameters. Used to overlay theory on scan heat maps.
        """
        del x, y, y_values
        return {}

    def check_solver(self, solver: Any) -> None:
        """Refuse (`ValueError`) a solver this system cannot be solved with, beyond
        what its problem kind already rules out (default: accept)."""
        del solver


class AbstractPredictor(eqx.Module):
    """Anything `dynsim.fit` trains that is not a model of its own trajectories
    (e.g. a CfC cell, a latent ODE): `predict(ts, x, **solve)` maps inputs x (an
    input sequence, context observations) to outputs at `ts`."""

    @abc.abstractmethod
    def predict(self, ts: Array, x: Array, **solve: Any) -> Array:
        """Outputs at `ts` for inputs `x`."""


class AbstractModel(AbstractSystem):
    """A continuous-time dynamical system dy/dt = f(t, y, args).

    Subclasses are equinox modules: their numeric fields (declared with
    `dynsim.models.param`) are the parameters, structural settings are
    `eqx.field(static=True)`. Change parameters with
    `dataclasses.replace(model, rho=20.0)` or `eqx.tree_at`; neither recompiles.

    Required: `vector_field`, `initial_state` and `state_names`.
    """

    @abc.abstractmethod
    def vector_field(self, t: Any, y: PyTree[Array], args: Any) -> PyTree[Array]:
        """The drift f(t, y, args), a PyTree of the same structure as `y`."""

    def problem(self) -> Problem:
        return Problem("ode", self.vector_field)

    def predict(self, ts: Array, x: Array, **solve: Any) -> Array:
        """What `dynsim.fit` compares with its targets: the trajectory at `ts` from
        the initial state `x` (`solve`: solver, rtol, atol, adjoint, max_steps).
        Models that map other inputs to trajectories (input sequences, context
        observations) override it."""
        return rollout(self, x, ts, **solve)


class AbstractSDEModel(AbstractModel):
    """A stochastic system dy = f(t, y) dt + g(t, y) dW.

    `diffusion(t, y, args)` returns g such that g @ dW has the shape of y (a matrix,
    or a `lineax` operator); `noise_shape` is the shape of the Brownian motion W. The
    noise is Itô unless the solver is a Stratonovich solver (e.g. `heun`).
    """

    noise_shape: AbstractVar[tuple[int, ...]]

    @abc.abstractmethod
    def diffusion(self, t: Any, y: PyTree[Array], args: Any) -> Any:
        """The diffusion g(t, y, args) (matrix or lineax operator)."""

    def problem(self) -> Problem:
        return Problem(
            "sde",
            self.vector_field,
            diffusion=self.diffusion,
            noise_shape=tuple(self.noise_shape),
        )


class AbstractIMEXModel(AbstractModel):
    """A system written as f = f_nonstiff + f_stiff, for IMEX solvers (`kencarp*`).

    `vector_field` is their sum; the solver core treats `stiff_part` implicitly.
    """

    @abc.abstractmethod
    def nonstiff_part(self, t: Any, y: PyTree[Array], args: Any) -> PyTree[Array]:
        """The part integrated explicitly."""

    @abc.abstractmethod
    def stiff_part(self, t: Any, y: PyTree[Array], args: Any) -> PyTree[Array]:
        """The part integrated implicitly."""

    def vector_field(self, t, y, args):
        f = self.nonstiff_part(t, y, args)
        g = self.stiff_part(t, y, args)
        return jtu.tree_map(jnp.add, f, g)

    def problem(self) -> Problem:
        return Problem("imex", self.nonstiff_part, stiff=self.stiff_part)


class AbstractSemilinearModel(AbstractIMEXModel):
    """A system f = N(t, y) + A y whose stiff part A is linear and whose shifted
    systems (I − c A) x = r have a fast solver.

    `nonstiff_part` is N; `linear_part(y)` is A y; `factor_shifted(c)` prepares the
    solve for a given c (called once per step) and `solve_shifted(factor, r)` returns
    x. The `kencarp*` solvers then need one such solve per stage and no Jacobian.
    """

    @abc.abstractmethod
    def linear_part(self, y: PyTree[Array]) -> PyTree[Array]:
        """A y."""

    @abc.abstractmethod
    def factor_shifted(self, c: Array) -> PyTree:
        """What `solve_shifted` needs for I − c A."""

    @abc.abstractmethod
    def solve_shifted(self, factor: PyTree, rhs: PyTree[Array]) -> PyTree[Array]:
        """x with x − c A x = rhs."""

    def stiff_part(self, t, y, args):
        return self.linear_part(y)

    def problem(self) -> Problem:
        return Problem(
            "imex",
            self.nonstiff_part,
            stiff=self.stiff_part,
            linear_solve=(self._factor, self._solve),
        )

    def _factor(self, c, args):
        return self.factor_shifted(c)

    def _solve(self, factor, rhs, args):
        return self.solve_shifted(factor, rhs)


class AbstractMap(AbstractSystem):
    """A discrete-time system y_{n+1} = step(n, y_n, args).

    `dynsim.simulate(map_model, t_span=(0, n))` iterates it n times.
    """

    @abc.abstractmethod
    def step(self, n: Any, y: PyTree[Array], args: Any) -> PyTree[Array]:
        """The next state."""

    def problem(self) -> Problem:
        return Problem("map", self.step)


def parameters(model: eqx.Module) -> dict[str, Array]:
    """The model's numeric parameters, by name, including those of nested models.

    Nested models' parameters are named by attribute path, e.g. `"base.rho"`.
    """
    out: dict[str, Array] = {}
    for f in dataclasses.fields(model):
        value = getattr(model, f.name, None)
        if f.metadata.get(_PARAM, False):
            out[f.name] = value
        elif isinstance(value, AbstractSystem):
            for k, v in parameters(value).items():
                out[f"{f.name}.{k}"] = v
    return out


def check_parameter_names(model: Any, names: Any) -> dict[str, Array]:
    """Check that every name is a parameter of `model`; returns `parameters(model)`.

    **Raises:** `ValueError` naming the unknown parameter and the known ones.
    """
    known = parameters(model)
    for name in names:
        if name not in known:
            raise ValueError(
                f"{type(model).__name__} has no parameter {name!r}; "
                f"its parameters are: {', '.join(sorted(known)) or '(none)'}"
            )
    return known


def replace_parameters(model: Any, values: dict[str, ArrayLike]) -> Any:
    """A copy of `model` with the named (possibly dotted) parameters replaced.

    **Raises:** `ValueError` naming the unknown parameter and the known ones.
    """
    known = check_parameter_names(model, values)
    getters: list[Callable[[Any], Any]] = []
    news = []
    for name, value in values.items():
        getters.append(_getter(name))
        # In the parameter's own dtype (float32 in a single-precision scan).
        current = known[name]
        new = jnp.asarray(value, dtype=jnp.result_type(current))
        news.append(jnp.broadcast_to(new, jnp.shape(current)))
    return eqx.tree_at(lambda m: [g(m) for g in getters], model, news)


def _getter(path: str) -> Callable[[Any], Any]:
    parts = path.split(".")

    def get(m: Any) -> Any:
        for p in parts:
            m = getattr(m, p)
        return m

    return get


def describe(model: eqx.Module) -> dict[str, Any]:
    """A JSON-serialisable description of a model: its public type, parameter values
    and static settings (nested models described recursively).

    Values of traced parameters (inside `jit` / `vmap`) are recorded as None.
    """
    import numpy as np

    cls = type(model)
    public = f"dynsim.models.{cls.__name__}"
    from dynsim import models as _public_models

    path = (
        public
        if getattr(_public_models, cls.__name__, None) is cls
        else f"{cls.__module__}.{cls.__qualname__}"
    )
    params: dict[str, Any] = {}
    static: dict[str, Any] = {}
    children: dict[str, Any] = {}
    for f in dataclasses.fields(model):
        value = getattr(model, f.name, None)
        if f.metadata.get(_PARAM, False):
            try:
                params[f.name] = np.asarray(value).tolist()
            except (
                TypeError,
                jax.errors.ConcretizationTypeError,
                jax.errors.TracerArrayConversionError,
            ):
                params[f.name] = None
        elif isinstance(value, AbstractSystem):
            children[f.name] = describe(value)
        elif f.metadata.get("static", False) and isinstance(
            value, (int, float, str, bool, tuple)
        ):
            static[f.name] = value
    out: dict[str, Any] = {"type": path, "params": params}
    if static:
        out["static"] = static
    if children:
        out["children"] = children
    return out


def model_class(name: str) -> type:
    """A concrete model class shipped in `dynsim.models`, by name.

    Only dynsim's own models are resolved: nothing named in a file or config is
    imported. **Raises:** `ValueError` listing the known models.
    """
    from dynsim import models as public

    short = name.removeprefix("dynsim.models.")
    cls = getattr(public, short, None)
    if (
        not isinstance(cls, type)
        or not issubclass(cls, AbstractSystem)
        or short.startswith("Abstract")
    ):
        known = sorted(
            n
            for n, c in vars(public).items()
            if isinstance(c, type)
            and issubclass(c, AbstractSystem)
            and not n.startswith("Abstract")
        )
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(known)}")
    return cls


def from_description(desc: dict[str, Any]) -> Any:
    """Rebuild a model from `describe(model)` (dynsim's own model types only)."""
    cls = model_class(desc["type"])
    kwargs: dict[str, Any] = {}
    for k, v in desc.get("params", {}).items():
        if v is None:
            raise ValueError(f"parameter {k!r} of {desc['type']} was not recorded")
        kwargs[k] = v
    kwargs.update(desc.get("static", {}))
    for k, child in desc.get("children", {}).items():
        kwargs[k] = from_description(child)
    return cls(**kwargs)


def rollout(
    model: AbstractSystem,
    y0: Array,
    ts: Array,
    *,
    solver: str = "tsit5",
    rtol: float = 1e-6,
    atol: float = 1e-8,
    adjoint: Any = "recursive",
    max_steps: int = 4096,
) -> Array:
    """The states of an ODE model at `ts` from y0 at ts[0], differentiable in the
    model's weights (leaves of its problem's vector field, which every adjoint sees)
    through `adjoint`."""
    problem = model.problem()
    options = solve_options(
        problem.kind,
        solver=solver,
        rtol=rtol,
        atol=atol,
        adjoint=adjoint,
        max_steps=max_steps,
        saveat=SaveSpec(ts),
    )
    return solvers.integrate(problem, y0, ts[0], ts[-1], options=options).ys
