"""Observables for `dynsim.scan`: per-point reductions computed on the device."""

from ._observables import (
    AbstractObservable as AbstractObservable,
    AbstractRunningObservable as AbstractRunningObservable,
    Amplitude as Amplitude,
    FinalState as FinalState,
    Function as Function,
    Max as Max,
    Mean as Mean,
    Min as Min,
    Peaks as Peaks,
    Period as Period,
    SignChanges as SignChanges,
)
from ._section import Section as Section
from ._tangent import LyapunovExponent as LyapunovExponent

_BY_NAME: dict[str, type[AbstractObservable]] = {
    "final": FinalState,
    "mean": Mean,
    "max": Max,
    "min": Min,
    "amplitude": Amplitude,
    "sign_changes": SignChanges,
    "peaks": Peaks,
    "period": Period,
    "section": Section,
    "lyapunov": LyapunovExponent,
}

#: The observables' kind names, as configs write them.
OBSERVABLE_KINDS: tuple[str, ...] = tuple(_BY_NAME)


def observable(kind: str, **options) -> AbstractObservable:
    """An observable by kind name (the names configs use): one of `OBSERVABLE_KINDS`.

    **Raises:** `ValueError` for an unknown kind or option.
    """
    if kind not in _BY_NAME:
        raise ValueError(
            f"unknown observable kind {kind!r}; known kinds: {', '.join(_BY_NAME)}"
        )
    try:
        return _BY_NAME[kind](**options)
    except TypeError as e:
        raise ValueError(f"observable {kind!r}: {e}") from None
