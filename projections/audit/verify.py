"""``csp audit verify``: recompute every leaf and the tree from ClickHouse, check every checkpoint.

Per entry (exact position): a missing index (deleted row), several rows at one index
(inserted row), canonical bytes that do not parse, that name another index (moved /
reordered row) or other source coordinates than the row's columns, a stored leaf hash that
is not ``SHA-256(0x00 || canonical)``, an offset that goes backwards within its
topic-partition (reordered or duplicated record).

Per checkpoint: the Ed25519 signature of its note, the row's columns against the note, and
the recomputed root at its size against the signed root. A root mismatch with clean entries
(rows rewritten together with their hashes) is localised with the checkpoint's frontier,
which its signed root authenticates, to the perfect subtree that holds the first bad entry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from projections.audit import canonical, store
from projections.audit.merkle import Frontier, leaf_hash
from projections.audit.note import NoteError, Verifier, open_checkpoint


@dataclass(frozen=True)
class Finding:
    kind: str  # deleted | inserted | modified | reordered | checkpoint
    message: str
    entry: int | None = None
    range_end: int | None = None  # the first bad entry lies in [entry, range_end)


@dataclass
class VerifyReport:
    entries: int = 0
    rows: int = 0
    checkpoints: int = 0
    checkpoints_verified: int = 0
    external_checkpoints: int = 0  # checkpoints read from the audit topic
    covered: int = 0  # entries covered by the newest verified checkpoint
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def first_bad(self) -> Finding | None:
        """The earliest entry-level finding, unless a checkpoint mismatch ends before it (then
        that checkpoint's range holds an earlier bad entry)."""
        def at(f: Finding) -> int:
            return f.entry if f.entry is not None else 0

        exact = [f for f in self.findings if f.entry is not None and f.kind != "checkpoint"]
        ranges = [f for f in self.findings if f.entry is not None and f.kind == "checkpoint"]
        if exact:
            first = min(exact, key=at)
            if not any(r.range_end is not None and r.range_end <= at(first) for r in ranges):
                return first
        if ranges:
            return min(ranges, key=at)
        return self.findings[0] if self.findings else None

    def to_json(self) -> dict[str, Any]:
        first = self.first_bad
        return {
            "ok": self.ok, "entries": self.entries, "rows": self.rows, "checkpoints": self.checkpoints,
            "checkpoints_verified": self.checkpoints_verified, "covered": self.covered,
            "external_checkpoints": self.external_checkpoints,
            "uncovered": max(0, self.entries - self.covered),
            "first_bad_entry": None if first is None else first.entry,
            "first_bad": None if first is None else asdict(first),
            "findings": [asdict(f) for f in self.findings],
        }


@dataclass
class _Target:
    size: int
    root: bytes
    frontier: tuple[bytes, ...]


def _check_checkpoints(client: Any, verifier: Verifier, origin: str | None, notes: Sequence[str],
                       report: VerifyReport) -> list[_Target]:
    targets: dict[int, _Target] = {}
    for cp in store.checkpoints(client):
        report.checkpoints += 1
        try:
            body = open_checkpoint(cp.note, [verifier], origin)
        except NoteError as exc:
            report.findings.append(Finding("checkpoint", f"checkpoint row at size {cp.tree_size}: {exc}"))
            continue
        if body.size != cp.tree_size or body.root != cp.root_hash:
            report.findings.append(Finding(
                "checkpoint", f"checkpoint row at size {cp.tree_size}: its columns differ from its signed note "
                f"(size {body.size})"))
        frontier = cp.frontier
        try:
            if Frontier(body.size, frontier).root() != body.root:
                frontier = ()
        except ValueError:
            frontier = ()
        targets.setdefault(body.size, _Target(body.size, body.root, frontier))
    for note in notes:
        report.external_checkpoints += 1
        try:
            body = open_checkpoint(note, [verifier], origin)
        except NoteError as exc:
            report.findings.append(Finding("checkpoint", f"a checkpoint from the audit topic: {exc}"))
            continue
        known = targets.get(body.size)
        if known is None:
            targets[body.size] = _Target(body.size, body.root, ())
        elif known.root != body.root:
            report.findings.append(Finding(
                "checkpoint", f"two signed checkpoints for size {body.size} disagree (ClickHouse vs the "
                "audit topic): the log was rewritten after one of them", None))
    return sorted(targets.values(), key=lambda t: t.size)


def _locate(target: _Target, computed: Frontier, good: int) -> tuple[int, int]:
    """The range holding the first bad entry, given a verified prefix of ``good`` entries."""
    if target.frontier:
        for (lo, hi), want, got in zip(computed.ranges(), target.frontier, computed.hashes, strict=True):
            if want != got:
                return max(lo, good), hi
    return good, target.size


def verify_log(client: Any, verifier: Verifier, *, origin: str | None = None,
               notes: Sequence[str] = ()) -> VerifyReport:
    """Verify the tables ``client`` reaches; ``notes``: more signed checkpoints (e.g. read from
    the ``audit.log`` topic) the log must also match."""
    report = VerifyReport()
    targets = _check_checkpoints(client, verifier, origin, notes, report)
    count, top = store.table_stats(client)
    report.rows = count
    frontier = Frontier()
    offsets: dict[tuple[str, int], tuple[int, int]] = {}
    ti = 0
    good = 0  # entries proven by the newest matching checkpoint
    structural = False  # an index is missing: the tree past it cannot match

    def finish_index(index: int, rows: list[store.StoredEntry]) -> None:
        nonlocal ti, good
        if len(rows) > 1:
            report.findings.append(Finding(
                "inserted", f"entry {index}: {len(rows)} rows hold this index (an inserted row)", index))
        chosen = None
        for row in rows:
            problem = _entry_problem(index, row)
            if problem is None:
                chosen = row
                break
        if chosen is None:
            problem = _entry_problem(index, rows[0])
            assert problem is not None
            report.findings.append(Finding(problem[0], problem[1], index))
            chosen = rows[0]
            # The stored leaf hash may still be the original (only the bytes were changed):
            # the tree uses it, so the checkpoints tell whether it is.
            leaf = chosen.leaf_hash if len(chosen.leaf_hash) == 32 else leaf_hash(chosen.canonical)
        else:
            leaf = leaf_hash(chosen.canonical)
        tp = (chosen.source_topic, chosen.source_partition)
        prev = offsets.get(tp)
        if prev is not None and chosen.source_offset <= prev[1]:
            report.findings.append(Finding(
                "reordered", f"entry {index}: {tp[0]}[{tp[1]}] offset {chosen.source_offset} comes after "
                f"offset {prev[1]} (entry {prev[0]}): entries out of source order", index))
        offsets[tp] = (index, chosen.source_offset)
        if structural:  # past a missing index the tree cannot be rebuilt
            return
        frontier.append(leaf)
        while ti < len(targets) and targets[ti].size == frontier.size:
            target = targets[ti]
            if frontier.root() == target.root:
                report.checkpoints_verified += 1
                report.covered = good = target.size
            else:
                lo, hi = _locate(target, frontier, good)
                report.findings.append(Finding(
                    "checkpoint", f"the entries do not match the signed checkpoint at size {target.size}: "
                    f"the first bad entry is in {lo}..{hi - 1}", lo, hi))
            ti += 1

    expected = 0
    pending: list[store.StoredEntry] = []
    for row in store.iter_entries(client, 0, top):
        if pending and row.entry_index != pending[0].entry_index:
            finish_index(pending[0].entry_index, pending)
            pending = []
        if not pending:
            if row.entry_index > expected:
                missing = row.entry_index - expected
                report.findings.append(Finding(
                    "deleted", f"entry {expected}{'' if missing == 1 else f'..{row.entry_index - 1}'} missing "
                    f"({missing} deleted row{'s' if missing > 1 else ''})", expected, row.entry_index))
                structural = True
            expected = row.entry_index + 1
        pending.append(row)
    if pending:
        finish_index(pending[0].entry_index, pending)
    report.entries = expected
    for target in [] if structural else targets[ti:]:
        report.findings.append(Finding(
            "deleted", f"the signed checkpoint at size {target.size} covers entries {frontier.size}.."
            f"{target.size - 1}, which the table does not hold", frontier.size, target.size))
    return report


def _entry_problem(index: int, row: store.StoredEntry) -> tuple[str, str] | None:
    try:
        c = canonical.decode(row.canonical)
    except canonical.CanonicalError as exc:
        return "modified", f"entry {index}: {exc}"
    if c.entry_index != index:
        return "reordered", f"entry {index}: holds the canonical bytes of entry {c.entry_index} (moved row)"
    if (c.topic, c.partition, c.offset) != (row.source_topic, row.source_partition, row.source_offset):
        return "modified", (
            f"entry {index}: columns say {row.source_topic}[{row.source_partition}]@{row.source_offset}, "
            f"its canonical bytes say {c.topic}[{c.partition}]@{c.offset}")
    if leaf_hash(row.canonical) != row.leaf_hash:
        return "modified", f"entry {index}: canonical bytes do not hash to the stored leaf hash (modified)"
    return None
