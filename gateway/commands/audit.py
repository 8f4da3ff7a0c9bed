"""``csp audit verify / prove / consistency / verify-proof``: the verifiable audit trail.

Exit codes: 0 ok, 1 tampering found or proof rejected, 2 bad input, 3 ClickHouse unavailable.
ClickHouse is ``--clickhouse URL`` (an ``http://`` server, e.g. the projector's loopback SQL
endpoint, or ``chdb:///abs/path``), else ``CSP_CLICKHOUSE_URL``, else the embedded one: through
the running projector's SQL endpoint when there is one (``infra.projector.sql_endpoint``),
else ``chdb://<data dir>/clickhouse`` directly. Heavy modules are imported inside the commands.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from gateway.commands.output import Fmt, Json, csv_text, emit, fmt_of

if TYPE_CHECKING:
    from infra.settings import Settings
    from projections.audit.note import Verifier

EXIT_OK, EXIT_BAD, EXIT_INPUT, EXIT_UNAVAILABLE = 0, 1, 2, 3

app = typer.Typer(help="The verifiable audit trail: verify, prove inclusion and consistency.", no_args_is_help=True)

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Stack data directory (default: CSP_DATA_DIR or .csp)", show_default=False),
]
ClickHouse = Annotated[
    str | None,
    typer.Option("--clickhouse", help="ClickHouse URL: http(s)://user:pass@host:port or chdb:///abs/path "
                 "(default: CSP_CLICKHOUSE_URL, else the embedded one in the data dir)", show_default=False),
]
ProofFmt = Annotated[str, typer.Option("--format", help="json (the default; text is the same JSON) | csv "
                                    "(a header row and one row, nested fields JSON-encoded)")]
Database = Annotated[str | None, typer.Option("--database", help="ClickHouse database (default: the client's)")]
VKey = Annotated[
    str | None,
    typer.Option("--vkey", help="Verifier key <name>+<id>+<key>, or a file holding it "
                 "(default: the public half of the data dir's signing key)", show_default=False),
]


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _settings(data_dir: Path | None) -> Settings:
    from infra.settings import Settings

    return Settings(data_dir=data_dir) if data_dir is not None else Settings()


def _projector_endpoint(settings: Settings) -> tuple[str, str] | None:
    """(url, password) of the running projector's SQL endpoint, when the projector exists."""
    import importlib

    try:
        projector = importlib.import_module("infra.projector")
    except ImportError:
        return None
    found = projector.sql_endpoint(settings.resolved_data_dir())
    return None if found is None else (str(found[0]), str(found[1]))


def _client(settings: Settings, url: str | None, database: str | None) -> Any:
    from infra.clickhouse import clickhouse_client
    from infra.endpoints import clickhouse_url

    target = url or clickhouse_url(settings)
    kwargs: dict[str, Any] = {"database": database} if database else {}
    if url is None and target.startswith("chdb://"):
        endpoint = _projector_endpoint(settings)  # the projector owns the embedded ClickHouse
        if endpoint is not None:
            target = endpoint[0]
            kwargs.update(username="csp", password=endpoint[1])
    try:
        client = clickhouse_client(target, **kwargs)
        client.query("SELECT count() FROM audit_log")
    except ValueError as exc:
        raise _fail(str(exc), EXIT_INPUT) from None
    except Exception as exc:  # clickhouse-connect / chdb raise many kinds
        hint = " (the projector holds the embedded one: pass --clickhouse http://... of its SQL endpoint)" \
            if target.startswith("chdb://") else ""
        raise _fail(f"ClickHouse at {target} is not usable: {str(exc).splitlines()[0]}{hint}", EXIT_UNAVAILABLE) from None
    return client


def _verifier(settings: Settings, vkey: str | None, *, required: bool) -> Verifier | None:
    from projections.audit.keys import AuditKeyError, load_verifier

    try:
        return load_verifier(settings, vkey)
    except (AuditKeyError, OSError) as exc:
        if required or vkey:
            raise _fail(f"{exc} (pass --vkey)", EXIT_INPUT) from None
        return None


def _emit(doc: dict[str, Any], out: Path | None, fmt: str = "json") -> None:
    """The document as indented JSON (text and json) or as one CSV row, on stdout or in OUT."""
    text = csv_text([doc]) if fmt == "csv" else json.dumps(doc, indent=2) + "\n"
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text)
        typer.echo(f"wrote {out}", err=True)


@app.command("verify")
def verify(
    clickhouse: ClickHouse = None, database: Database = None, vkey: VKey = None,
    kafka: Annotated[bool, typer.Option(
        "--kafka", help="Also check the checkpoints announced on the audit topic (CSP_KAFKA_BOOTSTRAP "
        "or the running stack): catches checkpoint rows deleted from ClickHouse")] = False,
    audit_topic: Annotated[str, typer.Option("--audit-topic", help="The audit topic (with --kafka)")] = "audit.log",
    chain: Annotated[bool, typer.Option(
        "--chain", help="Also check every checkpoint root against its anchor on the EVM chain "
        "(CSP_WEB3_PROVIDER_URL or --provider; AuditAnchor of csp audit anchor-deploy or --anchor)")] = False,
    provider: Annotated[str | None, typer.Option("--provider", help="EVM JSON-RPC URL (with --chain)")] = None,
    anchor: Annotated[str | None, typer.Option("--anchor", help="AuditAnchor address (with --chain)")] = None,
    data_dir: DataDir = None, fmt: Fmt = "text", json_out: Json = False,
) -> None:
    """Recompute every leaf and the tree from ClickHouse; check every signed checkpoint.

    Names the first bad entry (deleted, inserted, modified or reordered). With --chain, a
    history rewritten and re-signed with the audit key is caught by the roots anchored on chain."""
    from projections.audit.verify import verify_log

    fmt = fmt_of(fmt, json_out)
    settings = _settings(data_dir)
    verifier = _verifier(settings, vkey, required=True)
    assert verifier is not None
    client = _client(settings, clickhouse, database)
    notes: list[str] = []
    if kafka:
        from infra.endpoints import StackError, resolve_endpoints
        from projections.audit.topic import read_checkpoint_notes

        try:
            notes = read_checkpoint_notes(resolve_endpoints(settings).kafka_bootstrap, settings, audit_topic)
        except (StackError, LookupError) as exc:
            raise _fail(str(exc), EXIT_UNAVAILABLE) from None
    report = verify_log(client, verifier, origin=None, notes=notes)
    chain_doc = _verify_chain(settings, client, provider, anchor) if chain else None
    chain_ok = chain_doc is None or not chain_doc["findings"]
    if fmt != "text":
        doc = report.to_json()
        if chain_doc is not None:
            doc["chain"] = chain_doc
            doc["ok"] = bool(doc["ok"]) and chain_ok
        _emit(doc, None, fmt)
    else:
        typer.echo(f"{report.entries} entries, {report.checkpoints} checkpoints"
                   + (f" + {report.external_checkpoints} from {audit_topic}" if kafka else "")
                   + f" ({report.checkpoints_verified} sizes verified, covering {report.covered} entries)")
        for f in report.findings[:20]:
            typer.echo(f"  {f.kind}: {f.message}")
        if len(report.findings) > 20:
            typer.echo(f"  ... {len(report.findings) - 20} more")
        first = report.first_bad
        if first is None:
            uncovered = report.entries - report.covered
            typer.echo("OK" + (f" ({uncovered} newest entries not yet under a checkpoint)" if uncovered else ""))
        else:
            where = f"entry {first.entry}" if first.entry is not None else "a checkpoint"
            typer.echo(f"TAMPERED: first bad entry: {where} ({first.kind})")
        if chain_doc is not None:
            typer.echo(f"chain: {chain_doc['anchored']} of {chain_doc['checkpoints']} checkpoints anchored on "
                       f"{chain_doc['contract']}")
            for finding in chain_doc["findings"]:
                typer.echo(f"  anchor: {finding['message']}")
            typer.echo("chain OK" if chain_ok else "TAMPERED: the log does not match the roots anchored on chain")
    raise typer.Exit(EXIT_OK if report.ok and chain_ok else EXIT_BAD)


def _verify_chain(settings: Settings, client: Any, provider: str | None, anchor: str | None) -> dict[str, Any]:
    """Every checkpoint root in ClickHouse against the AuditAnchor contract's roots."""
    from processors.ledger.anchor import anchored_roots, compare_with_chain, load_anchor_address
    from projections.audit import store

    url = provider or settings.web3_provider_url
    if not url:
        raise _fail("--chain needs an EVM JSON-RPC node: --provider URL or CSP_WEB3_PROVIDER_URL "
                    "(the in-process development chain lives inside the ledger worker)", EXIT_INPUT)
    contract = anchor or load_anchor_address(settings.resolved_data_dir(), settings.audit_anchor_address)
    if contract is None:
        raise _fail("--chain needs the AuditAnchor address: --anchor, CSP_AUDIT_ANCHOR_ADDRESS, "
                    "or csp audit anchor-deploy", EXIT_INPUT)
    from web3 import Web3

    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 30}))
    try:
        anchored = anchored_roots(w3, contract)
    except Exception as exc:
        raise _fail(f"cannot read the anchors of {contract} at {url}: {str(exc).splitlines()[0]}",
                    EXIT_UNAVAILABLE) from None
    checkpoints = [(cp.tree_size, cp.root_hash) for cp in store.checkpoints(client)]
    findings = compare_with_chain(checkpoints, anchored)
    return {
        "contract": contract,
        "checkpoints": len(checkpoints),
        "anchored": sum(1 for size, _ in checkpoints if size in anchored),
        "findings": [{"size": f.size, "message": f.message} for f in findings],
    }


@app.command("anchor-deploy")
def anchor_deploy(
    wait: Annotated[float, typer.Option("--wait", help="Seconds to wait for the receipt")] = 60.0,
    data_dir: DataDir = None, fmt: Fmt = "text",
) -> None:
    """Deploy the AuditAnchor contract through the ledger (as the platform) and record its address.

    Then `csp ledger worker --anchor` anchors audit checkpoints on it."""
    from gateway.commands.runtime import _platform
    from processors.ledger.anchor import save_anchor_address

    fmt = fmt_of(fmt)
    settings = _settings(data_dir)
    platform = _platform(data_dir, "")
    client = platform.ledger()
    client.keys.create("platform")
    tx_id = client.submit("deploy", "platform", contract="AuditAnchor")
    receipt = client.receipt(tx_id, timeout_s=wait)
    if receipt is None:
        raise _fail(f"no receipt for {tx_id} within {wait:g}s: is a ledger worker running?", EXIT_UNAVAILABLE)
    if receipt["status"] != "SUCCESS":
        raise _fail(f"AuditAnchor deployment {receipt['status']}: {receipt.get('reason')}", EXIT_BAD)
    path = save_anchor_address(settings.resolved_data_dir(), str(receipt["contract_address"]), client.chain_id)
    if fmt != "text":
        emit(fmt, {"contract": "AuditAnchor", "address": str(receipt["contract_address"]),
                   "chain_id": client.chain_id, "recorded_in": str(path)})  # fmt: skip
        return
    typer.echo(f"AuditAnchor {receipt['contract_address']} (recorded in {path})")


@app.command("prove")
def prove(
    entry: Annotated[int, typer.Argument(help="Entry index", min=0)],
    size: Annotated[int | None, typer.Option("--size", help="Tree size (default: the newest checkpoint's)")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the JSON (or CSV) here")] = None,
    clickhouse: ClickHouse = None, database: Database = None, data_dir: DataDir = None, fmt: ProofFmt = "json",
) -> None:
    """An inclusion proof of ENTRY (JSON), anchored in a signed checkpoint."""
    from projections.audit.proofs import prove_inclusion

    fmt = fmt_of(fmt)
    client = _client(_settings(data_dir), clickhouse, database)
    try:
        doc = prove_inclusion(client, entry, size)
    except LookupError as exc:
        raise _fail(str(exc), EXIT_BAD) from None
    _emit(doc, out, fmt)


@app.command("consistency")
def consistency(
    old: Annotated[int, typer.Argument(help="Older tree size", min=1)],
    new: Annotated[int, typer.Argument(help="Newer tree size", min=1)],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the JSON (or CSV) here")] = None,
    clickhouse: ClickHouse = None, database: Database = None, data_dir: DataDir = None, fmt: ProofFmt = "json",
) -> None:
    """A consistency proof (JSON) that the tree of size OLD is a prefix of the tree of size NEW."""
    from projections.audit.proofs import prove_consistency

    fmt = fmt_of(fmt)
    client = _client(_settings(data_dir), clickhouse, database)
    try:
        doc = prove_consistency(client, old, new)
    except LookupError as exc:
        raise _fail(str(exc), EXIT_BAD) from None
    _emit(doc, out, fmt)


@app.command("verify-proof")
def verify_proof(
    file: Annotated[Path, typer.Argument(help="Proof JSON from `csp audit prove` or `consistency` ('-': stdin)")],
    vkey: VKey = None, data_dir: DataDir = None, fmt: Fmt = "text",
) -> None:
    """Check a proof offline: no platform needed. With a verifier key, also the checkpoint signature."""
    from projections.audit.merkle import ProofError
    from projections.audit.proofs import verify_bundle

    fmt = fmt_of(fmt)
    try:
        text = sys.stdin.read() if str(file) == "-" else file.read_text()
        doc = json.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _fail(f"{file}: {exc}", EXIT_INPUT) from None
    verifier = _verifier(_settings(data_dir), vkey, required=False)
    try:
        lines = verify_bundle(doc, verifier)
    except ProofError as exc:
        if fmt != "text":
            emit(fmt, {"ok": False, "type": doc.get("type") if isinstance(doc, dict) else None,
                       "checked": [], "error": str(exc)})  # fmt: skip
        else:
            typer.echo(f"REJECTED: {exc}")
        raise typer.Exit(EXIT_BAD) from None
    if fmt != "text":
        emit(fmt, {"ok": True, "type": doc.get("type"), "checked": lines, "error": None})
        return
    for line in lines:
        typer.echo(line)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="audit")
