"""The deployment store: deployed system versions on ``csp.registry``.

A deployment is one ``CspRegistryRecord`` (key: system name). Versions are
numbered per system from 1; a redeploy appends a new version and running
instances keep the version they started on. The store reads the registry
topic to its end with the fence-based reader (no trust in end offsets) and
keeps every version in memory; the compiled LTS travels in the record
(``compiled``) or, when too large for a Kafka record, in a file referenced by
``compiled_ref`` (``file:///...``) inside the platform's compiled store
(``<data_dir>/compiled``): a reference elsewhere, to something that is not a regular
file, or to more than :data:`MAX_COMPILED_BYTES` is refused, and decompression is bounded
(:func:`.compiled.loads`).

With a :class:`~.signing.TrustPolicy` the store keeps only records signed by a trusted key
whose content matches its signed hashes; the others are listed in :attr:`DeploymentStore.untrusted`
with the reason.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from confluent_kafka import KafkaError, Message, Producer

from processors.csp.runtime import compiled
from processors.csp.runtime.model import ChannelSpec, Deployment
from processors.csp.runtime.signing import TrustPolicy
from processors.csp.runtime.topics import RuntimeTopics
from streams.clients import producer_config
from streams.reader import read_to_end

if TYPE_CHECKING:  # the engine module is heavy: `csp replay` and the SDK need only the protocol's name
    from streams.engine import Codec

REGISTRY_SCHEMA = "CspRegistryRecord"
ROUTE_SCHEMA = "CspRoute"  # links and service bindings (processors/channels/routes.py)
# records above this size keep their compiled LTS in a file (Kafka's default max is 1 MB)
MAX_INLINE_COMPILED = 900_000
# the largest compiled-LTS file a store reads through compiled_ref
MAX_COMPILED_BYTES = 256 * 1024 * 1024


class RegistryError(RuntimeError):
    """A registry record could not be written or read."""


def source_hash(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()


def deployment_record(dep: Deployment, compiled_dir: Path | None = None) -> dict[str, Any]:
    """The CspRegistryRecord of ``dep`` (its LTS serialised into ``compiled`` or a file)."""
    meta = {"channel_values": {name: [list(v) for v in ch.values] for name, ch in dep.channels.items()}}
    blob = compiled.dumps(dep.lts, dep.payloads, meta)
    ref: str | None = None
    if len(blob) > MAX_INLINE_COMPILED:
        if compiled_dir is None:
            raise RegistryError(
                f"compiled LTS of {dep.system} is {len(blob)} bytes, too large for a record; "
                "give a directory for compiled files"
            )
        compiled_dir.mkdir(parents=True, exist_ok=True)
        path = compiled_dir / f"{dep.system}-v{dep.version}-{hashlib.sha256(blob).hexdigest()[:16]}.lts"
        path.write_bytes(blob)
        ref = path.resolve().as_uri()
    return {
        "system": dep.system,
        "version": dep.version,
        "process": dep.process,
        "file_name": dep.file_name,
        "source": dep.source,
        "source_hash": dep.source_hash or source_hash(dep.source),
        "channels": [
            {"name": c.name, "role": c.role, "fields": list(c.fields)} for c in dep.channels.values()
        ],
        "assertions": [{"text": t, "status": s} for t, s in dep.assertions],
        "compiled": None if ref is not None else blob,
        "compiled_ref": ref,
        "deployed_at": dep.deployed_at,
        "compiled_hash": hashlib.sha256(blob).hexdigest(),
    }


def read_compiled_file(path: Path, store: Path, limit: int = MAX_COMPILED_BYTES) -> bytes:
    """The bytes of a compiled-LTS file inside ``store``: a regular file of at most ``limit`` bytes
    (never a FIFO, a device or a link out of the store; never a blocking open)."""
    root = store.resolve()
    real = Path(os.path.realpath(path))
    if not real.is_relative_to(root):
        raise RegistryError(f"compiled_ref {path} is outside the platform's compiled store {root}")
    try:
        fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise RegistryError(f"compiled_ref {path}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise RegistryError(f"compiled_ref {path} is not a regular file")
        if st.st_size > limit:
            raise RegistryError(f"compiled_ref {path} is {st.st_size} bytes, above the limit of {limit}")
        chunks = []
        total = 0
        while chunk := os.read(fd, 1 << 20):
            total += len(chunk)
            if total > limit:
                raise RegistryError(f"compiled_ref {path} grew past the limit of {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def compiled_bytes(rec: Mapping[str, Any], store: Path | None) -> bytes:
    """The compiled LTS bytes of a registry record: inline, or from the compiled store."""
    blob = rec.get("compiled")
    if blob is not None:
        return bytes(blob)
    ref = rec.get("compiled_ref")
    if not ref:
        raise RegistryError(
            f"{rec['system']} v{rec['version']}: record has neither compiled nor compiled_ref"
        )
    url = urlparse(ref)
    if url.scheme != "file" or url.netloc not in ("", "localhost"):
        raise RegistryError(f"{rec['system']} v{rec['version']}: unsupported compiled_ref {ref!r}")
    if store is None:
        raise RegistryError(
            f"{rec['system']} v{rec['version']}: compiled_ref {ref!r} but no compiled store configured"
        )
    return read_compiled_file(Path(url.path), store)


def deployment_from_record(
    rec: Mapping[str, Any], *, store: Path | None = None, blob: bytes | None = None
) -> Deployment:
    """The deployment of a registry record (``blob``: its compiled bytes, when already read)."""
    if blob is None:
        blob = compiled_bytes(rec, store)
    lts, payloads, meta = compiled.loads(bytes(blob))
    values: Mapping[str, Any] = meta.get("channel_values", {})
    channels = {
        c["name"]: ChannelSpec(
            c["name"], c["role"], tuple(c["fields"]), tuple(tuple(v) for v in values.get(c["name"], []))
        )
        for c in rec["channels"]
    }
    return Deployment(
        system=rec["system"],
        version=int(rec["version"]),
        process=rec["process"],
        lts=lts,
        channels=channels,
        payloads=payloads,
        file_name=rec.get("file_name", ""),
        source=rec.get("source", ""),
        source_hash=rec.get("source_hash", ""),
        deployed_at=int(rec.get("deployed_at") or 0),
        assertions=tuple((a["text"], a["status"]) for a in rec.get("assertions", [])),
    )


class DeploymentStore:
    """Every deployed version, read from the registry topic (call :meth:`refresh` to catch up)."""

    def __init__(
        self,
        bootstrap: str,
        codec: Codec,
        topics: RuntimeTopics | None = None,
        *,
        trust: TrustPolicy | None = None,
        compiled_dir: Path | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.codec = codec
        self.topics = topics or RuntimeTopics()
        self.trust = trust
        self.compiled_dir = compiled_dir
        # (system, version) -> why it is not run (trust policy: unsigned, untrusted key, altered)
        self.untrusted: dict[tuple[str, int], str] = {}
        self._deps: dict[tuple[str, int], Deployment] = {}
        self._records: dict[tuple[str, int], Mapping[str, Any]] = {}
        self._next_offset = 0
        self.errors: list[str] = []
        # CspRoute records (links, service bindings, undeploys), in log order
        self.route_records: list[Mapping[str, Any]] = []
        self._undeployed: dict[str, int] = {}  # system -> time of its last undeploy

    def refresh(self, timeout_s: float = 30.0) -> int:
        """Read new registry records; returns how many versions were added."""
        added = 0
        for offset, _key, value, _ts in read_to_end(
            self.bootstrap, self.topics.registry, 0, self._next_offset, timeout_s=timeout_s
        ):
            self._next_offset = offset + 1
            if value is None:
                continue
            try:
                name, rec = self.codec.decode(value)
                if name == ROUTE_SCHEMA:
                    self.route_records.append(rec)
                    if rec.get("kind") == "UNDEPLOY":
                        system = rec["src_system"]
                        self._undeployed[system] = max(self._undeployed.get(system, 0), int(rec["created_at"]))
                    continue
                if name != REGISTRY_SCHEMA:
                    continue
                key = (rec["system"], int(rec["version"]))
                if key in self._deps:  # idempotent on (system, version): first trusted record wins
                    continue
                try:
                    blob = compiled_bytes(rec, self.compiled_dir)
                except RegistryError as exc:
                    if self.trust is not None:
                        self.untrusted[key] = str(exc)
                    raise
                if self.trust is not None:
                    why = self.trust.check(rec, blob)
                    if why is not None:
                        self.untrusted[key] = why
                        self.errors.append(
                            f"{self.topics.registry}@{offset}: {key[0]} v{key[1]} untrusted: {why}"
                        )
                        continue
                self._deps[key] = deployment_from_record(rec, blob=blob)
                self.untrusted.pop(key, None)
                self._records[key] = rec
                added += 1
            except Exception as exc:  # a bad registry record must not stop the runtime
                self.errors.append(f"{self.topics.registry}@{offset}: {type(exc).__name__}: {exc}")
        return added

    def lookup(self, system: str, version: int | None = None) -> Deployment | None:
        if version is None:
            versions = self.versions(system)
            return self._deps[(system, versions[-1])] if versions else None
        return self._deps.get((system, version))

    def record(self, system: str, version: int) -> Mapping[str, Any] | None:
        return self._records.get((system, version))

    def versions(self, system: str) -> list[int]:
        """The deployed versions (those deployed before the system's last undeploy are gone;
        ``lookup(system, version)`` still finds them for their running instances)."""
        gone = self._undeployed.get(system)
        return sorted(
            v for (s, v), dep in self._deps.items() if s == system and (gone is None or dep.deployed_at > gone)
        )

    def systems(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for s, _v in sorted(self._deps):
            if s not in out:
                versions = self.versions(s)
                if versions:
                    out[s] = versions
        return out


def publish(
    bootstrap: str,
    codec: Codec,
    topic: str,
    record: Mapping[str, Any],
    timeout_s: float = 30.0,
    *,
    schema: str = REGISTRY_SCHEMA,
    key: str | None = None,
) -> int:
    """Append a registry record (a deployment, or a route with ``schema="CspRoute"``) and wait for it;
    returns its offset."""
    value = codec.encode(schema, record)
    extra: dict[str, Any] = {"message.max.bytes": 2_000_000}
    producer = Producer(producer_config(bootstrap, **extra))
    result: dict[str, Any] = {}

    def delivered(err: KafkaError | None, msg: Message) -> None:
        result["err"] = err
        result["offset"] = msg.offset()

    producer.produce(topic, key=(key or record["system"]).encode(), value=value, partition=0, on_delivery=delivered)
    if producer.flush(timeout_s) or "err" not in result:
        raise RegistryError(f"could not write the registry record to {topic} within {timeout_s}s")
    if result["err"] is not None:
        raise RegistryError(f"could not write the registry record to {topic}: {result['err']}")
    return int(result["offset"])
