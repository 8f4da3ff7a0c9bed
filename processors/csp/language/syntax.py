"""CSPm abstract syntax (treated as immutable; nodes compare by identity).

Every node has a source position (``line``, ``col``, ``end_line``,
``end_col``); the file name lives on the enclosing declaration list.
Patterns are parsed as expressions and converted to the ``P*`` classes.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(eq=False)
class Node:
    line: int
    col: int
    end_line: int = field(default=0, kw_only=True)
    end_col: int = field(default=0, kw_only=True)
    file: str = field(default="", kw_only=True)  # source file ("" = the module's main file)


# ---------------------------------------------------------------- patterns


@dataclass(eq=False)
class Pat(Node):
    pass


@dataclass(eq=False)
class PVar(Pat):
    name: str  # may name a datatype constructor / channel (resolved at use)


@dataclass(eq=False)
class PWild(Pat):
    pass


@dataclass(eq=False)
class PLit(Pat):
    value: object  # int | bool | Char (str of len 1 tagged via kind)
    kind: str  # "int" | "bool" | "char" | "string"


@dataclass(eq=False)
class PTuple(Pat):
    items: tuple[Pat, ...]


@dataclass(eq=False)
class PDot(Pat):
    items: tuple[Pat, ...]  # flattened a.b.c


@dataclass(eq=False)
class PSeq(Pat):
    items: tuple[Pat, ...]


@dataclass(eq=False)
class PConcat(Pat):
    left: Pat
    right: Pat


@dataclass(eq=False)
class PSet(Pat):
    items: tuple[Pat, ...]  # empty or singleton


@dataclass(eq=False)
class PDouble(Pat):
    left: Pat
    right: Pat


# ------------------------------------------------------------- expressions


@dataclass(eq=False)
class Expr(Node):
    pass


@dataclass(eq=False)
class Lit(Expr):
    value: object
    kind: str  # "int" | "bool" | "char" | "string"


@dataclass(eq=False)
class Var(Expr):
    name: str


@dataclass(eq=False)
class Tuple(Expr):
    items: tuple[Expr, ...]


@dataclass(eq=False)
class Dot(Expr):
    left: Expr
    right: Expr


@dataclass(eq=False)
class App(Expr):
    func: Expr
    args: tuple[Expr, ...]


@dataclass(eq=False)
class Let(Expr):
    decls: tuple[Decl, ...]
    body: Expr


@dataclass(eq=False)
class If(Expr):
    cond: Expr
    then: Expr
    orelse: Expr


@dataclass(eq=False)
class Lambda(Expr):
    pats: tuple[Pat, ...]
    body: Expr


@dataclass(eq=False)
class BinOp(Expr):
    op: str  # + - * / % == != < > <= >= and or ^
    left: Expr
    right: Expr


@dataclass(eq=False)
class UnOp(Expr):
    op: str  # "neg" | "not" | "#"
    operand: Expr


@dataclass(eq=False)
class Paren(Expr):
    inner: Expr


@dataclass(eq=False)
class Gen(Node):
    pat: Pat
    expr: Expr


@dataclass(eq=False)
class Filter(Node):
    cond: Expr


Stmt = Gen | Filter


@dataclass(eq=False)
class SeqLit(Expr):
    items: tuple[Expr, ...]


@dataclass(eq=False)
class SeqRange(Expr):
    lo: Expr
    hi: Expr | None
    stmts: tuple[Stmt, ...] = ()  # <a..b | x <- s>: concatenated ranges


@dataclass(eq=False)
class SeqComp(Expr):
    items: tuple[Expr, ...]
    stmts: tuple[Stmt, ...]


@dataclass(eq=False)
class SetLit(Expr):
    items: tuple[Expr, ...]


@dataclass(eq=False)
class SetRange(Expr):
    lo: Expr
    hi: Expr | None
    stmts: tuple[Stmt, ...] = ()  # {a..b | x <- s}: union of ranges


@dataclass(eq=False)
class SetComp(Expr):
    items: tuple[Expr, ...]
    stmts: tuple[Stmt, ...]


@dataclass(eq=False)
class EnumSet(Expr):
    """``{| c, d.1 |}`` (with optional comprehension statements)."""

    items: tuple[Expr, ...]
    stmts: tuple[Stmt, ...] = ()


@dataclass(eq=False)
class MapLit(Expr):
    """``(| k1 => v1, ... |)``."""

    pairs: tuple[tuple[Expr, Expr], ...]


@dataclass(eq=False)
class Field(Node):
    kind: str  # "?" | "!" | "$"
    expr: Expr | None  # for "!"
    pat: Pat | None  # for "?" / "$"
    restrict: Expr | None  # ?x:S


@dataclass(eq=False)
class Prefix(Expr):
    event: Expr
    fields: tuple[Field, ...]
    body: Expr


@dataclass(eq=False)
class TimedPrefix(Expr):
    """A prefix inside a ``Timed`` section (see :mod:`processors.csp.language.timed`):
    it may let time pass (``tock``) before its event, and its event ``e`` is followed
    by ``timing(e)`` tocks (one when ``timing`` is None)."""

    prefix: Expr
    timing: Expr | None
    tock: Expr


@dataclass(eq=False)
class Guard(Expr):
    cond: Expr
    proc: Expr


@dataclass(eq=False)
class ProcOp(Expr):
    """Binary process operators: [] |~| ||| /\\ [> ; hiding (op "\\") and projection (op "|\\")."""

    op: str
    left: Expr
    right: Expr


@dataclass(eq=False)
class SyncOp(Expr):
    """Binary operators with an event set: the exception operator ``P [| A |> Q``
    (op "[|>"), synchronising external choice ``P [+ A +] Q`` (op "[+") and
    synchronising interrupt ``P /+ A +\\ Q`` (op "/+")."""

    op: str
    left: Expr
    sync: Expr
    right: Expr


@dataclass(eq=False)
class GenPar(Expr):
    left: Expr
    sync: Expr
    right: Expr


@dataclass(eq=False)
class AlphaPar(Expr):
    left: Expr
    alpha_left: Expr
    alpha_right: Expr
    right: Expr


@dataclass(eq=False)
class LinkPar(Expr):
    left: Expr
    links: tuple[tuple[Expr, Expr], ...]
    stmts: tuple[Stmt, ...]
    right: Expr


@dataclass(eq=False)
class RenameE(Expr):
    proc: Expr
    pairs: tuple[tuple[Expr, Expr], ...]
    stmts: tuple[Stmt, ...]


@dataclass(eq=False)
class Replicated(Expr):
    """``[] x:S @ P`` and friends. ``op`` in [] |~| ||| ; || [|A|] [link].

    ``param`` is the sync set for ``[| A |]``, the alphabet for ``||`` (``[A] P``).
    """

    op: str
    stmts: tuple[Stmt, ...]
    body: Expr
    param: Expr | None = None
    links: tuple[tuple[Expr, Expr], ...] = ()
    link_stmts: tuple[Stmt, ...] = ()
    empty: Expr | None = None  # the process when the replication is empty (timed sections: TSTOP / TSKIP)


@dataclass(eq=False)
class Unsupported(Expr):
    """A construct that parses but lies outside the supported subset (e.g. a linked
    parallel in a timed section); rejected with CspmUnsupported before evaluation."""

    construct: str
    parts: tuple[Expr, ...] = ()


@dataclass(eq=False)
class Wildcard(Expr):
    """``_`` in expression position (only valid once converted to a pattern)."""


@dataclass(eq=False)
class DoublePatE(Expr):
    left: Expr
    right: Expr


# ------------------------------------------------------------ declarations


@dataclass(eq=False)
class Decl(Node):
    pass


@dataclass(eq=False)
class Clause(Node):
    groups: tuple[tuple[Pat, ...], ...]  # f(a,b)(c) -> ((a,b),(c,))
    body: Expr


@dataclass(eq=False)
class FunDecl(Decl):
    """A name defined by one or more clauses (a constant has one clause with no groups)."""

    name: str
    clauses: tuple[Clause, ...]


@dataclass(eq=False)
class PatDecl(Decl):
    pat: Pat
    body: Expr


@dataclass(eq=False)
class ChannelDecl(Decl):
    names: tuple[str, ...]
    type: Expr | None


@dataclass(eq=False)
class DataClause(Node):
    name: str
    type: Expr | None


@dataclass(eq=False)
class DataTypeDecl(Decl):
    name: str
    clauses: tuple[DataClause, ...]
    subtype: bool = False


@dataclass(eq=False)
class NameTypeDecl(Decl):
    name: str
    expr: Expr


@dataclass(eq=False)
class ExternalDecl(Decl):
    names: tuple[str, ...]
    transparent: bool


@dataclass(eq=False)
class IncludeDecl(Decl):
    path: str


@dataclass(eq=False)
class AssertDecl(Decl):
    text: str
    kind: str  # refines | deadlock free | divergence free | deterministic | has trace
    model: str | None
    negated: bool
    left: Expr
    right: Expr | None
    trace: Expr | None


@dataclass(eq=False)
class ModuleDecl(Decl):
    """``module M(params) <private> exports <exported> endmodule`` (flattened by :mod:`modules`)."""

    name: str
    params: tuple[str, ...] | None  # None: not parameterised
    private: tuple[Decl, ...]
    exported: tuple[Decl, ...]


@dataclass(eq=False)
class InstanceDecl(Decl):
    """``instance I = M(args)`` (``args`` is None for ``instance I = M``)."""

    name: str
    module: str
    args: tuple[Expr, ...] | None


@dataclass(eq=False)
class TimedSection(Decl):
    """``Timed (timing) { decls }``; :func:`processors.csp.language.timed.expand`
    translates it (the parser's result never holds one)."""

    timing: Expr | None
    decls: tuple[Decl, ...]


@dataclass(eq=False)
class UnsupportedDecl(Decl):
    """A declaration outside the supported subset (unsupported assertion models /
    options...); rejected with CspmUnsupported on load."""

    construct: str
    inner: tuple[Decl, ...] = ()


@dataclass(eq=False)
class ModuleFile:
    file: str
    decls: tuple[Decl, ...]


# ------------------------------------------------------- type annotations


@dataclass(eq=False)
class TyExpr(Node):
    pass


@dataclass(eq=False)
class TyName(TyExpr):
    name: str  # Int Bool Char Proc Event, a datatype / nametype, or a type variable


@dataclass(eq=False)
class TySet(TyExpr):
    elem: TyExpr


@dataclass(eq=False)
class TySeq(TyExpr):
    elem: TyExpr


@dataclass(eq=False)
class TyTuple(TyExpr):
    items: tuple[TyExpr, ...]


@dataclass(eq=False)
class TyMap(TyExpr):
    """``(| k => v |)``."""

    key: TyExpr
    value: TyExpr


@dataclass(eq=False)
class TyFunc(TyExpr):
    args: tuple[TyExpr, ...]
    ret: TyExpr


@dataclass(eq=False)
class TyDot(TyExpr):
    items: tuple[TyExpr, ...]


@dataclass(eq=False)
class TyDotable(TyExpr):
    """``a => b`` (takes one field ``a`` giving ``b``); ``a =>* b`` (any number of fields)."""

    arg: TyExpr
    result: TyExpr
    star: bool


@dataclass(eq=False)
class AnnotDecl(Decl):
    """``f, g :: (Eq a) => (a) -> Bool``."""

    names: tuple[str, ...]
    constraints: tuple[tuple[str, str], ...]
    type: TyExpr
