"""CSPm modules: module ... exports ... endmodule, parameterised modules and instances."""

from __future__ import annotations

import pytest

from processors.csp.language.errors import CspmError, CspmTypeError
from processors.csp.semantics.frontend import load_source
from processors.csp.semantics.values import FALSE, TRUE

SRC = """\
channel out : {0..3}
P = STOP
module M(X)
    x = P
    n = card(X)
exports
    Y(x) = X == x
    size = n
    channel c
    Go = c -> out!n -> Go
endmodule

instance M1 = M({})
instance M2 = M({1, 2})

module N
    secret = 7
exports
    shown = secret + 1
    module Inner
    exports
        z = shown * 2
    endmodule
    w = Inner::z
endmodule

test1 = M1::Y({}) == true
test2 = M2::size == 2
test3 = N::Inner::z == 16 and N::w == 16
test4 = M1::Y({0})
SYS = M2::Go
assert SYS :[deadlock free]
"""


def test_modules_flatten_to_qualified_names() -> None:
    m = load_source(SRC, "m.csp")
    assert m.eval_value("test1") == TRUE
    assert m.eval_value("test2") == TRUE
    assert m.eval_value("test3") == TRUE
    assert m.eval_value("test4") == FALSE
    # each instance has its own channel
    assert "M1::c" in m.channels and "M2::c" in m.channels
    assert not m.has_name("N::secret")  # private names are not reachable from outside


def test_private_names_cannot_be_used_outside() -> None:
    with pytest.raises(CspmError, match="secret"):
        load_source("module N\n  secret = 1\nexports\n  y = secret\nendmodule\nz = N::secret\n")


def test_local_bindings_shadow_module_names() -> None:
    src = "module A\nexports\n  x = 1\n  f(x) = x + 10\n  g = let x = 5 within x\nendmodule\nt = A::f(2) == 12 and A::g == 5\n"
    assert load_source(src).eval_value("t") == TRUE


@pytest.mark.parametrize(
    "src",
    [
        "module M\nexports\nendmodule\nmodule M\nexports\nendmodule\n",
        "module M\nexports\nendmodule\nM = 0\n",
        "module M1(x)\nexports\n  instance A = M2(1)\nendmodule\nmodule M2(x)\nexports\n  instance B = M1(1)\nendmodule\n",
        "instance I = Nope(1)\n",
        "module M(x)\nexports\n  y = x\nendmodule\ninstance I = M(1, 2)\n",
    ],
)
def test_bad_module_systems_are_rejected(src: str) -> None:
    with pytest.raises(CspmTypeError):
        load_source(src)


def test_instances_of_nested_parameterised_modules() -> None:
    src = (
        "module M(x)\nexports\n  module N(y)\n  exports\n    s = x + y\n  endmodule\nendmodule\n"
        "instance X1 = M(1)\ninstance X2 = X1::N(2)\nt = X2::s == 3\n"
    )
    assert load_source(src).eval_value("t") == TRUE
