"""Parser: precedence, layout, patterns, assertions, errors."""

from __future__ import annotations

import pytest

from processors.csp.language import syntax as S
from processors.csp.language.errors import CspmSyntaxError, CspmUnsupported
from processors.csp.language.lexer import tokenize
from processors.csp.language.parser import parse, parse_expression
from processors.csp.semantics.frontend import load_source


def test_lexer_skips_nested_comments_and_tracks_positions() -> None:
    toks = tokenize("a {- x {- y -} z -} b -- c\n  d")
    assert [t.text for t in toks[:-1]] == ["a", "b", "d"]
    assert (toks[2].line, toks[2].col, toks[2].bol) == (2, 3, True)


def test_prefix_binds_tighter_than_choice() -> None:
    e = parse_expression("a -> STOP [] b -> SKIP")
    assert isinstance(e, S.ProcOp) and e.op == "[]"
    assert isinstance(e.left, S.Prefix) and isinstance(e.right, S.Prefix)


def test_hiding_is_loosest_and_interleave_below_parallel() -> None:
    e = parse_expression("P [| A |] Q ||| R \\ X")
    assert isinstance(e, S.ProcOp) and e.op == "\\"
    inner = e.left
    assert isinstance(inner, S.ProcOp) and inner.op == "|||"
    assert isinstance(inner.left, S.GenPar)


def test_arithmetic_precedence() -> None:
    e = parse_expression("1 + 2 * 3 == 7")
    assert isinstance(e, S.BinOp) and e.op == "=="
    assert isinstance(e.left, S.BinOp) and e.left.op == "+"
    assert isinstance(e.left.right, S.BinOp) and e.left.right.op == "*"


def test_prefix_fields() -> None:
    e = parse_expression("c?x:{0,1}!y.z -> STOP")
    assert isinstance(e, S.Prefix)
    assert [f.kind for f in e.fields] == ["?", "!"]
    assert e.fields[0].restrict is not None


def test_layout_continuation_and_new_definition() -> None:
    m = parse("P = a -> STOP\n  [] b -> STOP\nQ = P\n")
    names = [d.name for d in m.decls if isinstance(d, S.FunDecl)]
    assert names == ["P", "Q"]
    p = m.decls[0]
    assert isinstance(p, S.FunDecl) and isinstance(p.clauses[0].body, S.ProcOp)


def test_let_block_layout() -> None:
    src = "f = let\n      g(0) = 1\n      g(n) = n\n      h = 2\n    within g(h)\n"
    m = parse(src)
    f = m.decls[0]
    assert isinstance(f, S.FunDecl)
    body = f.clauses[0].body
    assert isinstance(body, S.Let)
    assert [d.name for d in body.decls if isinstance(d, S.FunDecl)] == ["g", "h"]
    g = body.decls[0]
    assert isinstance(g, S.FunDecl) and len(g.clauses) == 2


def test_sequence_closing_angle_vs_greater_than() -> None:
    e = parse_expression("<x | x <- <1,2,3>, x > 1> == <2,3>")
    assert isinstance(e, S.BinOp) and e.op == "=="
    assert isinstance(e.left, S.SeqComp)


def test_assertions() -> None:
    m = parse("assert P [FD= Q\nassert not P :[deadlock free [F]]\nassert P :[has trace]: <a>\n")
    a, b, c = m.decls
    assert isinstance(a, S.AssertDecl) and a.kind == "refines" and a.model == "FD" and a.text == "P [FD= Q"
    assert isinstance(b, S.AssertDecl) and b.negated and b.model == "F" and b.kind == "deadlock free"
    assert isinstance(c, S.AssertDecl) and c.kind == "has trace" and c.trace is not None


def test_missing_arrow_is_syntax_error_with_position() -> None:
    with pytest.raises(CspmSyntaxError) as ei:
        parse("channel a\nP = a STOP\n", "m.csp")
    assert str(ei.value).startswith("m.csp:2:7: expected")
    assert "'STOP'" in str(ei.value)


def test_unsupported_construct_parses_but_is_rejected_on_load() -> None:
    src = "channel a\nP = a -> STOP\nassert P [V= P\n"
    m = parse(src, "m.csp")
    q = m.decls[2]
    assert isinstance(q, S.UnsupportedDecl)
    with pytest.raises(CspmUnsupported) as ei:
        load_source(src, "m.csp")
    assert "unsupported: refinement model [V=" in str(ei.value)
    assert "at 3:" in str(ei.value)


@pytest.mark.parametrize(
    ("src", "construct"),
    [
        ("assert STOP [V= STOP\n", "refinement model [V="),
        ("assert STOP [T= STOP :[tau priority]: {}\n", "assertion option"),
    ],
)
def test_unsupported_models_and_options(src: str, construct: str) -> None:
    parse(src)  # syntactically fine
    with pytest.raises(CspmUnsupported) as ei:
        load_source(src, "m.csp")
    assert f"unsupported: {construct}" in str(ei.value)


@pytest.mark.parametrize(
    "src",
    [
        "module M()\nexports\nendmodule\n",
        "module M\nexports\n  assert STOP [T= STOP\nendmodule\n",
        "P = let\n    channel c\n  within STOP\n",
        "assert STOP [T= STOP :[tau priority over]: {} :[tau priority over]: {}\n",
        "Timed {\n  print 0\n}\n",
    ],
)
def test_misplaced_declarations_are_syntax_errors(src: str) -> None:
    with pytest.raises(CspmSyntaxError):
        parse(src)


def test_patterns_from_expressions() -> None:
    m = parse("f(<x>^xs, (a, _), c.y, {}) = 0\n")
    f = m.decls[0]
    assert isinstance(f, S.FunDecl)
    pats = f.clauses[0].groups[0]
    assert isinstance(pats[0], S.PConcat) and isinstance(pats[1], S.PTuple)
    assert isinstance(pats[2], S.PDot) and isinstance(pats[3], S.PSet)


def test_indented_top_level_declarations() -> None:
    m = parse("  channel a, b\n  P = a ->\n      b -> STOP\n    [] b -> STOP\n  Q = P\n")
    names = [d.name for d in m.decls if isinstance(d, S.FunDecl)]
    assert names == ["P", "Q"]


def test_operator_at_line_start_continues_definition() -> None:
    m = parse("P = a -> STOP\n[] b -> STOP\nQ = P\n")
    p = m.decls[0]
    assert isinstance(p, S.FunDecl) and isinstance(p.clauses[0].body, S.ProcOp)
    assert len(m.decls) == 2


@pytest.mark.parametrize("op", ["|||", "||", "|~|"])
def test_parenthesised_replicated_operator_is_not_the_map_bracket(op: str) -> None:
    # libcspm's map token "(|" needs a following space: "(|||" is "(" then "|||"
    toks = tokenize(f"(|{op[1:]} i:S @ P(i))")
    assert [t.text for t in toks[:2]] == ["(", op]
    body = "[{a.i}] " if op == "||" else ""
    src = f"channel a : {{0..2}}\nP = ({op} i:{{0..2}} @ {body}a.i -> STOP)\n"
    m = load_source(src)
    assert m.process("P") is not None
    assert [t.text for t in tokenize("(| 1 => 2 |)")[:1]] == ["(|"]
