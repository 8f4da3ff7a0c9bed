"""Issue 7 item 9: what the embedded stack exposes, to whom, and with which files.

* every socket a stack component listens on is bound to loopback;
* SeaweedFS's filer/volume HTTP APIs refuse requests without the stack's JWT;
* the data dir is 0700, secrets are 0600 from creation, components write with umask 077;
* the metrics endpoint binds loopback unless ``CSP_METRICS_HOST`` says otherwise;
* Kafka clients authenticate with ``CSP_KAFKA_SECURITY_PROTOCOL``/``CSP_KAFKA_SASL_*``;
* a canary for the measured Tansu gap: SASL users cannot be stored on memory:// or s3://.
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from infra import procs
from infra.ports import free_port
from infra.private import write_private
from infra.settings import Settings
from infra.state import read_state
from infra.tansu import tansu_binary
from streams.clients import consumer_config, producer_config
from streams.metrics import EngineMetrics

LOOPBACK_HEX = "0100007F"  # 127.0.0.1 in /proc/net/tcp byte order


def _socket_inodes(pid: int) -> set[str]:
    out: set[str] = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            out.add(target[len("socket:["):-1])
    return out


def _listening(pids: list[int]) -> list[tuple[str, int]]:
    """(address hex, port) of every TCP socket in LISTEN state owned by ``pids``."""
    inodes: set[str] = set()
    for pid in pids:
        for member in {pid, *procs.group_members(pid)}:
            inodes |= _socket_inodes(member)
    found: list[tuple[str, int]] = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and inode in inodes:  # 0A: LISTEN
                addr, port = local.split(":")
                found.append((addr, int(port, 16)))
    return found


def _is_loopback(addr_hex: str) -> bool:
    if len(addr_hex) == 8:
        return addr_hex.endswith("7F")  # 127.x.x.x, little-endian
    return addr_hex in ("00000000000000000000000001000000",) or addr_hex.startswith(
        "0000000000000000FFFF0000"
    ) and addr_hex.endswith("7F")


def test_durable_stack_is_private_loopback_only_and_closes_seaweed_http(durable_stack):
    settings, endpoints = durable_stack.start()
    data_dir = settings.resolved_data_dir()
    state = read_state(data_dir)
    assert state is not None and state.seaweed_ports is not None
    sockets = _listening(list(state.pids.values()))
    assert sockets, "found no listening socket of the stack (the check would prove nothing)"
    ports = {port for _, port in sockets}
    assert state.kafka_port in ports and state.seaweed_ports["filer"] in ports
    exposed = [(addr, port) for addr, port in sockets if not _is_loopback(addr)]
    assert not exposed, f"stack ports bound beyond loopback: {exposed}"

    # The filer and volume HTTP APIs need the stack's JWT: reads and writes are refused.
    for name in ("filer", "volume"):
        port = state.seaweed_ports[name]
        for method, path in (("GET", "/buckets/tansu/"), ("PUT", "/intruder/probe.txt")):
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}{path}", method=method, data=b"x" if method == "PUT" else None
            )
            with pytest.raises(urllib.error.HTTPError) as info:
                urllib.request.urlopen(request, timeout=5)
            assert info.value.code in (400, 401), f"{name} {method} {path} answered {info.value.code}"
    # ...while the broker, which reaches the store through S3 with its own keys, still works.
    meta = AdminClient({"bootstrap.servers": endpoints.kafka_bootstrap}).list_topics(timeout=10)
    assert "csp.events" in meta.topics
    _assert_private_files(data_dir)


def _assert_private_files(data_dir: Path) -> None:
    """The data dir is 0700, secrets are 0600, components wrote owner-only files."""
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    for rel in ("seaweed/credentials.json", "seaweed/s3.json", "seaweed/security.toml", "stack.json"):
        path = data_dir / rel
        assert path.exists(), rel
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, f"{rel} is {oct(path.stat().st_mode)}"
    for folder in ("logs", "run", "seaweed"):
        assert stat.S_IMODE((data_dir / folder).stat().st_mode) == 0o700, folder
    # Files the components write themselves (umask 077): logs and the store's data.
    logs = list((data_dir / "logs").iterdir())
    assert logs
    for path in logs:
        assert not stat.S_IMODE(path.stat().st_mode) & 0o077, f"{path} is {oct(path.stat().st_mode)}"
    written = [p for p in (data_dir / "seaweed" / "data").rglob("*") if p.is_file()]
    assert written, "SeaweedFS wrote no data file"
    readable = [p for p in written if stat.S_IMODE(p.stat().st_mode) & 0o004]
    # SeaweedFS writes its .vif volume-info files 0644 whatever the umask; the 0700
    # folders above them keep them out of reach. Everything else is owner-only.
    assert all(p.suffix == ".vif" for p in readable), readable


def test_write_private_is_0600_from_creation(tmp_path):
    old = os.umask(0)
    try:
        path = write_private(tmp_path / "sub" / "secret", "k")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert path.read_text() == "k"


def test_metrics_bind_loopback_by_default():
    port = free_port()
    EngineMetrics("security-test").serve(port)
    sockets = _listening([os.getpid()])
    ours = [(addr, p) for addr, p in sockets if p == port]
    assert ours, "metrics endpoint not listening"
    assert all(_is_loopback(addr) for addr, _ in ours), ours
    assert Settings().metrics_host == "127.0.0.1"


def test_kafka_clients_take_sasl_settings(monkeypatch):
    monkeypatch.setenv("CSP_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("CSP_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("CSP_KAFKA_SASL_USERNAME", "csp")
    monkeypatch.setenv("CSP_KAFKA_SASL_PASSWORD", "pw")
    for conf in (consumer_config("b:9092", "g"), producer_config("b:9092", transactional_id="t")):
        assert conf["security.protocol"] == "SASL_SSL"
        assert conf["sasl.mechanism"] == "SCRAM-SHA-512"
        assert (conf["sasl.username"], conf["sasl.password"]) == ("csp", "pw")
    monkeypatch.delenv("CSP_KAFKA_SASL_PASSWORD")
    with pytest.raises(ValueError, match="CSP_KAFKA_SASL_USERNAME and CSP_KAFKA_SASL_PASSWORD"):
        consumer_config("b:9092", "g")
    monkeypatch.setenv("CSP_KAFKA_SECURITY_PROTOCOL", "SSL")
    with pytest.raises(ValueError, match="use SASL_PLAINTEXT or SASL_SSL"):
        producer_config("b:9092")


def test_plaintext_by_default():
    conf = consumer_config("b:9092", "g")
    assert "security.protocol" not in conf and "sasl.username" not in conf


def test_tansu_cannot_store_sasl_users_on_object_storage(tmp_path):
    """Canary for the measured gap behind the embedded stack's loopback-only plaintext.

    Tansu 0.6 requires SASL/SCRAM with ``--authentication``, but its object-store engines
    (memory://, s3://) keep no users: creating one fails and every login is refused. If a
    future Tansu stores users, this test fails and the stack should turn authentication on.
    """
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    pid = procs.spawn(
        [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url,
         "--storage-engine", "memory://tansu/", "--authentication"],
        tmp_path / "tansu.log",
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        created = subprocess.run(
            [str(tansu_binary()), "user", "create", "--broker", url, "alice", "s3cret"],
            capture_output=True, text=True, timeout=30,
        )
        assert created.returncode != 0
        admin = AdminClient({
            "bootstrap.servers": f"127.0.0.1:{port}", "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "alice", "sasl.password": "s3cret",
            "log_level": 0,
        })
        with pytest.raises(Exception, match="(?i)transport|authentication|timed out"):
            admin.list_topics(timeout=4)
    finally:
        procs.stop(pid, 5)
