"""Audit-trail benchmark: entries appended per second to the Merkle log (`AuditLog.append`).

Each entry is one consumed record (a 200-byte value, a 16-byte key, 4 topics x 4 partitions):
canonical bytes, RFC 6962 leaf hash, frontier update and the `audit_log` row. The baseline,
measured in the same run on the same records, is the bare cost of SHA-256 over each value
(`hashlib.sha256(value).digest()` in a loop), the floor any per-record hashing pays.

Usage: python bench/audit.py [--entries N] [--batch B] [--value-bytes V]
Last line: RESULT audit_per_s=... sha256_per_s=... ratio=...
`measure_audit_per_s()` is importable (bench/projection.py reports it as audit_per_s).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from projections.audit.log import AuditLog  # noqa: E402

TOPICS = ("csp.events", "csp.commands", "csp.channel.buffer.right", "agents.requests")


Record = tuple[str, int, int, bytes, bytes, int]


def _records(n: int, value_bytes: int) -> list[Record]:
    value = bytes(range(256)) * (value_bytes // 256 + 1)
    return [
        (TOPICS[i % 4], (i >> 2) % 4, i, b"instance-%08d" % (i % 1000), value[i % 50: i % 50 + value_bytes],
         1_767_225_600_000 + i)
        for i in range(n)
    ]


def measure_audit_per_s(entries: int = 200_000, batch: int = 5_000, value_bytes: int = 200) -> float:
    """Entries appended per second (best of 3 runs over fresh logs)."""
    recs = _records(entries, value_bytes)
    best = 0.0
    for _ in range(3):
        log = AuditLog()
        t0 = time.perf_counter()
        for i in range(0, entries, batch):
            log.append(recs[i:i + batch])
        best = max(best, entries / (time.perf_counter() - t0))
    return best


def measure_sha256_per_s(entries: int = 200_000, value_bytes: int = 200) -> float:
    recs = _records(entries, value_bytes)
    values = [r[4] for r in recs]
    best = 0.0
    sha = hashlib.sha256
    for _ in range(3):
        t0 = time.perf_counter()
        for v in values:
            sha(v).digest()
        best = max(best, entries / (time.perf_counter() - t0))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--entries", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=5_000)
    ap.add_argument("--value-bytes", type=int, default=200)
    args = ap.parse_args()
    audit = measure_audit_per_s(args.entries, args.batch, args.value_bytes)
    sha = measure_sha256_per_s(args.entries, args.value_bytes)
    print(f"audit append: {audit:,.0f} entries/s  (batch {args.batch}, {args.value_bytes}-byte values)")
    print(f"bare sha256:  {sha:,.0f} records/s  (baseline, same records)")
    print(f"RESULT audit_per_s={audit:.0f} sha256_per_s={sha:.0f} ratio={audit / sha:.3f}")


if __name__ == "__main__":
    main()
