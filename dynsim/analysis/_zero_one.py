"""The 0–1 test for chaos: Gottwald & Melbourne, "A new test for chaos in
deterministic systems", Proc. R. Soc. A 460 (2004) 603–611, in the correlation form
of "On the implementation of the 0–1 test for chaos", SIAM J. Appl. Dyn. Syst. 8
(2009) 129–145.

For an observable φ(j), j = 1 … N, and a frequency c ∈ (π/5, 4π/5), the translation
variables p_c(n) + i q_c(n) = Σ_{j ≤ n} φ(j) e^{ijc} stay bounded for regular
dynamics and behave like a Brownian motion for chaotic dynamics. Their mean square
displacement M_c(n) = ⟨|z(j + n) − z(j)|²⟩_j (n ≤ N/10, the mean over the same
N − N/10 values of j for every n), less the oscillatory term
(Eφ)²(1 − cos nc)/(1 − cos c), is D_c(n); K_c is the correlation of D_c(n) with n,
and K the median of K_c over many c: K ≈ 1 chaotic, K ≈ 0 regular. The median
over c removes the rare resonant frequencies. The data must not be oversampled:
sample a flow at about the time over which it decorrelates (e.g. a fraction of a
mean period), or use a map, a Poincaré section or a series of maxima.
"""

from __future__ import annotations

import dataclasses
import json
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from dynsim.solvers import Status

from .._custom_types import Series
from .._protocol import AbstractResult, checked, freeze_fields
from .._results import RunInfo
from ._series import as_series

#: The shortest series the test reads: n_cut = N/10 must hold enough lags.
MIN_LENGTH = 100


@dataclasses.dataclass(frozen=True, eq=False)
class ZeroOneTest(AbstractResult):
    """The 0–1 test of one series or of each of many.

    - `K`: the median of `K_c` over the frequencies (() or (series,)): ≈ 1 chaotic,
      ≈ 0 regular.
    - `K_c`: the correlation of D_c(n) with n for each frequency `c` ((c,) or
      (series, c)).
    - `status`: per series, `SUCCESS`, or `NONFINITE` for a constant series (no
      correlation to take; its `K` is NaN); `message`, `info`.
    """

    K: np.ndarray
    K_c: np.ndarray
    c: np.ndarray
    status: np.ndarray
    message: str
    info: RunInfo

    kind: ClassVar[str] = "zero_one_test"

    def field_dims(self, name: str) -> tuple[str, ...]:
        series = ("series",) if np.ndim(self.K) else ()
        return {"K": series, "status": series, "K_c": (*series, "c"), "c": ("c",)}.get(
            name, ()
        )

    def __post_init__(self):
        freeze_fields(self)

    @property
    def chaotic(self) -> np.ndarray:
        """K > ½ (per series)."""
        return np.asarray(self.K) > 0.5

    def __repr__(self) -> str:
        k = np.atleast_1d(self.K)
        what = f"K={k[0]:.3f}" if np.ndim(self.K) == 0 else f"{k.size} series"
        return f"ZeroOneTest({what}, {self.message!r})"


@jax.jit
def _k_c(phi, c):
    """K_c of one series for one frequency (module docstring)."""
    n = phi.size
    n_cut = n // 10
    length = n - n_cut
    j = jnp.arange(1, n + 1, dtype=phi.dtype)
    z = jnp.cumsum(phi * jnp.exp(1j * c * j))
    lags = jnp.arange(1, n_cut + 1)
    # Σ_{j < L} |z(j + n) − z(j)|² = Σ|z(j + n)|² + Σ|z(j)|² − 2 Re Σ z̄(j) z(j + n),
    # the last term for all n at once by FFT.
    power = jnp.concatenate([jnp.zeros(1), jnp.cumsum(jnp.abs(z) ** 2)])
    ahead = power[lags + length] - power[lags]
    here = power[length]
    size = 1 << int(np.ceil(np.log2(2 * n)))
    a = jnp.fft.fft(z[:length], size)
    b = jnp.fft.fft(z, size)
    cross = jnp.fft.ifft(jnp.conj(a) * b)[lags]
    m = (ahead + here - 2 * cross.real) / length
    mean = jnp.mean(phi)
    d = m - mean**2 * (1 - jnp.cos(lags * c)) / (1 - jnp.cos(c))
    x = lags - jnp.mean(lags)
    y = d - jnp.mean(d)
    return jnp.sum(x * y) / jnp.sqrt(jnp.sum(x * x) * jnp.sum(y * y))


_k_all = jax.jit(jax.vmap(jax.vmap(_k_c, (None, 0)), (0, None)))


def zero_one_test(
    series: Series,
    *,
    n_c: int = 100,
    seed: int = 0,
    throw: bool = False,
) -> ZeroOneTest:
    """The 0–1 test for chaos of a series (n,) or of each of many (series, n) at
    once (module docstring): K ≈ 1 for chaotic, K ≈ 0 for regular dynamics, from
    `n_c` frequencies c drawn uniformly in (π/5, 4π/5) (NumPy generator `seed`).

    **Returns:** a `ZeroOneTest` (`K`, `K_c`, `c`, per-series `status`);
    `throw=True` raises `RuntimeError` if a series cannot be tested (constant).

    **Raises:** `ValueError` for NaNs, fewer than 100 points or `n_c` < 1.
    """
    x, single = as_series(series, MIN_LENGTH)
    if n_c < 1:
        raise ValueError(f"n_c must be >= 1, got {n_c}")
    c = np.random.default_rng(seed).uniform(np.pi / 5, 4 * np.pi / 5, n_c)
    k_c = np.array(_k_all(jnp.asarray(x), jnp.asarray(c)))
    constant = np.ptp(x, axis=1) == 0
    k_c[constant] = np.nan
    K = np.median(k_c, axis=1)
    status = np.where(constant, int(Status.NONFINITE), int(Status.SUCCESS))
    bad = int(constant.sum())
    message = "K computed" if not bad else f"{bad} constant series have no K (NaN)"
    info = RunInfo(
        model="",
        model_params="{}",
        state_names=(),
        solver=json.dumps({"name": "zero_one_test", "n_c": n_c, "seed": seed}),
    )
    if single:
        K, k_c, status = K[0], k_c[0], status[0]
    result = ZeroOneTest(K, k_c, c, np.asarray(status, np.int32), message, info)
    return checked(result, throw)
