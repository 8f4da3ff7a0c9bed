"""Bounded front-end work (issue 7 item 10): memory and time limits, safe includes, huge literals."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway.cli import app
from processors.csp.language.errors import CspmError, CspmEvalError, CspmSyntaxError
from processors.csp.semantics.frontend import load_file, load_source
from processors.csp.semantics.limits import Guard, Limits, ResourceLimitExceeded, parse_size

ROOT = Path(__file__).resolve().parents[2]
WIDE = "channel a\nP = ||| i:{0..100} @ a -> STOP\nassert P :[deadlock free]\n"


def write(tmp: Path, name: str, text: str) -> Path:
    p = tmp / name
    p.write_text(text, encoding="utf-8")
    return p


def test_timeout_stops_a_state_explosion_with_a_clear_error(tmp_path: Path) -> None:
    f = write(tmp_path, "wide.csp", WIDE)
    r = CliRunner().invoke(app, ["check", str(f), "--timeout", "1", "--format", "json"])
    assert r.exit_code == 2, r.output
    assert "time limit of 1 s reached" in r.output


def test_memory_limit_stops_a_state_explosion_with_a_clear_error(tmp_path: Path) -> None:
    f = write(tmp_path, "wide.csp", WIDE)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "gateway.cli", "check", str(f), "--max-memory", "400M", "--timeout", "120"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env, cwd=ROOT)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "memory limit of 400 MB reached" in r.stdout + r.stderr


def test_huge_ranges_are_refused_with_their_position() -> None:
    m = load_source("channel c : {0..100000000000000000000}\nP = c.1 -> STOP\n")
    with pytest.raises(CspmEvalError, match=r"range \{0\.\.100000000000000000000\} has .* too large") as e:
        m.all_events()
    assert (e.value.line, e.value.col) == (1, 13)
    m2 = load_source("N = card({0..100000000})\n")
    with Guard(Limits(max_memory=1 << 30)), pytest.raises(CspmEvalError, match="memory limit of 1 GB") as e2:
        m2.eval_value("N")
    assert (e2.value.line, e2.value.col) == (1, 10)


def test_memory_error_inside_a_guard_becomes_a_limit_error() -> None:
    with pytest.raises(ResourceLimitExceeded, match="memory limit"), Guard(Limits(max_memory=1 << 30)):
        raise MemoryError()


def test_max_memory_option_parses_sizes() -> None:
    assert parse_size("512M") == 512 << 20
    assert parse_size("4G") == 4 << 30
    assert parse_size("1000") == 1000
    with pytest.raises(ValueError):
        parse_size("lots")


def test_include_of_a_device_or_outside_the_folder_is_refused(tmp_path: Path) -> None:
    f = write(tmp_path, "z.csp", 'include "/dev/zero"\n')
    with pytest.raises(CspmSyntaxError, match="outside the folder of z.csp"):
        load_file(f)
    with pytest.raises(CspmSyntaxError, match="not a regular file"):
        load_file(f, allow_include_outside=True)
    (tmp_path / "sub").mkdir()
    write(tmp_path, "defs.csp", "channel a\nP = a -> P\n")
    inner = write(tmp_path / "sub", "main.csp", 'include "../defs.csp"\nQ = P\n')
    with pytest.raises(CspmSyntaxError, match="outside the folder"):
        load_file(inner)
    assert load_file(inner, allow_include_outside=True).has_name("Q")
    r = CliRunner().invoke(app, ["typecheck", str(inner)])
    assert r.exit_code == 2 and "--allow-include-outside" in r.output
    r = CliRunner().invoke(app, ["typecheck", str(inner), "--allow-include-outside"])
    assert r.exit_code == 0, r.output


def test_include_of_a_fifo_does_not_block(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.csp"
    os.mkfifo(fifo)
    f = write(tmp_path, "m.csp", 'include "pipe.csp"\n')
    got: list[BaseException | None] = []

    def go() -> None:
        try:
            load_file(f)
            got.append(None)
        except CspmError as exc:
            got.append(exc)

    t = threading.Thread(target=go, daemon=True)
    t.start()
    t.join(20)
    if t.is_alive():  # release the blocked reader before failing
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        t.join(5)
        pytest.fail("include of a FIFO blocked")
    assert got and got[0] is not None and "not a regular file" in str(got[0])
    with pytest.raises(CspmError, match="not a regular file"):
        load_file(fifo)


def test_integer_literal_over_4300_digits_is_a_syntax_error() -> None:
    with pytest.raises(CspmSyntaxError, match="integer literal of 5000 digits is too long") as e:
        load_source("channel a\nx = " + "9" * 5000 + "\n")
    assert (e.value.line, e.value.col) == (2, 5)
    assert load_source("x = " + "9" * 4300 + "\n").has_name("x")


def test_wide_replication_says_what_is_too_wide() -> None:
    m = load_source("channel a\nP = ||| i:{0..100000} @ a -> STOP\n")
    with pytest.raises(CspmEvalError, match=r"replicated \|\|\| over 100001 processes is too wide") as e:
        m.process("P")
    assert e.value.line == 2


def test_explore_and_refine_take_the_limits(tmp_path: Path) -> None:
    f = write(tmp_path, "wide.csp", WIDE + "SPEC = P\nIMPL = P\n")  # needs the whole space
    r = CliRunner().invoke(app, ["explore", str(f), "P", "--timeout", "1", "--max-states", "100000000"])
    assert r.exit_code == 2 and "time limit of 1 s reached" in r.output, r.output
    r = CliRunner().invoke(app, ["refine", "--model", "T", str(f), str(f), "--timeout", "1"])
    assert r.exit_code == 2 and "time limit of 1 s reached" in r.output, r.output
    r = CliRunner().invoke(app, ["typecheck", str(f), "--max-memory", "lots"])
    assert r.exit_code == 2 and "--max-memory" in r.output, r.output
