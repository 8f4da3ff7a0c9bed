"""Idempotence of derived commands: offers the channel bridge makes on behalf of a Kafka record.

A channel message, a linked output event or a service result becomes an OFFER whose command
id is a function of where it came from (``ch:<topic>:<partition>:<offset>``,
``ln:<route>:<instance>:<seq>``, ``svc:<request_id>``). On the embedded broker a consumer
sees the records of aborted transactions, so the same derived command can reach the runtime
twice; the runtime applies it once: it remembers, per command partition, the derived ids it
has applied (rebuilt on recovery from the events' command ids) and skips a repeat.

Only these prefixes are tracked: commands from the SDK/CLI (random uuids) cost nothing.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

PREFIXES = ("ch:", "ln:", "svc:")
WINDOW = 200_000  # derived ids remembered per command partition


def is_derived(command_id: str) -> bool:
    return command_id.startswith(PREFIXES)


class DerivedWindow:
    """The derived command ids applied on one command partition (bounded, oldest forgotten first)."""

    __slots__ = ("_ids", "limit")

    def __init__(self, limit: int = WINDOW) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self.limit = limit

    def seen(self, command_id: str) -> bool:
        """True when ``command_id`` was applied already; else remember it and return False."""
        ids = self._ids
        if command_id in ids:
            return True
        ids[command_id] = None
        if len(ids) > self.limit:
            ids.popitem(last=False)
        return False

    def __len__(self) -> int:
        return len(self._ids)

    @classmethod
    def from_events(cls, events: Iterable[Mapping[str, Any]], committed: int) -> DerivedWindow:
        """The window after the committed commands of a partition (events of later commands are ignored)."""
        w = cls()
        for ev in events:
            cid = ev.get("command_id") or ""
            off = ev.get("command_offset")
            if cid.startswith(PREFIXES) and (off is None or off < committed):
                w.seen(cid)
        return w
