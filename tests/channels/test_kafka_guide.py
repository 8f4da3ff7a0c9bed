"""docs/kafka.md, run: its Python blocks, its kcat lines and `csp dlq`, in order, against the test broker."""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from channel_helpers import ROOT, runtime_and_bridge
from shared_helpers import new_platform

from streams.admin import ensure_topics
from streams.catalog import TopicSpec
from streams.librdkafka import tool_env

GUIDE = ROOT / "docs" / "kafka.md"


def blocks(text: str) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in re.finditer(r"```(\w+)\n(.*?)```", text, re.S)]


def namespaced(code: str, ns: str) -> str:
    return re.sub(r"(?<![\w.$-])csp\.(?=[a-z])", f"{ns}.csp.", code)


def run_python(code: str, env: dict[str, Any]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(GUIDE), "exec"), env)
    return out.getvalue()


def run_sh(line: str, ns: str, bootstrap: str) -> str:
    line = re.sub(r"(?:^|(?<=\| ))csp (?=[a-z])", f"{sys.executable} -m gateway.cli ", line)
    env = dict(os.environ, BOOTSTRAP=bootstrap, CSP_KAFKA_BOOTSTRAP=bootstrap, PYTHONPATH=str(ROOT))
    res = subprocess.run(["bash", "-c", line], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, (line, res.stdout, res.stderr)
    return res.stdout


def kcat_unusable(bootstrap: str, cache: Path) -> str | None:
    """Why the kcat steps cannot run here, or None."""
    if shutil.which("kcat") is None:
        return "kcat is not installed (Debian: apt-get install kcat; make test installs it where it can)"
    res = subprocess.run(
        ["kcat", "-L", "-b", bootstrap, "-m", "3"],
        capture_output=True, text=True, timeout=60, env=tool_env(os.environ, cache),
    )
    if res.returncode != 0:
        last = (res.stderr.strip().splitlines() or ["?"])[-1]
        return f"kcat cannot talk to this broker ({last}); the kcat steps need a broker it supports (CSP_KAFKA_BOOTSTRAP)"
    return None


def setup(kafka_bootstrap: str, tmp_path: Path) -> Any:
    platform = new_platform(kafka_bootstrap, tmp_path)
    ns = platform.topics.namespace
    assert not platform.deploy(
        ROOT / "examples/buffer/buffer.csp", "BUFFER", name="buffer", outputs=["right"]
    ).refused
    ensure_topics(
        kafka_bootstrap,
        [TopicSpec(f"{ns}.csp.guide.aborted", 1, "k", "bytes", "delete", -1, "guide", None, False)],
    )
    return platform, ns


def steps(kind: str) -> list[tuple[str, str]]:
    """The guide's runnable steps: ("python", code) blocks and ("sh", line) kcat / csp dlq lines."""
    out: list[tuple[str, str]] = []
    for lang, code in blocks(GUIDE.read_text()):
        if lang == "python" and kind == "python":
            out.append((lang, code))
        elif lang == "sh":
            for line in code.splitlines():
                cmd = line.split("  #")[0].strip()
                if kind == "python" and cmd.startswith("csp dlq"):
                    out.append(("sh", cmd))
                if kind == "kcat" and "kcat " in cmd:
                    out.append(("sh", cmd))
    return out


def test_the_kafka_guide_runs(kafka_bootstrap: str, tmp_path: Path) -> None:
    """The Python producer/consumer steps and `csp dlq`, with the outputs the guide shows."""
    platform, ns = setup(kafka_bootstrap, tmp_path)
    env: dict[str, Any] = {"BOOTSTRAP": kafka_bootstrap, "__name__": "guide"}
    outputs: list[str] = []
    with platform, runtime_and_bridge(platform):
        platform.start("buffer", instance_id="buf-1")
        for lang, code in steps("python"):
            code = namespaced(code, ns)
            outputs.append(run_python(code, env) if lang == "python" else run_sh(code, ns, kafka_bootstrap))
        printed = "".join(outputs)
        assert "['right.1', 'right.2']" in printed
        assert "[(0, b'aborted'), (2, b'committed')]" in printed
        dlq = next(o for o in outputs if "undecodable record" in o)
        assert f"{ns}.csp.channel.buffer.left[" in dlq and "key='buf-1'" in dlq
    assert [e["event"] for e in platform.events("buf-1") if e["kind"] == "INPUT"] == ["left.1", "left.2"]
    platform.close()


def test_the_kafka_guide_kcat_steps(kafka_bootstrap: str, tmp_path: Path) -> None:
    """The kcat lines: produce the JSON form, read the output channel topic."""
    why = kcat_unusable(kafka_bootstrap, tmp_path / "cache")
    if why is not None:
        pytest.skip(why)
    platform, ns = setup(kafka_bootstrap, tmp_path)
    with platform, runtime_and_bridge(platform):
        platform.start("buffer", instance_id="buf-1")
        outputs = [run_sh(namespaced(code, ns), ns, kafka_bootstrap) for _lang, code in steps("kcat")]
        assert [line for line in outputs[-1].splitlines() if line.startswith("buf-1 ")], outputs
    assert [e["event"] for e in platform.events("buf-1") if e["kind"] == "INPUT"] == ["left.0"]
    platform.close()


def test_csp_kcat_defaults_to_the_platform_broker(kafka_bootstrap: str, tmp_path: Path) -> None:
    """`csp kcat` runs kcat on the bundled librdkafka, -b from CSP_KAFKA_BOOTSTRAP when not given."""
    if shutil.which("kcat") is None:
        pytest.skip("kcat is not installed (Debian: apt-get install kcat)")
    env = dict(os.environ, CSP_KAFKA_BOOTSTRAP=kafka_bootstrap, XDG_CACHE_HOME=str(tmp_path), PYTHONPATH=str(ROOT))
    res = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "kcat", "-L", "-m", "5"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert res.returncode == 0, res.stderr
    assert "broker" in res.stdout and "topics" in res.stdout, res.stdout
    assert (tmp_path / "enhanced-csp" / "librdkafka" / "librdkafka.so.1").resolve().is_file()


def test_tool_env_puts_the_bundled_librdkafka_first(tmp_path: Path) -> None:
    from streams.librdkafka import bundled_library, library_dir

    lib = bundled_library()
    assert lib is not None and lib.name.startswith("librdkafka-")
    first = library_dir(tmp_path)
    assert first is not None and (first / "librdkafka.so.1").resolve() == lib
    assert library_dir(tmp_path) == first  # made once, reused
    env = tool_env({"LD_LIBRARY_PATH": "/opt/x"}, tmp_path)
    assert env["LD_LIBRARY_PATH"] == f"{first}:/opt/x"
