"""The verifier CLI end to end (in-process): exit codes, JSON schema, counterexamples."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from gateway.cli import app

runner = CliRunner()

HEADER = "channel a, b, c\nchannel ch : {0..1}\n"


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def run_json(*args: str) -> tuple[int, dict[str, Any]]:
    res = runner.invoke(app, [*args, "--format", "json"])
    assert "Traceback" not in res.output
    return res.exit_code, json.loads(res.stdout)


def test_typecheck_pass_and_syntax_error(tmp_path: Path) -> None:
    good = write(tmp_path, "good.cspm", HEADER + "P = a -> STOP\n")
    code, doc = run_json("typecheck", str(good))
    assert (code, doc["status"]) == (0, "pass")
    bad = write(tmp_path, "bad.cspm", HEADER + "P = a STOP\n")
    code, doc = run_json("typecheck", str(bad))
    assert (code, doc["status"]) == (2, "error")
    assert doc["error"]["line"] == 3
    assert doc["checks"][0]["reason"]["kind"] == "invalid_input"


def test_missing_file_is_a_clear_input_error(tmp_path: Path) -> None:
    res = runner.invoke(app, ["check", str(tmp_path / "nope.cspm")])
    assert res.exit_code == 2
    assert "no such file" in res.output
    assert "Traceback" not in res.output


def test_check_all_assertions_in_file_order(tmp_path: Path) -> None:
    src = HEADER + (
        "P = a -> P\n"
        "Q = a -> STOP\n"
        "DIVP = (a -> DIVP) \\ {a}\n"
        "ND = (a -> STOP) |~| (a -> b -> STOP)\n"
        "assert P :[deadlock free [F]]\n"
        "assert Q :[deadlock free [F]]\n"
        "assert DIVP :[divergence free]\n"
        "assert ND :[deterministic [FD]]\n"
        "assert P [T= Q\n"
        "assert Q [F= P\n"
    )
    f = write(tmp_path, "m.cspm", src)
    code, doc = run_json("check", str(f))
    assert code == 1 and doc["status"] == "fail"
    got = [(a["text"], a["status"]) for a in doc["assertions"]]
    assert got == [
        ("P :[deadlock free [F]]", "pass"),
        ("Q :[deadlock free [F]]", "fail"),
        ("DIVP :[divergence free]", "fail"),
        ("ND :[deterministic [FD]]", "fail"),
        ("P [T= Q", "pass"),
        ("Q [F= P", "fail"),
    ]
    dl = doc["assertions"][1]["counterexample"]
    assert dl["kind"] == "deadlock" and dl["trace"] == ["a"]
    assert any(s["start_line"] == 4 for s in dl["spans"])  # Q's definition
    assert doc["assertions"][1]["stats"]["states"] == 2
    div = doc["assertions"][2]["counterexample"]
    assert div["divergence"] is True and div["trace"] == []
    nd = doc["assertions"][3]["counterexample"]
    assert nd["kind"] == "nondeterminism" and nd["trace"] == ["a"] and nd["refusal"] == ["b"]
    ref = doc["assertions"][5]["counterexample"]
    assert ref["kind"] == "trace" and ref["trace"] == ["a", "a"]


def test_check_single_property_and_human_output(tmp_path: Path) -> None:
    f = write(
        tmp_path,
        "m.cspm",
        HEADER + "S = ch!1 -> STOP\nR = ch?x -> R\nSystem = S [| {|ch|} |] R\nassert System :[deadlock free [F]]\n",
    )
    code, doc = run_json("check", "--assert", "deadlock free", str(f))
    assert code == 1
    [chk] = doc["checks"]
    assert chk["target"] == "deadlock free"
    assert [e["label"] for e in chk["counterexample"]["events"]] == ["ch.1"]
    assert "deadlock" in chk["counterexample"]["tags"]
    assert (chk["stats"]["states"], chk["stats"]["transitions"]) == (2, 1)
    res = runner.invoke(app, ["check", "--assert", "deadlock free", str(f)])
    assert res.exit_code == 1
    assert "ch.1" in res.stdout and "fail" in res.stdout
    code, doc = run_json("check", "--assert", "divergence free", "--process", "R", str(f))
    assert code == 0 and doc["assertions"][0]["status"] == "pass"


def test_refine_across_files(tmp_path: Path) -> None:
    spec = write(tmp_path, "spec.cspm", HEADER + "SPEC = a -> STOP [] b -> STOP\n")
    impl = write(tmp_path, "impl.cspm", HEADER + "IMPL = a -> STOP\n")
    assert run_json("refine", "--model", "T", str(spec), str(impl))[0] == 0
    code, doc = run_json("refine", "--model", "F", str(spec), str(impl))
    assert code == 1
    cex = doc["assertions"][0]["counterexample"]
    assert cex["kind"] == "refusal" and cex["trace"] == [] and cex["refusal"] == ["b"]
    assert "refuse:b" in doc["checks"][0]["counterexample"]["tags"]
    div_impl = write(tmp_path, "div.cspm", HEADER + "IMPL = (a -> IMPL) \\ {a}\nSPEC = STOP\n")
    code, doc = run_json("refine", "--model", "FD", str(div_impl), str(div_impl))
    assert code == 1 and doc["assertions"][0]["counterexample"]["kind"] == "divergence_mismatch"


def test_state_limit_and_unguarded_recursion_are_errors(tmp_path: Path) -> None:
    f = write(tmp_path, "m.cspm", HEADER + "C(n) = a -> C(n+1)\nP = C(0)\nassert P :[deadlock free [F]]\n")
    code, doc = run_json("check", "--max-states", "50", str(f))
    assert code == 2 and doc["assertions"][0]["status"] == "error"
    assert "exceeds the limit of 50 states" in doc["assertions"][0]["message"]
    g = write(tmp_path, "g.cspm", HEADER + "P = P [] a -> STOP\nassert P :[deadlock free [F]]\n")
    code, doc = run_json("check", str(g))
    assert code == 2 and "recursion" in doc["assertions"][0]["message"]


@pytest.mark.parametrize("dot", [False, True])
def test_explore(tmp_path: Path, dot: bool) -> None:
    f = write(tmp_path, "m.cspm", HEADER + "P = a -> b -> P\n")
    res = runner.invoke(app, ["explore", str(f), "P", *(["--dot"] if dot else [])])
    assert res.exit_code == 0
    if dot:
        assert res.stdout.startswith("digraph") and res.stdout.count("->") >= 3
    else:
        assert "2 states, 2 transitions" in res.stdout


def test_has_trace_and_negated_assertions(tmp_path: Path) -> None:
    f = write(
        tmp_path,
        "m.cspm",
        HEADER
        + "P = a -> b -> P\nQ = a -> a -> STOP\n"
        + "assert P :[has trace]: <a, b, a>\nassert P :[has trace]: <b>\n"
        + "assert not P [T= Q\nassert not Q [T= STOP\n",
    )
    code, doc = run_json("check", str(f))
    assert code == 1
    assert [(a["text"], a["status"]) for a in doc["assertions"]] == [
        ("P :[has trace]: <a, b, a>", "pass"),
        ("P :[has trace]: <b>", "fail"),
        ("not P [T= Q", "pass"),
        ("not Q [T= STOP", "fail"),
    ]
    missing = doc["assertions"][1]["counterexample"]
    assert missing["kind"] == "missing_trace" and missing["trace"] == [] and missing["event"] == "b"


def test_unsupported_construct_exits_3(tmp_path: Path) -> None:
    f = write(tmp_path, "u.cspm", HEADER + "P = a -> STOP\nassert P [V= P\nassert P :[deadlock free]\n")
    code, doc = run_json("check", str(f))
    assert (code, doc["status"]) == (3, "unsupported")
    assert doc["checks"][0]["reason"]["kind"] == "unsupported_syntax"
    assert "unsupported" in doc["error"]["message"] and doc["error"]["line"] == 4


def test_process_without_assert_checks_three_properties(tmp_path: Path) -> None:
    f = write(tmp_path, "m.cspm", HEADER + "P = (a -> P) |~| (a -> STOP)\n")
    code, doc = run_json("check", "--process", "P", str(f))
    assert code == 1
    assert [(a["kind"], a["status"]) for a in doc["assertions"]] == [
        ("deadlock free", "fail"),
        ("divergence free", "pass"),
        ("deterministic", "fail"),
    ]
    assert doc["assertions"][0]["counterexample"]["trace"] == ["a"]


def test_model_t_is_refused_for_properties(tmp_path: Path) -> None:
    f = write(tmp_path, "p.csp", "channel a\nP = a -> P\n")
    result = CliRunner().invoke(app, ["check", str(f), "--process", "P", "--assert", "deadlock free", "--model", "T"])
    assert result.exit_code == 2
    assert "refinement only" in result.output
    ok = CliRunner().invoke(app, ["check", str(f), "--process", "P", "--assert", "deadlock free", "--model", "F"])
    assert ok.exit_code == 0, ok.output


def test_error_without_position_has_no_zero_coordinates() -> None:
    from processors.csp.language.errors import CspmEvalError
    from processors.csp.semantics.frontend import load_source

    with pytest.raises(CspmEvalError) as info:
        load_source("channel a\nP = a -> P\n", "m.csp").process("NOPE")
    assert str(info.value) == "m.csp: undefined process 'NOPE'"


def test_workers_option_same_verdicts_and_counts(tmp_path: Path) -> None:
    # 3^12 states; the widest BFS level (25,653) passes the handoff to the partitioned search
    src = (
        "channel e, f, g : {0..11}\n"
        "CYC(i) = e.i -> f.i -> g.i -> CYC(i)\n"
        "SYS = ||| i : {0..11} @ CYC(i)\n"
        "assert CHAOS(Events) [FD= SYS\n"
        "assert RUN(Events) [T= SYS\n"
    )
    f = write(tmp_path, "w.cspm", src)
    got = {}
    for w in ("1", "2"):
        code, doc = run_json("check", str(f), "--workers", w)
        assert code == 0, doc
        got[w] = [(a["status"], a["stats"]["states"], a["stats"]["transitions"]) for a in doc["assertions"]]
    assert got["1"] == got["2"]
    assert got["1"][0][1] == 3**12
    res = runner.invoke(app, ["check", str(f), "--workers", "3"])
    assert res.exit_code == 2 and "power of two" in res.output
