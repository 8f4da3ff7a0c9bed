"""``csp ledger``: agents' signed transactions on the EVM chain, through Kafka.

Exit codes: 0 the transaction succeeded, 1 it was refused or reverted, 2 bad input,
3 the platform is unavailable (no stack, or no ledger worker answered in time).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from processors.ledger.keys import Keystore

from gateway.commands.output import Fmt, Json, emit, fmt_of, print_csv
from gateway.commands.runtime import (
    EXIT_INPUT,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_UNAVAILABLE,
    DataDir,
    _fail,
    _platform,
)

app = typer.Typer(help="Signed transactions on an EVM chain (contracts Agreement, AuditAnchor).",
                  no_args_is_help=True)
keys_app = typer.Typer(help="Agent identities: one Ethereum account per agent.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")

Agent = Annotated[str, typer.Option("--agent", "-a", help="The agent whose key signs and sends")]
Wait = Annotated[float, typer.Option("--wait", help="Seconds to wait for the receipt (0: do not wait)")]


def _arg(text: str) -> Any:
    """A CLI argument: JSON when it parses (7, true, ["0x.."]), else the string itself."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _print_receipt(receipt: dict[str, Any], fmt: str) -> None:
    if fmt != "text":
        emit(fmt, dict(sorted(receipt.items())), sort_keys=True)
        return
    line = f"{receipt['status']} {receipt['tx_id']}"
    if receipt.get("tx_hash"):
        line += f" tx={receipt['tx_hash']} block={receipt['block_number']} gas={receipt['gas_used']}"
    if receipt.get("contract_address"):
        line += f" contract={receipt['contract_address']}"
    typer.echo(line)
    if receipt.get("reason"):
        typer.echo(f"  reason: {receipt['reason']}")
    for log in json.loads(receipt.get("logs_json") or "[]"):
        typer.echo(f"  event {log['event']} {json.dumps(log['args'], sort_keys=True)}")


def _submit(kind: str, agent: str, wait: float, fmt: str, data_dir: Any, **kwargs: Any) -> None:
    from processors.ledger.keys import KeyError_
    from processors.ledger.requests import RequestError

    platform = _platform(data_dir, "")
    client = platform.ledger()
    try:
        tx_id = client.send(client.build(kind, agent, **kwargs))
    except (RequestError, KeyError_, ValueError) as exc:
        raise _fail(str(exc), EXIT_INPUT) from None
    if wait <= 0:
        if fmt != "text":
            emit(fmt, {"tx_id": tx_id})
            return
        typer.echo(tx_id)
        return
    receipt = client.receipt(tx_id, timeout_s=wait)
    if receipt is None:
        raise _fail(
            f"no receipt for {tx_id} within {wait:g}s: is a ledger worker running (csp ledger worker)? "
            "The request stays on ledger.transactions and will be processed when one is.",
            EXIT_UNAVAILABLE,
        )
    _print_receipt(receipt, fmt)
    raise typer.Exit(EXIT_OK if receipt["status"] == "SUCCESS" else EXIT_REFUSED)


@app.command()
def deploy(
    contract: Annotated[str, typer.Argument(help="Agreement or AuditAnchor")],
    args: Annotated[list[str] | None, typer.Argument(help="Constructor arguments (JSON each)")] = None,
    agent: Agent = "platform",
    wait: Wait = 60.0,
    fmt: Fmt = "text",
    as_json: Json = False,
    data_dir: DataDir = None,
) -> None:
    """Deploy a contract; prints the receipt with the contract's address."""
    from processors.ledger.artifacts import UnknownContractError, artifact

    fmt = fmt_of(fmt, as_json)
    try:
        artifact(contract)
    except UnknownContractError as exc:
        raise _fail(str(exc), EXIT_INPUT) from None
    _submit("deploy", agent, wait, fmt, data_dir, contract=contract, args=[_arg(a) for a in args or []])


@app.command()
def call(
    contract: Annotated[str, typer.Argument(help="NAME@ADDRESS, e.g. Agreement@0x5FbD...")],
    function: Annotated[str, typer.Argument(help="Function to call")],
    args: Annotated[list[str] | None, typer.Argument(help="Arguments (JSON each)")] = None,
    agent: Agent = "platform",
    wait: Wait = 60.0,
    fmt: Fmt = "text",
    as_json: Json = False,
    data_dir: DataDir = None,
) -> None:
    """Call a function of a deployed contract in a transaction (events and revert reasons shown)."""
    fmt = fmt_of(fmt, as_json)
    name, sep, address = contract.partition("@")
    if not sep or not address:
        raise _fail(f"contract {contract!r}: use NAME@ADDRESS (e.g. Agreement@0x5FbD...)", EXIT_INPUT)
    _submit("call", agent, wait, fmt, data_dir, contract=name, address=address, function=function,
            args=[_arg(a) for a in args or []])


@app.command()
def transfer(
    address: Annotated[str, typer.Argument(help="Recipient address")],
    wei: Annotated[int, typer.Argument(min=0, help="Amount in wei")],
    agent: Agent = "platform",
    wait: Wait = 60.0,
    fmt: Fmt = "text",
    as_json: Json = False,
    data_dir: DataDir = None,
) -> None:
    """Send ether from an agent's account."""
    _submit("transfer", agent, wait, fmt_of(fmt, as_json), data_dir, address=address, value_wei=wei)


@app.command()
def tx(
    tx_id: Annotated[str, typer.Argument(help="Request id printed by deploy/call/transfer")],
    wait: Wait = 5.0,
    fmt: Fmt = "text",
    as_json: Json = False,
    data_dir: DataDir = None,
) -> None:
    """Show the receipt of a request."""
    fmt = fmt_of(fmt, as_json)
    receipt = _platform(data_dir, "").ledger().receipt(tx_id, timeout_s=max(wait, 0.5))
    if receipt is None:
        raise _fail(f"no receipt for {tx_id} (yet)", EXIT_REFUSED)
    _print_receipt(receipt, fmt)


@app.command()
def contracts(fmt: Fmt = "text") -> None:
    """List the contracts that can be deployed."""
    from processors.ledger.artifacts import artifact, contract_names

    fmt = fmt_of(fmt)
    rows = [{"name": name, "functions": [i["name"] for i in artifact(name).abi if i.get("type") == "function"]}
            for name in contract_names()]  # fmt: skip
    if fmt != "text":
        emit(fmt, rows)
        return
    for row in rows:
        typer.echo(f"{row['name']}: {', '.join(row['functions'])}")


def _keystore(data_dir: Path | None) -> Keystore:
    from infra.settings import Settings
    from processors.ledger.keys import keystore_for

    settings = Settings() if data_dir is None else Settings(data_dir=data_dir)
    return keystore_for(settings.resolved_data_dir(), settings.ledger_keys)


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(help="Agent name")], fmt: Fmt = "text", data_dir: DataDir = None
) -> None:
    """Create the agent's key (kept 0600 in the data dir); prints its address."""
    fmt = fmt_of(fmt)
    try:
        account = _keystore(data_dir).create(name)
    except ValueError as exc:
        raise _fail(str(exc), EXIT_INPUT) from None
    if fmt != "text":
        emit(fmt, {"agent": name, "address": account.address})
        return
    typer.echo(f"{name} {account.address}")


@keys_app.command("list")
def keys_list(fmt: Fmt = "text", as_json: Json = False, data_dir: DataDir = None) -> None:
    """List agents and their addresses (json: one object, agent -> address; csv: a row per agent)."""
    fmt = fmt_of(fmt, as_json)
    agents = _keystore(data_dir).agents()
    if fmt == "json":
        typer.echo(json.dumps(agents, sort_keys=True))
    elif fmt == "csv":
        print_csv([{"agent": name, "address": address} for name, address in sorted(agents.items())])
    else:
        for name, address in agents.items():
            typer.echo(f"{name} {address}")


@app.command()
def worker(
    provider: Annotated[str | None, typer.Option("--provider", help="EVM JSON-RPC URL (default: eth-tester)")] = None,
    worker_id: Annotated[str, typer.Option("--worker-id")] = "0",
    data_dir: DataDir = None,
) -> None:
    """Run the ledger processor in the foreground (Ctrl-C to stop)."""
    import os

    from processors.ledger.worker import main as worker_main

    if data_dir is not None:
        os.environ["CSP_DATA_DIR"] = str(data_dir)
    platform = _platform(data_dir, "")
    args = ["--bootstrap", platform.bootstrap, "--worker-id", worker_id]
    if provider:
        args += ["--provider", provider]
    raise typer.Exit(worker_main(args))


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="ledger")
