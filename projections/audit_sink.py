"""The audit step: every consumed record is appended to the audit trail.

The trail itself (Merkle log, RFC 6962 hashing, signed checkpoints, the ``audit_log``
table's DDL) lives in :mod:`projections.audit`. This module only drives it through its
interface, ``projections.audit.log``:

* ``AuditLog.append(entries: Sequence[AuditSource]) -> list[dict]``: the ``audit_log`` rows
  to insert, where ``AuditSource = (topic, partition, offset, key, value, timestamp_ms)``;
* ``AUDIT_DDL: list[str]``.

When that module is not importable, the projector runs without the audit step
(:func:`load_audit` returns None and says why).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from projections.txread import LogRecord

AuditSource = tuple[str, int, int, bytes | None, bytes | None, int]
AUDIT_TABLE = "audit_log"


class AuditAppender(Protocol):
    def append(self, entries: Sequence[AuditSource]) -> list[dict[str, Any]]: ...


@dataclass
class AuditModule:
    ddl: list[str]
    open: Callable[[Any], AuditAppender]  # client -> a log positioned after what the table holds


def load_audit() -> tuple[AuditModule | None, str]:
    """The audit module, or None and the reason it is not available."""
    try:
        mod = importlib.import_module("projections.audit.log")
    except ImportError as exc:
        return None, f"audit trail not available ({exc})"
    cls: Any = mod.AuditLog
    opener = getattr(cls, "open", None)

    def make(client: Any) -> AuditAppender:
        # Reconciliation point with projections.audit: a log that resumes from the table.
        if callable(opener):
            return opener(client)  # type: ignore[no-any-return]
        return cls(client)  # type: ignore[no-any-return]

    return AuditModule(list(mod.AUDIT_DDL), make), "ok"


@dataclass
class AuditSink:
    """Appends a batch's records to the audit log and inserts the rows it returns."""

    module: AuditModule
    client: Any
    appended: int = 0

    def __post_init__(self) -> None:
        self._log = self.module.open(self.client)

    def reopen(self) -> None:
        """Rebuild the log from the table (after a batch turned out to be there already)."""
        self._log = self.module.open(self.client)

    def entries(self, records: Sequence[LogRecord]) -> list[dict[str, Any]]:
        rows = self._log.append([(r.topic, r.partition, r.offset, r.key, r.value, r.timestamp) for r in records])
        self.appended += len(rows)
        return rows

    def insert(self, rows: list[dict[str, Any]], token: str) -> int:
        """Insert ``rows``; returns how many were written (0: the token was seen before)."""
        if not rows:
            return 0
        names = list(rows[0])
        summary = self.client.insert(
            AUDIT_TABLE, [[row[n] for n in names] for row in rows], column_names=names,
            settings={"insert_deduplication_token": token},
        )
        return int(summary.written_rows)
