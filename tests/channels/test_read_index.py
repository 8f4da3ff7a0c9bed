"""The incremental instance index equals the fold of the whole log, and reads only what is new."""

from __future__ import annotations

from pathlib import Path

from channel_helpers import ROOT, runtime_and_bridge
from shared_helpers import new_platform
from typer.testing import CliRunner

from gateway.cli import app


def rows(instances: list) -> list[tuple[object, ...]]:  # type: ignore[type-arg]
    return sorted((i.instance_id, i.system, i.version, i.state, i.seq, i.status.value) for i in instances)


def test_index_matches_the_fold_and_reads_only_new_records(
    kafka_bootstrap: str, tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    platform = new_platform(kafka_bootstrap, tmp_path)
    assert not platform.deploy(
        ROOT / "examples/buffer/buffer.csp", "BUFFER", name="buffer", outputs=["right"]
    ).refused
    with platform, runtime_and_bridge(platform):
        for i in range(6):
            platform.start("buffer", instance_id=f"ix-{i}")
        for i in range(6):
            for v in range(i):
                assert platform.offer(f"ix-{i}", f"left.{v % 3}").accepted
        platform.stop("ix-5")
        index = platform.instance_index()
        first = index.read_records
        assert rows(index.instances()) == rows(platform.instances())
        assert platform.offer("ix-0", "left.1").accepted
        index.catch_up()
        assert 0 < index.read_records <= 4 < first  # the offer's 3 events (+ a snapshot at most)
        assert rows(index.instances()) == rows(platform.instances())
        index.catch_up()
        assert index.read_records == 0
        index.close()
    monkeypatch.setenv("CSP_KAFKA_BOOTSTRAP", kafka_bootstrap)
    monkeypatch.setenv("CSP_DATA_DIR", str(tmp_path))
    res = CliRunner().invoke(
        app, ["instances", "--index", "--format", "csv", "--namespace", platform.topics.namespace]
    )
    assert res.exit_code == 0, res.output
    assert "ix-5,buffer,1," in res.output and ",STOPPED" in res.output
    platform.close()
