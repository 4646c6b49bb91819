"""Observables for `dynsim.scan`: per-point reductions computed on the device."""

from ._observables import (
    OBSERVABLE_KINDS as OBSERVABLE_KINDS,
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
    observable as observable,
)
