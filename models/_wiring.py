"""Synaptic wirings of liquid time-constant networks (the ncps library's
conventions: adjacency[src, dest] ∈ {−1, 0, +1}, the sign the synapse's reversal
potential; motor (output) neurons are the first `output_dim` units)."""

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True, eq=False)
class Wiring:
    """Which neurons and inputs are connected, and with which polarity.

    - `adjacency`: (units, units), entry [src, dest] ∈ {−1, 0, 1}.
    - `sensory_adjacency`: (inputs, units).
    - `output_dim`: the number of motor neurons (units 0 … output_dim − 1).
    """

    adjacency: np.ndarray
    sensory_adjacency: np.ndarray
    output_dim: int

    def __post_init__(self):
        a, s = np.asarray(self.adjacency), np.asarray(self.sensory_adjacency)
        if a.ndim != 2 or a.shape[0] != a.shape[1]:
            raise ValueError(f"adjacency must be square, got shape {a.shape}")
        if s.ndim != 2 or s.shape[1] != a.shape[0]:
            raise ValueError(
                f"sensory_adjacency must be (inputs, {a.shape[0]}), got {s.shape}"
            )
        if not set(np.unique(np.concatenate([a.ravel(), s.ravel()]))) <= {-1, 0, 1}:
            raise ValueError("adjacency entries must be -1, 0 or +1")
        if not 1 <= self.output_dim <= a.shape[0]:
            raise ValueError(
                f"output_dim must lie in 1..{a.shape[0]}, got {self.output_dim}"
            )

    @property
    def units(self) -> int:
        return self.adjacency.shape[0]

    @property
    def input_dim(self) -> int:
        return self.sensory_adjacency.shape[0]

    @property
    def synapse_count(self) -> int:
        return int(np.abs(self.adjacency).sum())

    @property
    def sensory_synapse_count(self) -> int:
        return int(np.abs(self.sensory_adjacency).sum())


def fully_connected(
    units: int, inputs: int, output_dim: int | None = None, seed: int = 1111
) -> Wiring:
    """Every unit and input connected to every unit (self-connections included);
    polarity −1 with probability 1/3, as in ncps' `FullyConnected`."""
    rng = np.random.default_rng(seed)
    polarity = np.array([-1, 1, 1])
    return Wiring(
        rng.choice(polarity, (units, units)),
        rng.choice(polarity, (inputs, units)),
        units if output_dim is None else output_dim,
    )


def ncp(
    inputs: int,
    inter: int,
    command: int,
    motor: int,
    *,
    sensory_fanout: int,
    inter_fanout: int,
    recurrent_command_synapses: int,
    motor_fanin: int,
    seed: int = 22222,
) -> Wiring:
    """A neural circuit policy (Lechner et al., Nature Machine Intelligence 2020):
    sensory → inter → command (recurrent) → motor layers with the given fan-outs
    and fan-ins, random polarities ±1, every neuron reachable. Units are ordered
    motor, command, inter."""
    if sensory_fanout > inter or inter_fanout > command or motor_fanin > command:
        raise ValueError(
            "fan-outs and fan-ins cannot exceed the size of the layer they reach: "
            f"sensory_fanout {sensory_fanout} <= inter {inter}, inter_fanout "
            f"{inter_fanout} <= command {command}, motor_fanin {motor_fanin} <= "
            f"command {command}"
        )
    rng = np.random.default_rng(seed)
    units = inter + command + motor
    motors = np.arange(motor)
    commands = motor + np.arange(command)
    inters = motor + command + np.arange(inter)
    a = np.zeros((units, units), dtype=int)
    s = np.zeros((inputs, units), dtype=int)

    def sign():
        return rng.choice([-1, 1])

    def feed(adj, sources, targets, fanout, src_offset=0):
        # Every source reaches `fanout` targets; unreached targets get a source.
        reached = set()
        for src in sources:
            for dest in rng.choice(targets, fanout, replace=False):
                adj[src - src_offset, dest] = sign()
                reached.add(int(dest))
        for dest in targets:
            if int(dest) not in reached:
                adj[rng.choice(sources) - src_offset, dest] = sign()

    feed(s, np.arange(inputs), inters, sensory_fanout)
    feed(a, inters, commands, inter_fanout)
    for _ in range(recurrent_command_synapses):
        a[rng.choice(commands), rng.choice(commands)] = sign()
    for dest in motors:
        for src in rng.choice(commands, motor_fanin, replace=False):
            a[src, dest] = sign()
    for src in commands:
        if not a[src, motors].any():
            a[src, rng.choice(motors)] = sign()
    return Wiring(a, s, motor)
