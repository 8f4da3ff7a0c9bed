"""Idempotence on ``command_id``: a bounded per-instance window of recent command ids (pure).

Each instance keeps the ids of its last ``size`` commands that changed it (produced events),
as 8-byte hashes packed in one ``bytes`` object (most recent first): about 8 bytes per
remembered command. A command whose id is in the window is not applied again; the runtime
answers it with a DUPLICATE refusal naming the original command's events. On recovery the
window is rebuilt from the instance's events (every ``CspEvent`` carries its command id).
Commands with an empty id are never deduplicated.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

DEFAULT_WINDOW = 16
EMPTY = b""


def command_hash(command_id: str) -> bytes:
    """8 bytes identifying ``command_id`` within this process (str hashes are cached by Python)."""
    return hash(command_id).to_bytes(8, "little", signed=True)


def seen(window: bytes, h: bytes) -> bool:
    """Is the hash ``h`` one of the window's entries (8-byte aligned)?"""
    i = window.find(h)
    while i >= 0:
        if not i & 7:
            return True
        i = window.find(h, i + 1)
    return False


def push(window: bytes, h: bytes, size: int = DEFAULT_WINDOW) -> bytes:
    """The window with ``h`` added as the most recent entry (the oldest falls out past ``size``)."""
    return h + window[: 8 * (size - 1)] if size > 0 else EMPTY


def window_from_events(
    events: Mapping[int, Mapping[str, Any]], upto: int, size: int = DEFAULT_WINDOW
) -> bytes:
    """The window of an instance whose events (seq -> CspEvent) are folded up to seq ``upto``."""
    ids: list[str] = []
    for seq in range(upto, 0, -1):
        ev = events.get(seq)
        if ev is None:
            break
        cid = ev.get("command_id") or ""
        if cid and (not ids or ids[-1] != cid) and cid not in ids:
            ids.append(cid)
            if len(ids) >= size:
                break
    return b"".join(command_hash(c) for c in ids)
