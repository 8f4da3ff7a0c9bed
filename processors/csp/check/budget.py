"""The default bound of a state-space search: memory, not a state count.

A search calls :meth:`MemoryBudget.check` now and then (per BFS level or
batch); it raises :class:`MemoryExhausted` — naming the states reached —
before the machine runs out, i.e. when the memory still available to the
system falls below a reserve. ``--max-states`` remains a separate, explicit
limit. Reads ``/proc/meminfo`` (Linux); elsewhere the budget never trips.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MEMINFO = Path("/proc/meminfo")
# Stop when less than this fraction of the machine's memory (and at least RESERVE_MIN bytes) is left.
RESERVE_FRACTION = 0.05
RESERVE_MIN = 256 << 20


class MemoryExhausted(Exception):
    """The search would exhaust the machine's memory; ``states`` were reached."""

    def __init__(self, states: int, available: int, what: str = "state space") -> None:
        self.states = states
        self.available = available
        super().__init__(
            f"out of memory: the {what} search stopped after {states:,} states "
            f"with {available >> 20} MiB of memory left (the state space is too large for this machine; "
            f"bound it with --max-states, or make the process smaller)"
        )


def _meminfo() -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        text = MEMINFO.read_text(encoding="ascii")
    except OSError:
        return out
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            out[key] = int(parts[0]) * 1024
    return out


@dataclass
class MemoryBudget:
    """Raises :class:`MemoryExhausted` when available memory drops below ``reserve`` bytes."""

    reserve: int
    what: str = "state space"

    @staticmethod
    def default(what: str = "state space") -> MemoryBudget:
        info = _meminfo()
        total = info.get("MemTotal", 0)
        return MemoryBudget(max(RESERVE_MIN, int(total * RESERVE_FRACTION)), what)

    def available(self) -> int | None:
        got = _meminfo().get("MemAvailable")
        return got

    def check(self, states: int, extra: int = 0) -> None:
        """Raise if less than the reserve is available, or would be after allocating ``extra`` bytes."""
        avail = self.available()
        if avail is not None and avail - extra < self.reserve:
            raise MemoryExhausted(states, avail, self.what)
