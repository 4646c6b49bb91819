"""`dynsim.fit`: train a model's weights on trajectories with optax, through
diffrax's adjoints."""

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from jaxtyping import Array, ArrayLike
from tqdm.auto import tqdm

from dynsim.models import AbstractModel, AbstractPredictor
from dynsim.solvers import Status

from ._protocol import AbstractResult, freeze_fields


@dataclasses.dataclass(frozen=True, eq=False)
class FitResult(AbstractResult):
    """The outcome of `dynsim.fit`.

    - `model`: the trained model (the last parameters with a finite loss; None
      when loaded from a file).
    - `losses`: the training loss (mean squared error of the batch) at every step
      taken.
    - `validation`: `(steps, losses)` on the validation data, if given.
    - `status`: `SUCCESS`, or `NONFINITE` when the loss stopped being finite
      (training then stops there); `message`.
    """

    model: Any
    losses: np.ndarray
    validation: tuple[np.ndarray, np.ndarray] | None
    status: int = 0
    message: str = "successful"

    kind: ClassVar[str] = "fit"
    transient: ClassVar[tuple[str, ...]] = ("model",)
    dims: ClassVar = {"losses": ("step",)}
    codecs: ClassVar = {
        "validation": (
            lambda v: None if v is None else [np.asarray(a).tolist() for a in v],
            lambda v: None if v is None else tuple(np.asarray(a) for a in v),
        )
    }

    def __post_init__(self):
        freeze_fields(self)

    def __repr__(self) -> str:
        if not len(self.losses):
            return f"FitResult({type(self.model).__name__}: no step; {self.message})"
        val = (
            ""
            if self.validation is None
            else f", validation {self.validation[1][-1]:.3g}"
        )
        return (
            f"FitResult({type(self.model).__name__}: {len(self.losses)} steps, "
            f"loss {self.losses[0]:.3g} -> {self.losses[-1]:.3g}{val})"
        )


def predict(model: Any, ts: Array, x: Array, **solve: Any) -> Array:
    """What `fit` compares with the targets: `model.predict(ts, x, **solve)` when the
    model has one (latent ODEs, LTC / CfC cells: x = context or inputs), else the
    model's trajectory at `ts` from the initial state x."""
    if not isinstance(model, (AbstractModel, AbstractPredictor)):
        raise TypeError(
            f"cannot fit a {type(model).__name__}: it is neither a dynsim model nor "
            "a dynsim.models.AbstractPredictor"
        )
    return model.predict(ts, x, **solve)


def _check_data(data: Any, name: str) -> tuple[Array, Array, Array]:
    try:
        ts, x, y = (jnp.asarray(a) for a in data)
    except (TypeError, ValueError):
        raise ValueError(
            f"{name} must be a tuple (ts, x, y): times (times,) or (batch, times), "
            "inputs x (initial states, context or input sequences) and targets y "
            "(batch, times, dim)"
        ) from None
    if y.ndim != 3:
        raise ValueError(
            f"{name}: targets y must be (batch, times, dim), got {y.shape}"
        )
    batch, times = y.shape[:2]
    if x.shape[0] != batch or (ts.ndim == 2 and ts.shape[0] != batch):
        raise ValueError(
            f"{name}: ts {ts.shape}, x {x.shape} and y {y.shape} disagree on the batch "
            f"size {batch}"
        )
    if ts.ndim not in (1, 2) or ts.shape[-1] != times:
        raise ValueError(
            f"{name}: ts must hold the {times} times of y, as (times,) or "
            f"(batch, times); got {ts.shape}"
        )
    return ts, x, y


@functools.cache
def _adam(learning_rate: float) -> optax.GradientTransformation:
    # One optimizer object per rate, so that a new fit reuses the compiled step.
    return optax.adam(learning_rate)


@eqx.filter_jit
def _train_step(params, static, opt_state, ts, x, y, solve, optimizer):
    loss, grads = eqx.filter_value_and_grad(_loss)(params, static, ts, x, y, solve)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return eqx.apply_updates(params, updates), opt_state, loss


def _loss(params, static, ts, x, y, solve):
    model = eqx.combine(params, static)
    ts_axis = 0 if ts.ndim == 2 else None
    pred = jax.vmap(lambda t, xi: predict(model, t, xi, **solve), (ts_axis, 0))(ts, x)
    return jnp.mean((pred - y) ** 2)


_score = eqx.filter_jit(_loss)


def fit(
    model: AbstractModel | AbstractPredictor,
    data: tuple[ArrayLike, ArrayLike, ArrayLike],
    *,
    steps: int = 1000,
    batch_size: int | None = None,
    optimizer: optax.GradientTransformation | None = None,
    learning_rate: float = 3e-3,
    solver: str = "tsit5",
    rtol: float = 1e-6,
    atol: float = 1e-8,
    adjoint: Any = "recursive",
    max_steps: int = 4096,
    validation: tuple[ArrayLike, ArrayLike, ArrayLike] | None = None,
    validate_every: int = 50,
    trainable: Callable[[Any], bool] = eqx.is_inexact_array,
    key: Array | None = None,
    progress: bool | None = None,
    throw: bool = False,
) -> FitResult:
    """Train `model` so that its predictions match trajectories, by gradient descent
    with optax through diffrax's adjoints.

    **Arguments:**

    - `model`: a `dynsim` model with trainable arrays (e.g. `NeuralODE`), or a
      module with `predict(ts, x, **solve)` (`LatentODE`, `LTC`, `CfC`).
    - `data`: `(ts, x, y)`: times `(times,)` (shared) or `(batch, times)`; inputs x
      with a leading batch axis (initial states `(batch, dim)` for a model
      trajectory; context observations or input sequences for `predict`); targets
      y `(batch, times, dim)`. The loss is the mean squared error.
    - `steps`, `batch_size` (default: all), `optimizer` (default Adam at
      `learning_rate`).
    - `solver`, `rtol`, `atol`, `max_steps`: the solves inside the loss.
    - `adjoint`: how gradients pass through the solves: `"recursive"` (diffrax's
      checkpointed backpropagation, exact, the default), `"backsolve"` (the
      continuous adjoint, O(1) memory), `"direct"`, or a diffrax adjoint.
    - `validation`: held-out `(ts, x, y)`, scored every `validate_every` steps.
    - `trainable`: which leaves of the model train (default: every float array).
    - `key`: PRNG key of the minibatches.
    - `progress`: show a progress bar with the loss (tqdm; in a notebook, its
      widget); default on, False silences it.

    - `throw`: raise `RuntimeError` when the loss turns non-finite, instead
      of returning a result with status `NONFINITE`.

    **Returns:** a `FitResult` (`model`, `losses`, `validation`, `status`).

    **Raises:** `ValueError` for malformed data or options.
    """
    if adjoint in (None, "forward"):
        raise ValueError(
            "training needs reverse-mode gradients: use adjoint='recursive', "
            "'backsolve', 'direct' or a diffrax adjoint"
        )
    if not (isinstance(steps, int) and steps > 0):
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    ts, x, y = _check_data(data, "data")
    n = y.shape[0]
    batch_size = n if batch_size is None else int(batch_size)
    if not 0 < batch_size <= n:
        raise ValueError(f"batch_size must lie in 1..{n}, got {batch_size}")
    val = None if validation is None else _check_data(validation, "validation")
    solve = dict(solver=solver, rtol=rtol, atol=atol, adjoint=adjoint)
    solve["max_steps"] = max_steps
    optimizer = _adam(learning_rate) if optimizer is None else optimizer
    params, static = eqx.partition(model, trainable)
    opt_state = optimizer.init(params)
    key = jr.key(0) if key is None else key

    def step(params, opt_state, ts, x, y):
        return _train_step(params, static, opt_state, ts, x, y, solve, optimizer)

    score = _score
    losses = np.empty(steps)
    val_steps, val_losses = [], []
    show = True if progress is None else bool(progress)
    failed = None
    with tqdm(total=steps, disable=not show, desc="fit", unit="step") as bar:
        for i in range(steps):
            if batch_size < n:
                key, sub = jr.split(key)
                idx = jr.choice(sub, n, (batch_size,), replace=False)
                batch = (ts[idx] if ts.ndim == 2 else ts, x[idx], y[idx])
            else:
                batch = (ts, x, y)
            new_params, new_state, loss = step(params, opt_state, *batch)
            losses[i] = float(loss)
            if not np.isfinite(losses[i]):
                message = (
                    f"the training loss became {losses[i]} at step {i}; lower the "
                    "learning rate, loosen the tolerances or raise max_steps"
                )
                if throw:
                    raise RuntimeError(f"FitResult: {message}")
                failed = (int(Status.NONFINITE), message, i)
                break
            params, opt_state = new_params, new_state
            postfix = {"loss": f"{losses[i]:.3g}"}
            if val is not None and (i % validate_every == 0 or i == steps - 1):
                val_steps.append(i)
                val_losses.append(float(score(params, static, *val, solve)))
            if val_losses:
                postfix["val"] = f"{val_losses[-1]:.3g}"
            bar.set_postfix(postfix, refresh=False)
            bar.update()
    validation_out = (
        None if val is None else (np.asarray(val_steps), np.asarray(val_losses))
    )
    status, message, taken = (int(Status.SUCCESS), "successful", steps)
    if failed is not None:
        status, message, taken = failed
    return FitResult(
        eqx.combine(params, static), losses[:taken], validation_out, status, message
    )
