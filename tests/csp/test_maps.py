"""CSPm maps: (| k => v |), the map builtins, Map(K, V), ordering, maps in events and types."""

from __future__ import annotations

import pytest

from processors.csp.language.errors import CspmError, CspmTypeError
from processors.csp.semantics.frontend import load_source
from processors.csp.semantics.operational import transitions
from processors.csp.semantics.values import TRUE, render


def ev(expr: str, prelude: str = "") -> object:
    m = load_source(prelude + f"x = {expr}\n")
    return m.eval_value("x")


@pytest.mark.parametrize(
    "expr",
    [
        "mapLookup((| 1 => 2, 2 => 4 |), 2) == 4",
        "mapMember(mapFromList(<(1, 0)>), 1) and not mapMember(emptyMap, 1)",
        "mapToList(mapUpdate((| 1 => 0 |), 1, 2)) == <(1, 2)>",
        "mapToList(mapUpdateMultiple((| 1 => 0 |), <(1, 2), (3, 4)>)) == <(1, 2), (3, 4)>",
        "not mapMember(mapDelete((| 0 => 1 |), 0), 0)",
        "(| |) == emptyMap and (| 0 => 1, 1 => 2 |) == mapFromList(<(1, 2), (0, 1)>)",
        "(| 1 => 0 |) < (| 1 => 1 |) and (| 1 => 0 |) <= (| 1 => 0, 2 => 0 |)",
        "not ((| 1 => 1 |) < (| 1 => 1 |)) and (| 1 => 1 |) >= (| 1 => 1 |)",
        "card(Map({0, 1}, {0, 1})) == 9 and member((| 0 => 1 |), Map({0, 1}, {0, 1}))",
        "Map({}, {}) == {emptyMap}",
    ],
)
def test_map_builtins(expr: str) -> None:
    assert ev(expr) == TRUE


def test_map_lookup_of_a_missing_key_is_an_error() -> None:
    with pytest.raises(CspmError, match="not a key"):
        ev("mapLookup((| 0 => 1 |), 3)")


def test_maps_render_canonically() -> None:
    assert render(ev("(| 1 => 2, 0 => 1 |)")) == "(|0 => 1, 1 => 2|)"


def test_maps_in_events() -> None:
    m = load_source(
        "channel c : Map({0, 1}, {0, 1})\n"
        "P(m) = c.m -> P(mapUpdate(m, 1, 0))\nQ = P((| 0 => 1 |))\n"
    )
    [(e1, q1)] = transitions(m.process("Q"))
    [(e2, _)] = transitions(q1)
    assert (e1, e2) == ("c.(|0 => 1|)", "c.(|0 => 1, 1 => 0|)")


def test_map_types() -> None:
    load_source("m :: Set k => (| k => v |)\nm = (| |)\nf :: (Int) -> (| Int => Bool |)\nf(k) = (| k => true |)\n")
    with pytest.raises(CspmTypeError):
        load_source("x = (| 0 => 1, true => 2 |)\n")
    with pytest.raises(CspmTypeError):
        load_source("x = mapLookup((| 0 => 1 |), true)\n")
    with pytest.raises(CspmTypeError):  # map values of a Map(K, V) must be comparable
        load_source("x = Map({}, {\\ _ @ STOP})\n")
