"""The verifier CLI's user-facing details: DOT output that Graphviz reads as written, honest help."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from gateway.cli import app


def test_explore_dot_keeps_unicode_and_escapes_quotes(tmp_path: Path) -> None:
    model = tmp_path / "m.csp"
    model.write_text("channel a\nP = a -> P\n")
    res = CliRunner().invoke(app, ["explore", str(model), "P \\ {a}", "--dot"])
    assert res.exit_code == 0, res.output
    # Graphviz has no \uXXXX escape: τ and … must be written as UTF-8, not JSON-escaped.
    assert "\\u" not in res.output
    assert 's0 -> s0 [label="τ"];' in res.output
    assert 'digraph "P \\\\ {a}" {' in res.output
    assert "…@2:5" in res.output


def test_check_model_help_lists_every_accepted_model() -> None:
    # properties (deadlock freedom, determinism) exist in F and FD only; T is refused for them
    res = CliRunner().invoke(app, ["check", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    assert "F or FD" in res.output
    assert "T, F or FD" not in res.output


def test_non_utf8_file_names_the_file(tmp_path: Path) -> None:
    model = tmp_path / "bin.csp"
    model.write_bytes(b"\xff\xfe")
    for args in (["typecheck", str(model)], ["check", str(model)], ["explore", str(model), "P"]):
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 2, res.output
        assert res.exception is None or isinstance(res.exception, SystemExit)
        assert f"{model}: not UTF-8 text (byte 0)" in " ".join(res.output.split()), res.output  # Rich wraps


def test_runtime_commands_reject_a_non_utf8_file_before_connecting(tmp_path: Path) -> None:
    model = tmp_path / "bin.csp"
    model.write_bytes(b"\xff\xfe")
    env = {"CSP_DATA_DIR": str(tmp_path / "no-stack")}
    for args in (["deploy", str(model), "--process", "P"], ["conform", "sys", str(model), "P"]):
        res = CliRunner().invoke(app, args, env=env)
        assert res.exit_code == 2, res.output
        assert res.output.strip() == f"error: {model}: not UTF-8 text (byte 0)", res.output
