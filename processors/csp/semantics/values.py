"""CSPm runtime values (immutable, hashable) and their canonical rendering.

* ``Int``: Python ``int`` (never ``bool``).
* ``Bool``: :class:`VBool` (``TRUE``/``FALSE``), so ``true`` is never ``1``.
* ``Char``: :class:`VChar`; strings are sequences of chars.
* Tuples :class:`VTuple`, sequences :class:`VSeq`, finite sets :class:`VSet`.
* Channels and datatype constructors are :class:`VName`; a dotted value
  ``c.1.X.2`` is a :class:`VDot` holding the *flattened* atoms
  ``(c, 1, X, 2)`` (CSPm's dot is associative; the arities of constructors
  determine how the atoms group into fields).
* Events are channel names or dotted values headed by a channel; rendered by
  :func:`render` as canonical CSPm strings, sets sorted canonically.
* Functions are :class:`VFunc` / :class:`VBuiltin`; processes are
  :class:`processors.csp.semantics.procs.Proc` terms.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from typing import Any

from processors.csp.language.errors import CspmUnsupported
from processors.csp.semantics.procs import Proc


@dataclass(frozen=True)
class VBool:
    b: bool

    def __repr__(self) -> str:
        return "true" if self.b else "false"


TRUE = VBool(True)
FALSE = VBool(False)


def vbool(b: bool) -> VBool:
    return TRUE if b else FALSE


@dataclass(frozen=True)
class VChar:
    c: str


@dataclass(frozen=True)
class VName:
    """A channel or datatype constructor (``kind`` is "channel" or "data")."""

    name: str
    kind: str


@dataclass(frozen=True)
class VTuple:
    items: tuple[Value, ...]


@dataclass(frozen=True)
class VDot:
    atoms: tuple[Value, ...]  # flattened, length >= 2


@dataclass(frozen=True)
class VSeq:
    items: tuple[Value, ...]


class LazyCells:
    """The memoised cells of a possibly infinite stream (shared by a lazy sequence and its tails)."""

    __slots__ = ("it", "cells", "done")

    def __init__(self, it: Iterator[Any]) -> None:
        self.it = it
        self.cells: list[Any] = []
        self.done = False

    def has(self, i: int) -> bool:
        """Whether cell ``i`` exists (forcing the stream up to it)."""
        while len(self.cells) <= i and not self.done:
            try:
                self.cells.append(next(self.it))
            except StopIteration:
                self.done = True
        return len(self.cells) > i


@dataclass(frozen=True, eq=False)
class VLazySeq:
    """A lazily evaluated, possibly infinite sequence (``<0..>``, a comprehension over one).

    Only ``head``, ``tail``, ``null``, comprehension generators, ``^`` on the
    right and ``<x>^xs`` patterns look at it lazily; anything needing the whole
    value (``#``, ``==``, ``set``...) forces it with :func:`force_seq`, which
    refuses an infinite one.
    """

    cells: LazyCells
    start: int = 0
    label: str = "<..>"

    def empty(self) -> bool:
        return not self.cells.has(self.start)

    def head(self) -> Any:
        return self.cells.cells[self.start] if self.cells.has(self.start) else None

    def drop(self, n: int) -> VLazySeq:
        return VLazySeq(self.cells, self.start + n, self.label)

    def take(self, n: int) -> tuple[Any, ...] | None:
        """The first ``n`` items, or None if there are fewer."""
        if n and not self.cells.has(self.start + n - 1):
            return None
        return tuple(self.cells.cells[self.start : self.start + n])

    def iterate(self) -> Iterator[Any]:
        i = self.start
        while self.cells.has(i):
            yield self.cells.cells[i]
            i += 1


FORCE_LIMIT = 1_000_000


def force_seq(v: Any) -> Any:
    """A lazy sequence as a :class:`VSeq` if it ends within ``FORCE_LIMIT`` items, else ValueError."""
    if not isinstance(v, VLazySeq):
        return v
    if v.cells.has(v.start + FORCE_LIMIT):
        raise ValueError(f"the infinite sequence {v.label} is used where its whole value is needed")
    return VSeq(tuple(v.cells.cells[v.start :]))


@dataclass(frozen=True)
class VSet:
    items: frozenset[Value]


@dataclass(frozen=True, eq=False)
class VFunc:
    """A closure: ``key`` identifies it (definition id + captured values)."""

    key: Hashable
    name: str
    arity: int  # number of arguments of the next application
    apply: Callable[[tuple[Value, ...]], Value] = field(compare=False)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VFunc) and self.key == other.key

    def __hash__(self) -> int:
        return hash(("VFunc", self.key))


Value = Any  # int | VBool | VChar | VName | VTuple | VDot | VSeq | VSet | VInf | VFunc | Proc


@dataclass(frozen=True)
class VMap:
    """A finite map ``(| k => v, ... |)``: ``items`` holds (key, value) pairs, keys unique."""

    items: frozenset[tuple[Value, Value]]

    def as_dict(self) -> dict[Value, Value]:
        return dict(self.items)


def vmap(d: dict[Value, Value]) -> VMap:
    return VMap(frozenset(d.items()))


@dataclass(frozen=True)
class VInf:
    """An infinite set of integers ``{lo..}`` (``lo is None``: ``Int``) or an infinite type."""

    lo: int | None
    name: str = "Int"
    elem: Value = None  # for Seq(A): the element set A

    def contains(self, v: Value) -> bool:
        if self.name == "Char":
            return isinstance(v, VChar)
        if self.name == "Seq":
            el = self.elem
            if not isinstance(v, VSeq):
                return False
            if isinstance(el, VInf):
                return all(el.contains(x) for x in v.items)
            return isinstance(el, VSet) and all(x in el.items for x in v.items)
        if self.name != "Int":
            raise CspmUnsupported(f"membership in infinite type {self.name}")
        return isinstance(v, int) and not isinstance(v, bool) and (self.lo is None or v >= self.lo)


def dot(a: Value, b: Value) -> Value:
    """CSPm ``a.b`` on flattened atoms."""
    left = a.atoms if isinstance(a, VDot) else (a,)
    right = b.atoms if isinstance(b, VDot) else (b,)
    return VDot(left + right)


def atoms_to_value(atoms: tuple[Value, ...]) -> Value:
    if len(atoms) == 1:
        return atoms[0]
    return VDot(atoms)


def type_rank(v: Value) -> int:
    if isinstance(v, bool):
        raise TypeError("Python bool is not a CSPm value")
    if isinstance(v, int):
        return 1
    order = (VBool, VChar, VName, VDot, VTuple, VSeq, VSet, VFunc, VMap)
    for i, cls in enumerate(order):
        if isinstance(v, cls):
            return 2 + i
    return 20


def sort_key(v: Value) -> tuple[Any, ...]:
    """A total order on values, used for canonical rendering."""
    if isinstance(v, int) and not isinstance(v, bool):
        return (1, v)
    if isinstance(v, VBool):
        return (2, v.b)
    if isinstance(v, VChar):
        return (3, v.c)
    if isinstance(v, VName):
        return (4, v.name)
    if isinstance(v, VDot):
        return (5, tuple(sort_key(a) for a in v.atoms))
    if isinstance(v, VTuple):
        return (6, tuple(sort_key(a) for a in v.items))
    if isinstance(v, VSeq):
        return (7, tuple(sort_key(a) for a in v.items))
    if isinstance(v, VSet):
        return (8, len(v.items), tuple(sorted(sort_key(a) for a in v.items)))
    if isinstance(v, VMap):
        return (9, len(v.items), tuple(sorted((sort_key(k), sort_key(x)) for k, x in v.items)))
    return (10, render(v))


def sorted_values(vs: frozenset[Value] | set[Value]) -> list[Value]:
    return sorted(vs, key=sort_key)


def render(v: Value) -> str:
    """Canonical CSPm rendering (events: ``c.1.true``)."""
    if isinstance(v, bool):
        raise TypeError("Python bool is not a CSPm value")
    if isinstance(v, int):
        return str(v)
    if isinstance(v, VBool):
        return "true" if v.b else "false"
    if isinstance(v, VChar):
        return repr(v.c)
    if isinstance(v, VName):
        return v.name
    if isinstance(v, VDot):
        return ".".join(_render_field(a) for a in v.atoms)
    if isinstance(v, VTuple):
        return "(" + ",".join(render(a) for a in v.items) + ")"
    if isinstance(v, VSeq):
        if v.items and all(isinstance(c, VChar) for c in v.items):
            return '"' + "".join(c.c for c in v.items) + '"'
        return "<" + ",".join(render(a) for a in v.items) + ">"
    if isinstance(v, VLazySeq):
        first = [render(a) for _, a in zip(range(3), v.iterate(), strict=False)]
        return "<" + ",".join(first) + ",...>"
    if isinstance(v, VSet):
        return "{" + ",".join(render(a) for a in sorted_values(v.items)) + "}"
    if isinstance(v, VMap):
        pairs = sorted(v.items, key=lambda kv: sort_key(kv[0]))
        return "(|" + ", ".join(f"{render(k)} => {render(x)}" for k, x in pairs) + "|)"
    if isinstance(v, VFunc):
        return f"<function {v.name}>"
    if isinstance(v, Proc):
        name = getattr(v, "name", None)
        if isinstance(name, str):
            return name  # a Call: the process name and arguments
        simple = {"Stop": "STOP", "Skip": "SKIP", "Div": "DIV", "Omega": "Ω"}
        return simple.get(type(v).__name__, f"<process {type(v).__name__}>")
    return str(v)


def _render_field(v: Value) -> str:
    return render(v)


def is_true(v: Value) -> bool:
    return v is TRUE or (isinstance(v, VBool) and v.b)
