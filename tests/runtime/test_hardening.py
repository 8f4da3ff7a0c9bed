"""Runtime hardening (issue 7): no poison pill, linear decoding, one instance per id whatever the
partitioner, idempotent command ids, nothing vanishes, reads write nothing, unique workers."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from lts_fixtures import buffer_deployment
from runtime_helpers import ROOT, thread_worker, wait_until
from shared_helpers import new_platform

from gateway.sdk import Platform, PlatformError
from processors.csp.runtime import compiled
from processors.csp.runtime.encoding import CommandDecoder, EventDecoder, _rlong
from processors.csp.runtime.partitioning import partition_for
from processors.csp.runtime.records import command_record
from processors.csp.runtime.registry import RegistryError, compiled_bytes, deployment_record, publish
from processors.csp.runtime.signing import load_or_create_key, sign_record
from processors.csp.runtime.worker import default_worker_id
from schemas.codec import Codec
from schemas.registry import LocalRegistry
from streams.clients import consumer_config, producer_config
from streams.engine import MARKER_HEADER, MAX_DEAD_LETTER_VALUE


def produce(bootstrap: str, topic: str, key: bytes | None, value: bytes, partition: int | None = None,
            headers: list[tuple[str, bytes]] | None = None, conf: dict[str, Any] | None = None) -> int:  # fmt: skip
    """Produce one record (platform client config unless ``conf`` replaces it); returns its partition."""
    big: dict[str, Any] = {"message.max.bytes": 4_000_000}
    p = Producer(conf or producer_config(bootstrap, **big))
    got: list[Any] = []
    kwargs: dict[str, Any] = {"key": key, "value": value, "on_delivery": lambda e, m: got.append((e, m))}
    if partition is not None:
        kwargs["partition"] = partition
    if headers:
        kwargs["headers"] = headers
    p.produce(topic, **kwargs)
    assert p.flush(30) == 0
    err, msg = got[0]
    assert err is None, err
    return int(msg.partition())


def raw_records(bootstrap: str, topic: str, partitions: int) -> list[tuple[Any, ...]]:
    """Every record of ``topic`` (read_uncommitted, up to each partition's end), fences included."""
    c = Consumer(consumer_config(bootstrap, f"raw-{uuid.uuid4().hex}", read_committed=False,
                                 **{"enable.partition.eof": True}))  # fmt: skip
    out: list[tuple[Any, ...]] = []
    try:
        c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        done: set[int] = set()
        deadline = time.monotonic() + 60
        while len(done) < partitions and time.monotonic() < deadline:
            for m in c.consume(1000, 0.2):
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        done.add(int(m.partition() or 0))
                    continue
                headers: Any = m.headers() or []
                out.append((m.partition(), m.offset(), m.value(), dict(headers)))
        assert len(done) == partitions, f"{topic}: end not reached"
    finally:
        c.close()
    return out


def command(codec: Codec, cid: str, iid: str, kind: str, **fields: Any) -> bytes:
    return codec.encode("CspCommand", command_record(cid, iid, kind, int(time.time() * 1000), **fields))


# -- 3. linear varint decoding ----------------------------------------------------------------


def test_varint_decoder_gives_up_at_the_first_malformed_varint() -> None:
    assert _rlong(b"\x02", 0) == (1, 1)
    assert _rlong(b"\xfe\xff\xff\xff\xff\xff\xff\xff\xff\x01", 0) == (2**63 - 1, 10)  # the longest valid long
    with pytest.raises(ValueError, match="malformed varint"):
        _rlong(b"\xff" * 11 + b"\x01", 0)
    codec = Codec(LocalRegistry.load())
    dec = CommandDecoder(codec)
    # 1 MB of 0xff after a CspCommand header: refused at the first varint, not folded into a huge int
    blob = codec.encode("CspCommand", command_record("c", "i", "STOP", 1))[:5] + b"\xff" * 1_000_000
    assert dec.decode_tuple(blob) is None
    with pytest.raises(Exception):  # noqa: B017 - the codec's DecodeError
        dec.decode(blob)
    ev = EventDecoder(codec)
    with pytest.raises(Exception):  # noqa: B017
        ev.decode(ev._header + b"\xff" * 1_000_000)


# -- 7. unique worker ids -------------------------------------------------------------------------


def test_workers_without_an_id_do_not_fence_each_other(kafka_bootstrap: str, tmp_path: Path) -> None:
    assert default_worker_id() != default_worker_id()
    platform = new_platform(kafka_bootstrap, tmp_path)
    platform.publish_deployment(buffer_deployment("buf", 1))
    env = dict(
        os.environ, CSP_KAFKA_BOOTSTRAP=kafka_bootstrap, CSP_LOG_LEVEL="WARNING", CSP_DATA_DIR=str(tmp_path)
    )
    cmd = [sys.executable, "-m", "processors.csp.runtime.worker", "--bootstrap", kafka_bootstrap,
           "--namespace", platform.topics.namespace]  # fmt: skip
    logs = [tmp_path / f"w{i}.log" for i in range(2)]
    workers = [
        subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
        for log in logs
    ]
    try:
        with platform:
            insts = [platform.start("buf", timeout_s=90) for _ in range(8)]
            for inst in insts:
                assert inst.offer("in.1").accepted
            time.sleep(2)
            assert [w.poll() for w in workers] == [None, None], [log.read_text()[-2000:] for log in logs]
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            w.wait(30)
    for log in logs:
        text = log.read_text()
        assert "Traceback" not in text and "fenced" not in text.lower(), text[-2000:]


# -- 5. idempotence on command_id ------------------------------------------------------------------


def test_a_repeated_command_id_is_applied_once_also_after_recovery(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    platform = new_platform(kafka_bootstrap, tmp_path)
    platform.publish_deployment(buffer_deployment("buf", 1))
    topics = platform.topics
    with platform:
        with thread_worker(platform, "a"):
            inst = platform.start("buf")
            iid = inst.instance_id
            part = partition_for(iid, platform.partitions)
            same = command(platform.codec, "dup-1", iid, "OFFER", event="in.1", offer_id="o1")
            for _ in range(2):  # the same bytes, twice
                produce(kafka_bootstrap, topics.commands, iid.encode(), same, part)

            def duplicates() -> int:
                return sum(1 for r in platform.read(topics.refusals, "CspRefusal", [part])
                           if r["command_id"] == "dup-1" and r["reason"] == "DUPLICATE")  # fmt: skip

            wait_until(lambda: duplicates() == 1, 60, "the DUPLICATE answer")
            assert [e["event"] for e in platform.events(iid)] == ["in.1", "out.1"]
        # another worker recovers the instance from the log: the window comes back with it
        with thread_worker(platform, "b"):
            produce(kafka_bootstrap, topics.commands, iid.encode(), same, part)
            wait_until(lambda: duplicates() == 2, 60, "the DUPLICATE answer after recovery")
            assert [e["event"] for e in platform.events(iid)] == ["in.1", "out.1"]
            assert inst.offer("in.2").accepted  # a new command id is applied


# -- 6. markers: nothing vanishes, reads write nothing -------------------------------------------------


def test_offer_with_a_marker_header_is_processed_and_reads_write_nothing(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    platform = new_platform(kafka_bootstrap, tmp_path)
    platform.publish_deployment(buffer_deployment("buf", 1))
    t = platform.topics
    with platform, thread_worker(platform):
        inst = platform.start("buf")
        iid = inst.instance_id
        part = partition_for(iid, platform.partitions)
        value = command(platform.codec, "marked", iid, "OFFER", event="in.2", offer_id="m")
        produce(
            kafka_bootstrap,
            t.commands,
            iid.encode(),
            value,
            part,
            [(MARKER_HEADER, uuid.uuid4().hex.encode())],
        )
        wait_until(
            lambda: [e["event"] for e in platform.events(iid)] == ["in.2", "out.2"], 60, "the marked offer"
        )
        read_only = (t.events, t.snapshots, t.refusals, t.registry, t.channel("buf", "out"))
        before = {
            topic: raw_records(kafka_bootstrap, topic, 4 if topic != t.registry else 1) for topic in read_only
        }
        # every read-only operation of the SDK (what `csp tail / instances / replay` use)
        assert [i.instance_id for i in platform.instances()] == [iid]
        assert platform.replay(iid).instance.seq == 2
        platform.events()
        platform.refusals()
        platform.systems()
        list(platform.subscribe("out", system="buf", timeout_s=0.5))
        list(platform.subscribe("out", system="buf", from_beginning=False, timeout_s=0.5))
        list(platform.follow("refusals", timeout_s=0.5))
        after = {
            topic: raw_records(kafka_bootstrap, topic, 4 if topic != t.registry else 1) for topic in read_only
        }
    assert after == before
    for topic, recs in after.items():
        assert all(MARKER_HEADER not in h for _p, _o, _v, h in recs), topic


def test_cli_reads_write_nothing(kafka_bootstrap: str, tmp_path: Path) -> None:
    platform = new_platform(kafka_bootstrap, tmp_path)
    platform.publish_deployment(buffer_deployment("buf", 1))
    t = platform.topics
    with platform, thread_worker(platform):
        inst = platform.start("buf")
        assert inst.offer("in.1").accepted
    topics = (t.events, t.snapshots, t.refusals, t.registry)
    parts = {topic: 1 if topic == t.registry else 4 for topic in topics}
    before = {topic: len(raw_records(kafka_bootstrap, topic, parts[topic])) for topic in topics}
    env = dict(os.environ, CSP_KAFKA_BOOTSTRAP=kafka_bootstrap, CSP_DATA_DIR=str(tmp_path))
    ns = ["--namespace", t.namespace]
    for args in (["instances", *ns], ["replay", inst.instance_id, *ns], ["tail", "--refusals", *ns]):
        r = subprocess.run([sys.executable, "-m", "gateway.cli", *args], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=120)  # fmt: skip
        assert "Traceback" not in r.stderr, r.stderr
    after = {topic: len(raw_records(kafka_bootstrap, topic, parts[topic])) for topic in topics}
    assert after == before


# -- 4. any partitioner ---------------------------------------------------------------------------------


def test_commands_from_the_default_partitioner_reach_their_instance(
    kafka_bootstrap: str, tmp_path: Path, unique_topic: Callable[..., str]
) -> None:
    platform = new_platform(kafka_bootstrap, tmp_path)
    platform.publish_deployment(buffer_deployment("buf", 1))
    t = platform.topics
    n = platform.partitions
    # an id that librdkafka's default partitioner (consistent_random: crc32) puts off its murmur2 home
    ids = (f"plain-{uuid.uuid4().hex[:6]}-{k}" for k in range(1000))
    iid = next(i for i in ids if zlib.crc32(i.encode()) % n != partition_for(i, n))
    home = partition_for(iid, n)
    plain: dict[str, Any] = {
        "bootstrap.servers": kafka_bootstrap
    }  # a plain client: its own default partitioner
    with platform, thread_worker(platform) as proc:
        landed = produce(kafka_bootstrap, t.commands, iid.encode(),
                         command(platform.codec, f"{iid}-s", iid, "START", system="buf", version=1), conf=plain)  # fmt: skip
        assert landed != home
        produce(kafka_bootstrap, t.commands, iid.encode(), command(platform.codec, f"{iid}-o", iid, "OFFER", event="in.1"),
                conf=plain)  # fmt: skip
        wait_until(
            lambda: [e["event"] for e in platform.events(iid)] == ["in.1", "out.1"], 60, "the plain commands"
        )
        assert {e["command_partition"] for e in platform.events(iid)} == {home}
        # the same id through the SDK (murmur2) is the same instance: no second START
        with pytest.raises(PlatformError, match="ALREADY_STARTED"):
            platform.start("buf", instance_id=iid)
        assert platform.offer(iid, "in.2").accepted
        assert [i.instance_id for i in platform.instances()].count(iid) == 1
        assert proc.stats.forwarded >= 2
    # the platform's partitioner (docs/runtime.md, Partitioning) is librdkafka's murmur2_random: the same
    # partition as partition_for, the Java client's murmur2
    topic = unique_topic("murmur", partitions=4)
    for k in range(20):
        key = f"{iid}-{k}".encode()
        assert produce(kafka_bootstrap, topic, key, b"x") == partition_for(key, 4)


# -- 1. no poison pill ------------------------------------------------------------------------------------


def test_oversized_inputs_are_refused_or_dead_lettered_and_the_worker_goes_on(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    platform = new_platform(kafka_bootstrap, tmp_path)
    platform.publish_deployment(buffer_deployment("buf", 1))
    t = platform.topics
    with platform, thread_worker(platform):
        inst = platform.start("buf")
        iid = inst.instance_id
        part = partition_for(iid, platform.partitions)
        # a 600 kB event (under the SDK producer's 1 MB limit): refused TOO_LARGE, bounded
        r = inst.offer("in." + "1" * 600_000)
        assert r.refusal is not None and r.refusal["reason"] == "TOO_LARGE", r
        assert "65536" in r.refusal["message"] and "sha256" in r.refusal["message"]
        # 1.5 MB that are not a platform record: dead-lettered with a bounded copy
        big = b"\x07" + os.urandom(1_500_000)
        produce(kafka_bootstrap, t.commands, iid.encode(), big, part)
        # 1.5 MB in the wire format: refused TOO_LARGE without being decoded
        framed = command(platform.codec, "x", iid, "STOP")[:5] + b"\xff" * 1_500_000
        produce(kafka_bootstrap, t.commands, iid.encode(), framed, part)
        assert inst.offer("in.2").accepted  # the worker is alive and the partition moves on

        def dead() -> list[dict[str, Any]]:
            return platform.read(t.commands_dlq, "DeadLetter")

        wait_until(lambda: len(dead()) == 1, 60, "the dead letter")
        (dl,) = dead()
        assert len(dl["value"]) == MAX_DEAD_LETTER_VALUE and dl["value"] == big[:MAX_DEAD_LETTER_VALUE]
        assert "1500001 bytes" in dl["error"] and "sha256" in dl["error"]
        reasons = [r["reason"] for r in platform.read(t.refusals, "CspRefusal", [part])]
        assert reasons.count("TOO_LARGE") == 2


# -- 2. a crashed transaction does not block a partition; SIGTERM and logs while the broker is down --------


def test_recovery_aborts_the_transaction_a_crashed_worker_left_open(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    platform = new_platform(kafka_bootstrap, tmp_path)
    platform.publish_deployment(buffer_deployment("buf", 1))
    t = platform.topics
    with platform:
        with thread_worker(platform, "a") as proc:
            inst = platform.start("buf")
            assert inst.offer("in.1").accepted
            group = proc.name
        iid = inst.instance_id
        part = partition_for(iid, platform.partitions)
        # the partition's owner crashes inside a transaction: its records stay uncommitted for good
        crashed = Producer(producer_config(kafka_bootstrap, transactional_id=f"{group}-{t.commands}-{part}"))
        crashed.init_transactions(10)
        crashed.begin_transaction()
        crashed.produce(t.events, key=iid.encode(), value=b"\x00\x00\x00\x00\x06half", partition=part)
        assert crashed.flush(10) == 0
        del crashed
        # reads do not wait on the open transaction (they stop at the last stable offset)
        assert [e["event"] for e in platform.replay(iid).trace] == ["in.1", "out.1"]
        # the next owner fences the crashed producer, recovers and goes on
        with thread_worker(platform, "b"):
            assert inst.offer("in.2").accepted
        assert [e["event"] for e in platform.events(iid)] == ["in.1", "out.1", "in.2", "out.2"]


def test_worker_with_its_broker_gone_logs_little_and_stops_on_sigterm(tmp_path: Path) -> None:
    from infra.settings import Settings
    from infra.stack import running_stack
    from streams.admin import ensure_topics

    stack = running_stack(Settings(data_dir=tmp_path / "stack", kafka_bootstrap=None), ephemeral=True)
    bootstrap = stack.__enter__().kafka_bootstrap
    stopped = False
    log = tmp_path / "worker.log"
    try:
        platform = Platform(
            bootstrap, namespace="down", settings=Settings(data_dir=tmp_path, kafka_bootstrap=bootstrap)
        )
        ensure_topics(bootstrap, platform.topics.specs())
        platform.publish_deployment(buffer_deployment("buf", 1))
        env = dict(
            os.environ, CSP_KAFKA_BOOTSTRAP=bootstrap, CSP_LOG_LEVEL="INFO", CSP_DATA_DIR=str(tmp_path)
        )
        cmd = [
            sys.executable,
            "-m",
            "processors.csp.runtime.worker",
            "--bootstrap",
            bootstrap,
            "--namespace",
            "down",
        ]
        worker = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
        try:
            with platform:
                assert platform.start("buf", timeout_s=90).offer("in.1").accepted
            stack.__exit__(None, None, None)
            stopped = True
            time.sleep(3)  # the worker notices
            before = len(log.read_text(errors="replace").splitlines())
            time.sleep(20)
            lines = log.read_text(errors="replace").splitlines()[before:]
            assert len(lines) <= 12, "\n".join(lines[:40])  # about once per 10 s, not 20 lines a second
            assert worker.poll() is None
            t0 = time.monotonic()
            worker.send_signal(signal.SIGTERM)
            worker.wait(15)
            assert time.monotonic() - t0 <= 10.0
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait(10)
    finally:
        if not stopped:
            stack.__exit__(None, None, None)


# -- 8. signed deployments, bounded compiled references -------------------------------------------------


def test_only_deployments_signed_by_a_trusted_key_run(kafka_bootstrap: str, tmp_path: Path) -> None:
    platform = new_platform(kafka_bootstrap, tmp_path)
    t = platform.topics
    codec = platform.codec
    with platform, thread_worker(platform):
        platform.publish_deployment(buffer_deployment("buf", 1))  # signed with the data dir's key
        key_file = tmp_path / "keys" / "deploy.ed25519"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert platform.start("buf").offer("in.1").accepted
        trusted_key = load_or_create_key(key_file)

        def refused(version: int) -> str:
            with pytest.raises(PlatformError, match="UNTRUSTED_VERSION") as err:
                platform.start("evil", version=version, timeout_s=60)
            return str(err.value)

        # anyone who can produce to csp.registry: an unsigned record claiming its assertions pass
        forged = deployment_record(
            replace(buffer_deployment("evil", 1), assertions=(("deadlock free", "Passed"),))
        )
        publish(kafka_bootstrap, codec, t.registry, forged)
        assert "not signed" in refused(1)
        # signed, by a key the worker does not trust
        publish(kafka_bootstrap, codec, t.registry,
                sign_record(deployment_record(buffer_deployment("evil", 2)), Ed25519PrivateKey.generate()))  # fmt: skip
        assert "does not trust" in refused(2)
        # signed by the trusted key, then altered: other compiled bytes, or another source
        signed = sign_record(deployment_record(buffer_deployment("evil", 3)), trusted_key)
        publish(kafka_bootstrap, codec, t.registry,
                {**signed, "compiled": deployment_record(buffer_deployment("evil", 3, values=2))["compiled"]})  # fmt: skip
        assert "compiled" in refused(3)
        signed4 = sign_record(deployment_record(buffer_deployment("evil", 4)), trusted_key)
        publish(
            kafka_bootstrap, codec, t.registry, {**signed4, "assertions": [{"text": "x", "status": "Passed"}]}
        )
        assert "signature" in refused(4)
        # a compiled_ref to a FIFO (outside the store) hangs neither the worker nor a client
        fifo = tmp_path / "evil.fifo"
        os.mkfifo(fifo)
        ref = sign_record({**deployment_record(buffer_deployment("evil", 5)), "compiled": None,
                           "compiled_ref": fifo.as_uri()}, trusted_key)  # fmt: skip
        publish(kafka_bootstrap, codec, t.registry, ref)
        assert "outside" in refused(5)
        done = threading.Event()

        def read_registry() -> None:
            platform.systems()
            done.set()

        threading.Thread(target=read_registry, daemon=True).start()
        assert done.wait(60), "a client hangs on the registry"
        # the genuine next version runs
        platform.publish_deployment(buffer_deployment("evil", 6))
        assert platform.start("evil", version=6).offer("in.1").accepted


def test_compiled_references_and_decompression_are_bounded(tmp_path: Path) -> None:
    store = tmp_path / "compiled"
    store.mkdir()
    rec = {**deployment_record(buffer_deployment("x", 1)), "compiled": None}
    outside = tmp_path / "outside.lts"
    outside.write_bytes(deployment_record(buffer_deployment("x", 1))["compiled"])
    for target, message in (
        (outside, "outside"),
        (store / "link.lts", "outside"),
        (store / "f.fifo", "regular"),
    ):
        if target.name == "link.lts":
            target.symlink_to(outside)
        elif target.suffix == ".fifo":
            os.mkfifo(target)
        with pytest.raises(RegistryError, match=message):
            compiled_bytes({**rec, "compiled_ref": target.as_uri()}, store)
    (store / "ok.lts").write_bytes(outside.read_bytes())
    assert compiled_bytes({**rec, "compiled_ref": (store / "ok.lts").as_uri()}, store) == outside.read_bytes()
    # a zlib bomb: a few kB that inflate to 1 GB; refused without inflating past what the header announces
    good = outside.read_bytes()
    hlen = int.from_bytes(good[len(compiled.MAGIC) : len(compiled.MAGIC) + 4], "big")
    head = good[: len(compiled.MAGIC) + 4 + hlen]
    deflater = zlib.compressobj(9)
    zero = b"\0" * (1 << 20)
    body = b"".join(deflater.compress(zero) for _ in range(1024)) + deflater.flush()
    bomb = head + body
    assert len(bomb) < 2_000_000
    with pytest.raises(compiled.CompiledFormatError, match="announces"):
        compiled.loads(bomb)
