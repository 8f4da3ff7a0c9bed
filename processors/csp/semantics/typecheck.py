"""Static checks of a CSPm module, run before any evaluation.

Pure. Raises :class:`CspmTypeError` (with a position) for:

* undefined identifiers (scope analysis honouring every binder: clause
  patterns, ``let``, lambdas, comprehension / replicated statements, prefix
  inputs);
* duplicate definitions (top level, ``let``, datatype constructors, channels)
  and a variable bound twice in one pattern / statement list / prefix;
* channel payloads given as constants outside the channel's declared type
  (``c!2`` where ``channel c : {0..1}``), found by evaluating closed prefix
  events with the evaluator;
* type errors found by :mod:`processors.csp.language.types` (Hindley–Milner-style
  inference over CSPm's types, permissive where dotted types are ambiguous).
"""

from __future__ import annotations

from collections.abc import Iterable

from processors.csp.language import syntax as S
from processors.csp.language.errors import CspmError, CspmTypeError, CspmUnsupported
from processors.csp.semantics.builtins import EXTERNAL_ONLY
from processors.csp.semantics.evaluator import UNSUPPORTED_BUILTINS, Evaluator, builtin_names


def check_module(decls: tuple[S.Decl, ...], file: str) -> None:
    _reject_unsupported(decls, file)
    chk = _ScopeChecker(decls, file)
    chk.run()
    _check_payloads(decls, file, chk.ctors)
    from processors.csp.language.types import infer_module

    try:
        infer_module(decls, file)
    except CspmError:
        raise
    except (RecursionError, ValueError, TypeError, KeyError, AttributeError, IndexError, AssertionError):
        # An internal limitation of the inference must not make a script unloadable:
        # the evaluator still reports genuine errors when it runs.
        return


def _reject_unsupported(decls: tuple[S.Decl, ...], file: str) -> None:
    """Constructs that parse but are outside the supported subset: the first one (in
    source order) is reported as CspmUnsupported."""
    found: list[S.Unsupported | S.UnsupportedDecl] = []
    stack: list[object] = list(decls)
    while stack:
        n = stack.pop()
        if isinstance(n, S.Unsupported | S.UnsupportedDecl):
            found.append(n)
            continue
        if isinstance(n, tuple):
            stack.extend(n)
        elif isinstance(n, S.Node):
            stack.extend(v for k, v in vars(n).items() if isinstance(v, S.Node | tuple))
    if found:
        first = min(found, key=lambda n: (n.line, n.col))
        raise CspmUnsupported(first.construct, first.file or file, first.line, first.col)


def _err(file: str, node: S.Node, msg: str) -> CspmTypeError:
    return CspmTypeError(msg, node.file or file, node.line, node.col)


class _ScopeChecker:
    def __init__(self, decls: tuple[S.Decl, ...], file: str) -> None:
        self.decls = decls
        self.file = file
        self.ctors: set[str] = set()
        self.top: set[str] = set()
        self.builtins = builtin_names() - EXTERNAL_ONLY  # those are in scope once declared external

    def run(self) -> None:
        seen: dict[str, S.Node] = {}

        def define(name: str, node: S.Node) -> None:
            if name in seen:
                prev = seen[name]
                raise _err(self.file, node, f"'{name}' is defined more than once (also at line {prev.line})")
            seen[name] = node

        for d in self.decls:
            if isinstance(d, S.ChannelDecl):
                for n in d.names:
                    define(n, d)
                    self.ctors.add(n)
            elif isinstance(d, S.DataTypeDecl):
                define(d.name, d)
                if not d.subtype:
                    for dc in d.clauses:
                        define(dc.name, dc)
                        self.ctors.add(dc.name)
        for d in self.decls:
            if isinstance(d, S.FunDecl):
                define(d.name, d)
            elif isinstance(d, S.PatDecl):
                for n, node in self.pat_binders(d.pat):
                    define(n, node)
            elif isinstance(d, S.NameTypeDecl):
                define(d.name, d)
            elif isinstance(d, S.ExternalDecl):
                for n in d.names:
                    seen.setdefault(n, d)
        self.top = set(seen)
        for d in self.decls:
            self.decl(d, frozenset())

    # ------------------------------------------------------------ helpers
    def pat_binders(self, p: S.Pat) -> list[tuple[str, S.Node]]:
        out: list[tuple[str, S.Node]] = []

        def go(q: S.Pat) -> None:
            if isinstance(q, S.PVar):
                if q.name not in self.ctors:
                    out.append((q.name, q))
            elif isinstance(q, S.PTuple | S.PDot | S.PSeq | S.PSet):
                for i in q.items:
                    go(i)
            elif isinstance(q, (S.PConcat, S.PDouble)):
                go(q.left)
                go(q.right)

        go(p)
        return out

    def bind(self, pats: Iterable[S.Pat], scope: frozenset[str], what: str) -> frozenset[str]:
        names: dict[str, S.Node] = {}
        for p in pats:
            self.check_pat_ctors(p, scope)
            for n, node in self.pat_binders(p):
                if n in names and not _in_double(p, n):
                    raise _err(self.file, node, f"'{n}' is bound more than once in {what}")
                names[n] = node
        return scope | frozenset(names)

    def check_pat_ctors(self, p: S.Pat, scope: frozenset[str]) -> None:
        return None

    def name(self, name: str, node: S.Node, scope: frozenset[str]) -> None:
        if name in scope or name in self.top:
            return
        if name in EXTERNAL_ONLY:
            raise _err(self.file, node, f"'{name}' is not in scope (declare it: external {name})")
        if name in UNSUPPORTED_BUILTINS:
            raise CspmUnsupported(f"builtin {name}", node.file or self.file, node.line, node.col)
        if name in self.builtins:
            return
        raise _err(self.file, node, f"undefined identifier '{name}'")

    # ------------------------------------------------------- declarations
    def decl(self, d: S.Decl, scope: frozenset[str]) -> None:
        if isinstance(d, S.FunDecl):
            for c in d.clauses:
                inner = self.bind([p for g in c.groups for p in g], scope, f"the arguments of {d.name}")
                self.expr(c.body, inner)
        elif isinstance(d, S.PatDecl):
            self.expr(d.body, scope)
        elif isinstance(d, S.ChannelDecl):
            if d.type is not None:
                self.expr(d.type, scope)
        elif isinstance(d, S.DataTypeDecl):
            for dc in d.clauses:
                if d.subtype and dc.name not in self.ctors:
                    raise _err(self.file, dc, f"subtype {d.name}: '{dc.name}' is not a datatype constructor")
                if dc.type is not None:
                    self.expr(dc.type, scope)
        elif isinstance(d, S.NameTypeDecl):
            self.expr(d.expr, scope)
        elif isinstance(d, S.TimedSection):  # a timed section needs the channel tock
            if "tock" not in self.ctors:
                raise _err(self.file, d, "a timed section needs a channel tock (channel tock)")
            if d.timing is not None:
                self.expr(d.timing, scope)
        elif isinstance(d, S.AssertDecl):
            self.expr(d.left, scope)
            if d.right is not None:
                self.expr(d.right, scope)
            if d.trace is not None:
                self.expr(d.trace, scope)

    def stmts(self, stmts: tuple[S.Stmt, ...], scope: frozenset[str]) -> frozenset[str]:
        bound: dict[str, S.Node] = {}
        for st in stmts:
            if isinstance(st, S.Gen):
                self.expr(st.expr, scope)
                for n, node in self.pat_binders(st.pat):
                    if n in bound:
                        raise _err(self.file, node, f"'{n}' is bound more than once in these statements")
                    bound[n] = node
                scope = self.bind([st.pat], scope, "a generator")
            else:
                self.expr(st.cond, scope)
        return scope

    def expr(self, e: S.Expr, scope: frozenset[str]) -> None:
        if isinstance(e, S.Var):
            self.name(e.name, e, scope)
        elif isinstance(e, S.Let):
            names: dict[str, S.Node] = {}
            for d in e.decls:
                got: list[tuple[str, S.Node]]
                if isinstance(d, S.FunDecl):
                    got = [(d.name, d)]
                elif isinstance(d, S.PatDecl):
                    got = self.pat_binders(d.pat)
                else:
                    got = []
                for n, node in got:
                    if n in names:
                        raise _err(self.file, node, f"'{n}' is defined more than once in this let")
                    names[n] = node
            inner = scope | frozenset(names)
            for d in e.decls:
                self.decl(d, inner)
            self.expr(e.body, inner)
        elif isinstance(e, S.Lambda):
            self.expr(e.body, self.bind(e.pats, scope, "a lambda"))
        elif isinstance(e, S.SetRange | S.SeqRange) and e.stmts:
            inner = self.stmts(e.stmts, scope)
            self.expr(e.lo, inner)
            if e.hi is not None:
                self.expr(e.hi, inner)
        elif isinstance(e, (S.SetComp | S.SeqComp, S.EnumSet)):
            inner = self.stmts(e.stmts, scope)
            for i in e.items:
                self.expr(i, inner)
        elif isinstance(e, S.RenameE):
            self.expr(e.proc, scope)
            inner = self.stmts(e.stmts, scope)
            for a, b in e.pairs:
                self.expr(a, inner)
                self.expr(b, inner)
        elif isinstance(e, S.LinkPar):
            self.expr(e.left, scope)
            self.expr(e.right, scope)
            inner = self.stmts(e.stmts, scope)
            for a, b in e.links:
                self.expr(a, inner)
                self.expr(b, inner)
        elif isinstance(e, S.Replicated):
            if e.op in ("[|", "[+") and e.param is not None:
                self.expr(e.param, scope)
            inner = self.stmts(e.stmts, scope)
            if e.op == "||" and e.param is not None:
                self.expr(e.param, inner)
            self.expr(e.body, inner)
            if e.links:
                inner2 = self.stmts(e.link_stmts, inner)
                for a, b in e.links:
                    self.expr(a, inner2)
                    self.expr(b, inner2)
        elif isinstance(e, S.Prefix):
            self.expr(e.event, scope)
            pbound: dict[str, S.Node] = {}
            for f in e.fields:
                if f.kind == "!":
                    assert f.expr is not None
                    self.expr(f.expr, scope)
                else:
                    assert f.pat is not None
                    if f.restrict is not None:
                        self.expr(f.restrict, scope)
                    for n, node in self.pat_binders(f.pat):
                        if n in pbound:
                            raise _err(self.file, node, f"'{n}' is bound more than once in this prefix")
                        pbound[n] = node
                    scope = scope | frozenset(n for n, _ in self.pat_binders(f.pat))
            self.expr(e.body, scope)
        elif isinstance(e, S.Wildcard):
            raise _err(self.file, e, "'_' may only be used in a pattern")
        elif isinstance(e, S.DoublePatE):
            raise _err(self.file, e, "'@@' may only be used in a pattern")
        else:
            for k, v in vars(e).items():
                if k in ("line", "col", "end_line", "end_col"):
                    continue
                if isinstance(v, S.Expr):
                    self.expr(v, scope)
                elif isinstance(v, tuple):
                    for x in v:
                        if isinstance(x, S.Expr):
                            self.expr(x, scope)
                        elif isinstance(x, tuple):
                            for y in x:
                                if isinstance(y, S.Expr):
                                    self.expr(y, scope)


def _in_double(p: S.Pat, name: str) -> bool:
    """``x @@ x`` style double patterns may repeat a name on the two sides."""
    return isinstance(p, S.PDouble)


def _closed(e: S.Expr, top: set[str]) -> bool:
    names: set[str] = set()
    _vars(e, names)
    return names <= top


def _vars(node: object, out: set[str]) -> None:
    if isinstance(node, S.Var):
        out.add(node.name)
    elif isinstance(node, tuple):
        for x in node:
            _vars(x, out)
    elif isinstance(node, S.Node):
        if isinstance(
            node, S.Let | S.Lambda | S.SetComp | S.SeqComp | S.EnumSet | S.Replicated | S.Prefix
        ) or (isinstance(node, S.SetRange | S.SeqRange) and node.stmts):
            out.add("\0binder")
            return
        for k, v in vars(node).items():
            if k not in ("line", "col", "end_line", "end_col"):
                _vars(v, out)


def _check_payloads(decls: tuple[S.Decl, ...], file: str, ctors: set[str]) -> None:
    """Constant prefix events must lie in their channel's type (e.g. ``c!2``, ``c : {0..1}``)."""
    prefixes: list[S.Prefix] = []
    _collect_prefixes(decls, prefixes)
    if not prefixes:
        return
    ev = Evaluator(decls, file)
    top = set(ev.globals)
    for p in prefixes:
        parts: list[S.Expr] = [p.event]
        for f in p.fields:
            if f.kind != "!" or f.expr is None:
                break
            parts.append(f.expr)
        if not all(_closed(x, top) for x in parts):
            continue
        try:
            _check_partial(ev, parts, p)
        except CspmTypeError:
            raise
        except CspmError:
            continue


def _check_partial(ev: Evaluator, parts: list[S.Expr], p: S.Prefix) -> None:
    from processors.csp.semantics.values import VDot, VName, dot, render

    v = ev.ev(parts[0], {})
    for x in parts[1:]:
        v = dot(v, ev.ev(x, {}))
    atoms = v.atoms if isinstance(v, VDot) else (v,)
    head = atoms[0]
    if not isinstance(head, VName) or head.name not in ev.channels or len(atoms) == 1:
        return
    if next(iter(ev.events_with_prefix(head.name, atoms[1:], p)), None) is None:
        raise CspmTypeError(
            f"event {render(v)} is not in the type of channel {head.name}", p.file or ev.file, p.line, p.col
        )


def _collect_prefixes(node: object, out: list[S.Prefix]) -> None:
    if isinstance(node, S.Prefix):
        out.append(node)
    if isinstance(node, tuple):
        for x in node:
            _collect_prefixes(x, out)
    elif isinstance(node, S.Node):
        for k, v in vars(node).items():
            if k not in ("line", "col", "end_line", "end_col"):
                _collect_prefixes(v, out)
