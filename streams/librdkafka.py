"""The librdkafka that confluent-kafka ships, for C tools such as kcat.

Debian bookworm's kcat links the system librdkafka 2.0.2, whose ApiVersions v3 request the
embedded Tansu broker answers in a form it cannot parse ("Read underflow"). The confluent-kafka
wheel bundles a current librdkafka (2.16), ABI-compatible with the soname ``librdkafka.so.1``
that kcat loads; pointing the dynamic linker at it is all kcat needs.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from pathlib import Path

SONAME = "librdkafka.so.1"


def bundled_library() -> Path | None:
    """The wheel's ``confluent_kafka.libs/librdkafka-<hash>.so.1``, or None (no such wheel here)."""
    spec = importlib.util.find_spec("confluent_kafka")
    if spec is None or spec.origin is None:
        return None
    libs = Path(spec.origin).resolve().parent.parent / "confluent_kafka.libs"
    found = sorted(libs.glob("librdkafka-*.so.1")) if libs.is_dir() else []
    return found[0] if found else None


def library_dir(cache: Path) -> Path | None:
    """A directory under ``cache`` holding ``librdkafka.so.1`` -> the bundled library (made once)."""
    lib = bundled_library()
    if lib is None:
        return None
    target = cache / "librdkafka"
    link = target / SONAME
    if link.is_symlink() and link.resolve() == lib:
        return target
    target.mkdir(parents=True, exist_ok=True)
    tmp = target / f".{SONAME}.{os.getpid()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(lib)
    tmp.replace(link)  # atomic: concurrent callers never see a missing link
    return target


def tool_env(base: Mapping[str, str], cache: Path) -> dict[str, str]:
    """``base`` with LD_LIBRARY_PATH led by the bundled librdkafka's directory (unchanged without one)."""
    env = dict(base)
    found = library_dir(cache)
    if found is not None:
        rest = env.get("LD_LIBRARY_PATH", "")
        env["LD_LIBRARY_PATH"] = f"{found}:{rest}" if rest else str(found)
    return env
