"""Static checks: scope, duplicates, channel payloads, types."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from processors.csp.language.errors import CspmSyntaxError, CspmTypeError, CspmUnsupported
from processors.csp.semantics.frontend import load_file, load_source

CSPX = (
    Path(os.environ.get("CSP_CONFORMANCE_DIR") or Path(__file__).resolve().parents[2] / ".." / "shared" / "conformance")
    / "cspx"
    / "problems"
)


def test_undefined_identifier_position() -> None:
    with pytest.raises(CspmTypeError) as ei:
        load_source("channel a\nP = a -> STOP\nSystem = P ||| Q\n", "m.csp")
    assert str(ei.value) == "m.csp:3:16: undefined identifier 'Q'"


def test_bound_names_are_in_scope() -> None:
    m = load_source(
        "channel c : {0..2}\nP = c?x -> (let y = x + 1 within c!(y % 3) -> STOP)\n"
        "S = {z | z <- {0..2}, z > 0}\nF = \\ q @ q + 1\n"
    )
    assert m.has_name("P") and m.has_name("S") and not m.has_name("z")


def test_out_of_range_payload_is_type_error() -> None:
    with pytest.raises(CspmTypeError) as ei:
        load_source("channel ch : {0..1}\nP = ch!2 -> STOP\n", "m.csp")
    assert ei.value.line == 2 and "ch.2" in ei.value.message


def test_duplicate_definitions() -> None:
    with pytest.raises(CspmTypeError):
        load_source("P = 1\nQ = 2\nP = 3\n")
    with pytest.raises(CspmTypeError):
        load_source("f(x, x) = 0\n")
    with pytest.raises(CspmTypeError):
        load_source("channel a : {0..1}.{0..1}\nP = a?x?x -> STOP\n")


@pytest.mark.parametrize(
    "problem",
    [
        "P000_hello_typecheck_pass",
        "P100_deadlock_free_min_rendezvous",
        "P901_dining_philosophers_small",
        "P902_abp_tiny",
        "P905_abp_medium",
        "P121_tau_loop_by_hiding",
    ],
)
def test_cspx_models_load(problem: str) -> None:
    path = CSPX / problem / "model.cspm"
    if not path.exists():
        pytest.skip("conformance data not available")
    m = load_file(path)
    for a in m.assertions:
        m.eval_process(a.left)


def test_cspx_error_problems() -> None:
    if not CSPX.exists():
        pytest.skip("conformance data not available")
    with pytest.raises(CspmSyntaxError):
        load_file(CSPX / "P001_syntax_error" / "model.cspm")
    with pytest.raises(CspmTypeError):
        load_file(CSPX / "P002_undefined_identifier" / "model.cspm")
    with pytest.raises(CspmTypeError):
        load_file(CSPX / "P003_type_error_channel_payload_out_of_range" / "model.cspm")


def test_unsupported_is_reported_not_misevaluated() -> None:
    with pytest.raises(CspmUnsupported) as ei:
        load_source("channel a\nexternal failure_watchdog\nP = failure_watchdog(STOP, {a}, a)\nQ = P\n", "m.csp").process("Q")
    assert "unsupported: builtin failure_watchdog" in str(ei.value)


def test_weak_buffer_is_unsupported_with_its_position() -> None:
    src = "channel c, d : Bool\nchannel x\nP = WEAK_BUFFER(2, x, {(c.b, d.b) | b <- Bool})\n"
    with pytest.raises(CspmUnsupported) as ei:
        load_source(src, "m.csp")
    assert "unsupported: builtin WEAK_BUFFER at 3:5" in str(ei.value)


@pytest.mark.parametrize(
    "src",
    [
        "f = 1 + true\n",
        "channel c : Bool\nP = c!0 -> STOP\n",
        "P = STOP [] 1\n",
        "b = {STOP} == {STOP}\n",
        "f(x) = x + 1\ng = f(true)\n",
        "f :: (Int) -> Bool\nf(x) = x\n",
        "f :: (a, a) -> Bool\nf(x, y) = x == y\n",
        "f = let g(x) = x within (g(0), g(true))\n",
        "channel c : {0..1}\nP = c?x?y -> STOP\n",
        "P = ; x : {0,1} @ SKIP\n",
        "datatype A = A0\ndatatype B = B0.A\ndatatype D = D0.B.A\nnametype E = {D0.B0.d | d <- A}\n",
        "channel c, d : Bool\nP = BUFFER(true, {(c.x, d.x) | x <- Bool})\n",
        "f :: (Event =>* b) -> Event =>* b\nf(x) = x\n",
        "f :: (Int =>* Event) -> Proc\nf(x) = STOP\n",
    ],
)
def test_type_errors_are_rejected(src: str) -> None:
    with pytest.raises(CspmTypeError):
        load_source(src, "m.csp")


@pytest.mark.parametrize(
    "src",
    [
        "id(x) = x\nt = (id(0), id(true))\n",
        "f :: Eq a => (a, a) -> Bool\nf(x, y) = x == y\n",
        "f = let g :: (a) -> a\n        g(x) = x\n    within (g(0), g(true))\n",
        "channel c : {0..1}.Bool\nP = c?x -> c!x -> P\nQ = c.0?b -> (if b then STOP else SKIP)\n",
        "datatype T = A | B.{0..2}\nchannel d : T\nP = d?B.n -> d!B.((n+1)%3) -> P [] d.A -> SKIP\n",
        "channel a, b : {0..2}\nP = a?x -> b!x -> P\nQ = P [[ a <- b ]] \\ {| b |}\n",
        "datatype A = A0\ndatatype B = B0.A\ndatatype D = D0.B.A\nnametype E = {D0.B0.d.d | d <- A}\n",
        "channel c, d : Bool\nP = BUFFER(2, {(c.x, d.x) | x <- Bool})\n",
        "f :: (a =>* Event) -> Proc\nf(x) = STOP\nchannel c : Bool\nP = f(c)\n",
    ],
)
def test_well_typed_scripts_load(src: str) -> None:
    m = load_source(src, "m.csp")
    assert m.decls


def test_definition_span() -> None:
    m = load_source("channel a\n\nP = a ->\n    STOP\n", "m.csp")
    sp = m.definition_span("P")
    assert sp is not None and (sp.line, sp.end_line) == (3, 4)
    assert m.definition_span("nope") is None


def test_include_is_resolved_relative_to_the_including_file(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "defs.csp").write_text("channel a, b\nP = a -> b -> P\n", encoding="utf-8")
    main = tmp_path / "main.csp"
    main.write_text('include "sub/defs.csp"\nQ = P ||| P\nassert Q :[deadlock free]\n', encoding="utf-8")
    m = load_file(main)
    assert m.has_name("P") and m.has_name("Q") and len(m.assertions) == 1
    (tmp_path / "loop.csp").write_text('include "loop.csp"\n', encoding="utf-8")
    with pytest.raises(CspmSyntaxError):
        load_file(tmp_path / "loop.csp")
    (tmp_path / "missing.csp").write_text('include "nope.csp"\n', encoding="utf-8")
    with pytest.raises(CspmSyntaxError) as ei:
        load_file(tmp_path / "missing.csp")
    assert "nope.csp" in str(ei.value) and ei.value.line == 1


def test_errors_in_included_files_name_that_file(tmp_path: Path) -> None:
    (tmp_path / "defs.csp").write_text("channel a : {0..1}\nP = a!3 -> STOP\n", encoding="utf-8")
    (tmp_path / "main.csp").write_text('include "defs.csp"\nQ = P\n', encoding="utf-8")
    with pytest.raises(CspmTypeError) as ei:
        load_file(tmp_path / "main.csp")
    assert ei.value.file.endswith("defs.csp") and (ei.value.line, ei.value.col) == (2, 5)
