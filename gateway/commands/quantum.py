"""``csp quantum entangle / teleport / run / correct / worker``: quantum operations on Kafka.

Each command sends one request to ``quantum.requests`` and prints its result from
``quantum.results`` (a quantum worker must run: ``csp quantum worker`` or ``csp run``).
Exit codes: 0 OK, 1 the result is an error or a refusal (e.g. no entangled pair),
2 bad input (option, file), 3 the platform is unavailable (no broker, no worker answering).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from gateway.commands.output import fmt_of, print_csv

if TYPE_CHECKING:
    from gateway.quantum_sdk import QuantumClient

EXIT_OK, EXIT_REFUSED, EXIT_INPUT, EXIT_UNAVAILABLE = 0, 1, 2, 3

app = typer.Typer(
    help="Quantum operations (qiskit-aer) on Kafka: entangle, teleport, run circuits.", no_args_is_help=True
)

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", help="Stack data directory (default: CSP_DATA_DIR or .csp)", show_default=False
    ),
]
Namespace = Annotated[
    str, typer.Option("--namespace", help="Topic namespace (tests, side-by-side platforms)")
]
Json = Annotated[bool, typer.Option("--json", help="Machine-readable output (= --format json)")]
QFmt = Annotated[str, typer.Option("--format", help="text | json (the QuantumResult record) | csv (its fields "
                                    "as a header row and one row, lists JSON-encoded)")]
Noise = Annotated[
    str | None,
    typer.Option(
        "--noise",
        help="Noise model, e.g. depolarizing=0.01,t1_us=50,t2_us=70,gate_time_ns=50,readout_error=0.02",
    ),
]
Shots = Annotated[int, typer.Option("--shots", min=1, help="Shots")]
Timeout = Annotated[float, typer.Option("--timeout", help="Seconds to wait for the result")]


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _noise(text: str | None) -> dict[str, float] | None:
    from processors.quantum.requests import parse_noise_option

    try:
        return parse_noise_option(text)
    except ValueError as exc:
        raise _fail(f"--noise: {exc}", EXIT_INPUT) from None


def _client(data_dir: Path | None, namespace: str) -> QuantumClient:
    from gateway.quantum_sdk import QuantumClient
    from infra.settings import Settings
    from streams.admin import BrokerUnavailable, wait_ready

    settings = Settings(data_dir=data_dir) if data_dir is not None else Settings()
    try:
        client = QuantumClient.connect(settings, namespace=namespace)
        wait_ready(client.bootstrap, settings.kafka_timeout_s)
    except BrokerUnavailable as exc:
        raise _fail(str(exc), EXIT_UNAVAILABLE) from None
    except Exception as exc:
        raise _fail(str(exc), EXIT_UNAVAILABLE) from None
    return client


def _show(result: dict[str, Any], fmt: str) -> None:
    if fmt == "json":
        typer.echo(json.dumps(result, sort_keys=True, default=str))
    elif fmt == "csv":
        print_csv([dict(sorted(result.items()))])
    else:
        head = f"{result['operation']} {result['request_id']}: {result['status']}"
        if result["status"] != "OK":
            typer.echo(f"{head} [{result.get('error_code')}] {result.get('error')}")
        else:
            parts = [head]
            if result.get("fidelity") is not None:
                flag = "  BELOW THRESHOLD" if result.get("below_threshold") else ""
                parts.append(
                    f"fidelity {result['fidelity']:.6f} (threshold {result['fidelity_threshold']}){flag}"
                )
            if result.get("pair_id"):
                parts.append(f"pair {result['pair_id']}")
            if result.get("classical_bits"):
                parts.append(f"classical bits {result['classical_bits']}")
            if result.get("logical_error_rate") is not None:
                parts.append(
                    f"physical error rate {result['physical_error_rate']:.6f}, "
                    f"logical error rate {result['logical_error_rate']:.6f}"
                )
            if result.get("counts"):
                top = sorted(result["counts"].items(), key=lambda kv: -kv[1])[:8]
                parts.append("counts " + " ".join(f"{k}:{v}" for k, v in top))
            if result.get("statevector_re"):
                amps = [
                    complex(a, b)
                    for a, b in zip(result["statevector_re"], result["statevector_im"], strict=True)
                ]
                parts.append("statevector " + " ".join(f"{a:.4f}" for a in amps[:16]))
            typer.echo("\n  ".join(parts))
    if result["status"] != "OK":
        raise typer.Exit(EXIT_REFUSED)


def _call(client: QuantumClient, record: dict[str, Any], timeout_s: float, fmt: str) -> None:
    from gateway.quantum_sdk import QuantumTimeout

    with client:
        try:
            result = client.call(record, timeout_s)
        except QuantumTimeout as exc:
            raise _fail(str(exc), EXIT_UNAVAILABLE) from None
    _show(result, fmt)


@app.command()
def entangle(
    agents: Annotated[list[str], typer.Argument(help="Two agents (a Bell pair) or more (a GHZ state)")],
    noise: Noise = None,
    shots: Shots = 1024,
    timeout: Timeout = 60.0,
    fmt: QFmt = "text",
    as_json: Json = False,
    data_dir: DataDir = None,
    namespace: Namespace = "",
) -> None:
    """Entangle agents: records a pair (two agents) for a later teleport; prints the fidelity."""
    fmt = fmt_of(fmt, as_json)
    from processors.quantum.requests import request_record

    if len(agents) < 2:
        raise _fail("entangle needs at least two agents", EXIT_INPUT)
    record = request_record("entangle", agents=agents, noise=_noise(noise), shots=shots)
    _call(_client(data_dir, namespace), record, timeout, fmt)


@app.command()
def teleport(
    sender: Annotated[str, typer.Argument(help="Sending agent")],
    receiver: Annotated[str, typer.Argument(help="Receiving agent")],
    state: Annotated[
        str,
        typer.Option(
            "--state",
            help='The state: \'{"amplitudes": [0.707, 0.707], "phases": [0, 1.57]}\', or 0, 1, +, -',
        ),
    ],
    noise: Noise = None,
    shots: Shots = 1024,
    timeout: Timeout = 60.0,
    fmt: QFmt = "text",
    as_json: Json = False,
    data_dir: DataDir = None,
    namespace: Namespace = "",
) -> None:
    """Teleport a one-qubit state from SENDER to RECEIVER over an entangled pair (consumed)."""
    fmt = fmt_of(fmt, as_json)
    from processors.quantum.requests import parse_state_option, request_record

    try:
        parsed = parse_state_option(state)
    except ValueError as exc:
        raise _fail(str(exc), EXIT_INPUT) from None
    record = request_record(
        "teleport", agents=[sender, receiver], state=parsed, noise=_noise(noise), shots=shots
    )
    _call(_client(data_dir, namespace), record, timeout, fmt)


@app.command("run")
def run_circuit(
    file: Annotated[Path, typer.Argument(help="An OpenQASM 2 or 3 program")],
    noise: Noise = None,
    shots: Shots = 1024,
    statevector: Annotated[bool, typer.Option("--statevector", help="Also return the statevector")] = False,
    density_matrix: Annotated[
        bool, typer.Option("--density-matrix", help="Also return the density matrix")
    ] = False,
    timeout: Timeout = 60.0,
    fmt: QFmt = "text",
    as_json: Json = False,
    data_dir: DataDir = None,
    namespace: Namespace = "",
) -> None:
    """Run an OpenQASM circuit on the simulator: counts (and optionally the state)."""
    fmt = fmt_of(fmt, as_json)
    from processors.quantum.requests import request_record

    try:
        source = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(f"{file}: {exc}", EXIT_INPUT) from None
    version = "3.0" if "OPENQASM 3" in source else "2.0"
    record = request_record("circuit", circuit=source, qasm_version=version, shots=shots, noise=_noise(noise),
                            return_statevector=statevector, return_density_matrix=density_matrix)  # fmt: skip
    _call(_client(data_dir, namespace), record, timeout, fmt)


@app.command()
def correct(
    code: Annotated[str, typer.Argument(help="bit_flip or phase_flip")],
    error_rate: Annotated[
        float, typer.Option("--error-rate", min=0.0, max=1.0, help="Physical error probability")
    ],
    noise: Noise = None,
    shots: Shots = 1024,
    timeout: Timeout = 60.0,
    fmt: QFmt = "text",
    as_json: Json = False,
    data_dir: DataDir = None,
    namespace: Namespace = "",
) -> None:
    """The 3-qubit bit-flip / phase-flip code under an error rate: logical vs physical error rate."""
    fmt = fmt_of(fmt, as_json)
    from processors.quantum.requests import request_record

    record = request_record(
        "error_correction", code=code, error_rate=error_rate, noise=_noise(noise), shots=shots
    )
    _call(_client(data_dir, namespace), record, timeout, fmt)


@app.command()
def worker(
    worker_id: Annotated[
        str, typer.Option("--worker-id", help="Stable id: a restart fences the old worker")
    ] = "0",
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Requests per batch (one transaction)")
    ] = 100,
    data_dir: DataDir = None,
    namespace: Namespace = "",
) -> None:
    """Run the quantum processor in the foreground (Ctrl-C to stop). Run one per namespace."""
    from infra.settings import Settings
    from infra.stack import StackError, resolve_endpoints
    from processors.quantum.worker import serve
    from streams.admin import BrokerUnavailable, wait_ready
    from streams.logs import configure_logging

    if data_dir is not None:
        os.environ["CSP_DATA_DIR"] = str(data_dir)
    settings = Settings()
    configure_logging(settings.log_level)
    try:
        bootstrap = resolve_endpoints(settings).kafka_bootstrap
        wait_ready(bootstrap, settings.kafka_timeout_s)
    except (StackError, BrokerUnavailable) as exc:
        raise _fail(str(exc), EXIT_UNAVAILABLE) from None
    serve(bootstrap, settings, namespace=namespace, worker_id=worker_id, batch_size=batch_size)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="quantum")
