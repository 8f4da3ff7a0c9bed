"""/audit: status, verify, prove, consistency (the audit trail in ClickHouse; docs/audit.md)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from gateway.api.context import Context, ctx_of
from gateway.api.problems import Problem
from gateway.api.security import Principal, viewer

router = APIRouter(tags=["audit"])
Ctx = Annotated[Context, Depends(ctx_of)]
Viewer = Annotated[Principal, Depends(viewer)]


def _client(ctx: Context) -> Any:
    client = ctx.analytics.client()
    try:
        client.query("SELECT count() FROM audit_log")
    except Exception as exc:  # noqa: BLE001
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise Problem(503, "Service Unavailable", f"the audit trail is not in ClickHouse: {first}",
                      kind="audit-unavailable") from None  # fmt: skip
    return client


@router.get("/audit/status", summary="Entries and the newest checkpoint (viewer)")
def status(ctx: Ctx, _p: Viewer) -> dict[str, Any]:
    from projections.audit import store

    client = _client(ctx)
    rows, size = store.table_stats(client)
    cps = store.checkpoints(client, limit=1, latest_first=True)
    latest = None
    if cps:
        cp = cps[0]
        latest = {"tree_size": cp.tree_size, "root_hash": cp.root_hash.hex(), "origin": cp.origin,
                  "created_at": cp.created_at.isoformat()}  # fmt: skip
    return {"entries": size, "rows": rows, "latest_checkpoint": latest}


@router.get("/audit/verify", summary="Recompute every leaf and check every signed checkpoint (viewer)")
def verify(ctx: Ctx, _p: Viewer) -> dict[str, Any]:
    from projections.audit.keys import AuditKeyError, load_verifier
    from projections.audit.verify import verify_log

    try:
        verifier = load_verifier(ctx.config.settings, None)
    except (AuditKeyError, OSError) as exc:
        raise Problem(503, "Service Unavailable", f"no audit verifier key: {exc}", kind="audit-unavailable") from None
    report = verify_log(_client(ctx), verifier, origin=None, notes=[])
    doc: dict[str, Any] = report.to_json()
    return doc


@router.get("/audit/prove/{entry}", summary="Inclusion proof of an entry (viewer)")
def prove(entry: int, ctx: Ctx, _p: Viewer, size: Annotated[int | None, Query(ge=1)] = None) -> dict[str, Any]:
    from projections.audit.proofs import prove_inclusion

    if entry < 0:
        raise Problem(422, "Invalid Request", "entry must be >= 0", kind="validation")
    try:
        doc: dict[str, Any] = prove_inclusion(_client(ctx), entry, size)
    except LookupError as exc:
        raise Problem(404, "Not Found", str(exc), kind="audit-proof") from None
    return doc


@router.get("/audit/consistency", summary="Consistency proof between two tree sizes (viewer)")
def consistency(
    ctx: Ctx, _p: Viewer, old: Annotated[int, Query(ge=1)], new: Annotated[int, Query(ge=1)]
) -> dict[str, Any]:
    from projections.audit.proofs import prove_consistency

    try:
        doc: dict[str, Any] = prove_consistency(_client(ctx), old, new)
    except LookupError as exc:
        raise Problem(404, "Not Found", str(exc), kind="audit-proof") from None
    return doc
