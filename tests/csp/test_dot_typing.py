"""Dot typing as libcspm does it: a variable inside an event takes one field unless it is
last; an input restricted to dotted values takes as many fields as they have."""

from __future__ import annotations

import pytest

from processors.csp.language.errors import CspmTypeError
from processors.csp.semantics.frontend import load_source

HEAD = "datatype A = B.{0..1} | X.{0..1}.{0..1}\nchannel e : Bool.A.Bool\n"


def test_variables_inside_an_event_take_one_field_the_last_takes_the_rest() -> None:
    load_source(HEAD + "T(x, y) = e.x.y -> STOP\nU = T(true, B.0.true)\n")
    with pytest.raises(CspmTypeError):
        load_source(HEAD + "T(x, y) = e.x.y -> STOP\nU = T(true, true)\n")


def test_a_restricted_input_takes_the_width_of_its_restriction() -> None:
    # x is Bool.A (two fields), y is Bool: T(x, y) wants (Bool, A.Bool)
    with pytest.raises(CspmTypeError):
        load_source(HEAD + "P = e?x : {true.B.0}?y -> T(x, y)\nT(x, y) = e.x.y -> STOP\n")
    load_source(HEAD + "P = e?x : {true.B.0}?y -> e.x.y -> STOP\n")


def test_a_restricted_input_of_single_values_is_unchanged() -> None:
    load_source(HEAD + "P = e?x : {true}?y -> T(x, y)\nT(x, y) = e.x.y -> STOP\n")


def test_plain_dotted_values_complete_their_constructors() -> None:
    load_source(HEAD + "S = {true.B.0, false.X.1.0}\n")
    with pytest.raises(CspmTypeError):
        load_source(HEAD + "S = {true.B.0, 1}\n")


def test_a_variable_dotted_with_values_is_a_channel_taking_them() -> None:
    src = "channel c : Int.Int\nchannel d : Int.Bool\ntest(x, y) = STOP [[x.0 <- y.1]]\n"
    load_source(src + "ok = test(c, c)\n")
    with pytest.raises(CspmTypeError):  # c.0 takes an Int, d.1 a Bool: the renaming pairs differ
        load_source(src + "bad = test(c, d)\n")


def test_curried_channel_types_unify() -> None:
    load_source(
        "channel i, o\ndatatype dir = in | out\n"
        "test(c) = STOP [[c.in.x <- i, c.out.y <- o | x <- extensions(c.in), y <- extensions(c.out)]]\n"
    )
