"""Explicit labelled transition systems: the compiled form of a CSP process.

This is the contract between the CSPm front end (which compiles processes),
the checker (which analyses them) and the Kafka runtime (which executes them).
It is pure data: no I/O.

States are integers ``0 .. num_states-1``. Transitions are stored in CSR form:
the transitions of state ``s`` are ``labels[offsets[s]:offsets[s+1]]`` and
``targets[offsets[s]:offsets[s+1]]``. Labels index into ``events``; index
``TAU`` (0) is the invisible event and ``TICK`` (1) is successful termination.
Every other entry of ``events`` is a visible CSPm event written as CSPm
writes it, for example ``"c.1.true"``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

TAU = 0
TICK = 1
TAU_NAME = "τ"
TICK_NAME = "✓"

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class LTS:
    """An explicit, finite labelled transition system in CSR form."""

    events: tuple[str, ...]
    initial: int
    offsets: IntArray
    labels: IntArray
    targets: IntArray
    # Optional human-readable description of each state (for counterexamples
    # and ``csp explore``); empty when not recorded.
    state_names: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if len(self.events) < 2 or self.events[TAU] != TAU_NAME or self.events[TICK] != TICK_NAME:
            raise ValueError("events[0] must be τ and events[1] must be ✓")
        if self.offsets.ndim != 1 or len(self.offsets) < 1:
            raise ValueError("offsets must be a 1-D array of num_states + 1 entries")
        if len(self.labels) != len(self.targets) or int(self.offsets[-1]) != len(self.labels):
            raise ValueError("labels/targets must have offsets[-1] entries")

    @property
    def num_states(self) -> int:
        return len(self.offsets) - 1

    @property
    def num_transitions(self) -> int:
        return len(self.labels)

    def successors(self, state: int) -> Iterator[tuple[int, int]]:
        """(label, target) pairs leaving ``state``."""
        lo, hi = int(self.offsets[state]), int(self.offsets[state + 1])
        for i in range(lo, hi):
            yield int(self.labels[i]), int(self.targets[i])

    def event_index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.events)}


def from_edges(
    events: tuple[str, ...],
    initial: int,
    num_states: int,
    edges: list[tuple[int, int, int]],
    state_names: tuple[str, ...] = (),
) -> LTS:
    """Build an LTS from (source, label, target) triples."""
    if edges:
        arr = np.asarray(edges, dtype=np.int64)
        order = np.lexsort((arr[:, 2], arr[:, 1], arr[:, 0]))
        arr = arr[order]
        src, lab, tgt = arr[:, 0], arr[:, 1], arr[:, 2]
    else:
        src = lab = tgt = np.zeros(0, dtype=np.int64)
    counts = np.bincount(src, minlength=num_states) if len(src) else np.zeros(num_states, dtype=np.int64)
    offsets = np.zeros(num_states + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return LTS(events, initial, offsets, lab.astype(np.int64), tgt.astype(np.int64), state_names)
