"""Static checks: scope, duplicates, channel payloads, types."""

from __future__ import annotations

from pathlib import Path

import pytest

from processors.csp.errors import CspmSyntaxError, CspmTypeError, CspmUnsupported
from processors.csp.frontend import load_file, load_source

CSPX = Path(__file__).resolve().parents[2] / ".." / "shared" / "conformance" / "cspx" / "problems"


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
        load_source("channel a\nP = prioritise(a -> STOP, <{a}>)\nQ = P\n", "m.csp").process("Q")
    assert "unsupported: builtin prioritise" in str(ei.value)
