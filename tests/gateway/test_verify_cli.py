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
    res = CliRunner().invoke(app, ["check", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    assert "T, F or FD" in res.output
