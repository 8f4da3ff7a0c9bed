"""Links: SRC.out -> DST.in, checked before being made; 10k messages exactly once across a worker SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

from channel_helpers import ROOT, wait_until
from confluent_kafka import Consumer, TopicPartition
from shared_helpers import new_platform

from gateway.sdk import Platform
from streams.clients import consumer_config

DESTS = 4
SRC = f"""
datatype Dst = {" | ".join(f"d{i}" for i in range(DESTS))}
channel feed, out : Dst.{{0..9}}
SRC = feed?d?x -> out!d!x -> SRC
assert SRC :[deadlock free]
"""
DST = f"""
datatype Dst = {" | ".join(f"d{i}" for i in range(DESTS))}
channel inp : Dst.{{0..9}}
DST = inp?d?x -> DST
assert DST :[deadlock free]
"""
PICKY = f"""
datatype Dst = {" | ".join(f"d{i}" for i in range(DESTS))}
channel inp : Dst.{{0..9}}
PICKY = inp?d?x -> (if x == 9 then STOP else PICKY)
"""


def deploy(platform: Platform, tmp: Path, name: str, text: str, proc: str, outputs: list[str]) -> None:
    f = tmp / f"{name}.csp"
    f.write_text(text)
    assert not platform.deploy(f, proc, name=name, outputs=outputs, force=True).refused


def spawn(platform: Platform, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, CSP_KAFKA_BOOTSTRAP=platform.bootstrap, CSP_LOG_LEVEL="WARNING",
               CSP_DATA_DIR=str(platform.settings.resolved_data_dir()))  # trusts the platform's deploy key
    cmd = [sys.executable, "-m", "processors.csp.runtime.worker", "--bootstrap", platform.bootstrap,
           "--namespace", platform.topics.namespace, "--worker-id", "w1", "--batch-size", "200"]  # fmt: skip
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)


class LiveInputs:
    """Distinct (instance, seq) INPUT events of dst as they arrive (read_uncommitted, every partition)."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        conf = consumer_config(platform.bootstrap, f"live-{uuid.uuid4().hex}", read_committed=False)
        self.c = Consumer(conf)
        self.c.assign([TopicPartition(platform.topics.events, p, 0) for p in range(platform.partitions)])
        self.seen: set[tuple[str, int]] = set()

    def poll(self) -> int:
        for msg in self.c.consume(5000, 0.1):
            if msg.error() is None and msg.value():
                _n, rec = self.platform.codec.decode(msg.value() or b"")
                if rec["system"] == "dst" and rec["kind"] == "INPUT":
                    self.seen.add((rec["instance_id"], rec["seq"]))
        return len(self.seen)

    def close(self) -> None:
        self.c.close()


def test_link_is_checked_and_refused_with_counterexample(kafka_bootstrap: str, tmp_path: Path) -> None:
    platform = new_platform(kafka_bootstrap, tmp_path)
    deploy(platform, tmp_path, "src", SRC, "SRC", ["out"])
    deploy(platform, tmp_path, "picky", PICKY, "PICKY", [])
    plan = platform.link("src.out", "picky.inp", instance_map="1")
    assert plan.refused and not platform.routes().links
    (failed,) = plan.failed
    assert "deadlock free" in failed.text
    assert any(e.startswith("link.") and e.endswith(".9") for e in failed.trace)  # PICKY stops on 9
    forced = platform.link("src.out", "picky.inp", instance_map="1", force=True)
    assert not forced.refused and list(platform.routes().links) == ["link:src.out->picky.inp"]
    assert platform.unlink("link:src.out->picky.inp") == 1 and not platform.routes().links
    platform.close()


def test_linked_systems_exchange_10k_messages_exactly_once_across_sigkill(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    platform = new_platform(kafka_bootstrap, tmp_path)
    deploy(platform, tmp_path, "src", SRC, "SRC", ["out"])
    deploy(platform, tmp_path, "dst", DST, "DST", [])
    plan = platform.link("src.out", "dst.inp", instance_map="1")
    assert not plan.refused and [c.passed for c in plan.checks] == [True]
    n, sources = 10_000, [f"s{i}" for i in range(4)]
    log = tmp_path / "worker.log"
    worker = spawn(platform, log)
    live = LiveInputs(platform)
    try:
        for d in range(DESTS):
            platform.start("dst", instance_id=f"d{d}", timeout_s=60)
        for s in sources:
            platform.start("src", instance_id=s)
        feeds = [
            (sources[i % len(sources)], "OFFER", {"event": f"feed.d{i % DESTS}.{i % 10}"}) for i in range(n)
        ]
        platform.send_many(feeds[: n // 2])

        wait_until(lambda: live.poll() > 0, 60, "the first linked offers")
        platform.send_many(feeds[n // 2 :])
        wait_until(lambda: live.poll() > n // 2 + 300, 60, "the second half under way", every_s=0.01)
        worker.send_signal(signal.SIGKILL)  # mid-stream: transactions of the bridge and the runtime in flight
        worker.wait(10)
        at_kill = live.poll()  # what the killed worker produced (uncommitted records included)
        assert at_kill < n, "everything was delivered before the kill: not mid-stream"
        worker = spawn(platform, log)
        wait_until(lambda: live.poll() >= n, 240, "10k linked offers after the restart")
        time.sleep(3)  # anything extra would show up now
    finally:
        live.close()
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)
    events = platform.events()
    inputs = [e for e in events if e["system"] == "dst" and e["kind"] == "INPUT"]
    outs = [e for e in events if e["system"] == "src" and e["kind"] == "OUTPUT"]
    assert len(outs) == n and len(inputs) == n
    ids = Counter(e["command_id"] for e in inputs)
    assert max(ids.values()) == 1
    expected = {f"ln:link:src.out->dst.inp:{e['instance_id']}:{e['seq']}" for e in outs}
    assert set(ids) == expected
    for e in inputs:  # each offer carried its source's values to the instance they name
        src_iid, seq = e["command_id"].rsplit(":", 2)[1:]
        out = next(o for o in outs if o["instance_id"] == src_iid and o["seq"] == int(seq))
        assert e["instance_id"] == out["payload"][0] and e["payload"] == out["payload"]
    assert not [r for r in platform.refusals() if r["command_id"].startswith("ln:")]
    print(f"links: {n} messages exactly once, {at_kill} delivered at the kill")
    platform.close()
