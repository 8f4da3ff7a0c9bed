"""CSPm evaluator: syntax -> values and process terms (:mod:`processors.csp.semantics.procs`).

Pure: the evaluator works on a parsed module; it never reads files.

* Top-level definitions are evaluated lazily and memoised (per evaluator
  instance); ``let`` constants are lazy thunks.
* Process-valued applications of named functions and process constants are
  wrapped in :class:`procs.Call` nodes keyed by (name, args); prefix
  continuations, ``if`` branches, guards and the right side of ``;`` are lazy.
* Runaway recursion is cut by a call-depth counter and reported as
  :class:`CspmEvalError` ("recursion too deep evaluating ...").
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Hashable, Iterable, Iterator
from functools import partial
from typing import Any

from processors.csp.language import syntax as S
from processors.csp.language.errors import CspmError, CspmEvalError, CspmSelfDependency, CspmUnsupported
from processors.csp.semantics import limits
from processors.csp.semantics import procs as P
from processors.csp.semantics.builtins import (
    COMPRESSIONS,
    PROC_COMPRESSIONS,
    PROCESS_FUNCTIONS,
    UNSUPPORTED_BUILTINS,
    LazyEvents,
    builtin_names,
    make_builtins,
)
from processors.csp.semantics.values import (
    LazyCells,
    Value,
    VBool,
    VChar,
    VDot,
    VFunc,
    VInf,
    VLazySeq,
    VMap,
    VName,
    VSeq,
    VSet,
    VTuple,
    atoms_to_value,
    dot,
    force_seq,
    render,
    sort_key,
    sorted_values,
    vbool,
    vmap,
)

MAX_DEPTH = 5000
_END = object()
_SMALL = 1 << 16
# Wider parallel compositions exceed the checker's recursion depth; say so instead.
MAX_PARALLEL_WIDTH = 50_000  # ranges this small are always built


class Thunk:
    """A lazily evaluated, memoised value (let constants, top-level definitions)."""

    __slots__ = ("fn", "value", "state", "name", "key_fn")

    def __init__(
        self, fn: Callable[[], Value], name: str, key_fn: Callable[[], Hashable] | None = None
    ) -> None:
        self.fn = fn
        self.key_fn = key_fn
        self.value: Value = None
        self.state = 0  # 0 new, 1 evaluating, 2 done
        self.name = name

    def force(self) -> Value:
        if self.state == 2:
            return self.value
        if self.state == 1:
            raise CspmSelfDependency(
                f"recursion too deep evaluating {self.name} (its value depends on itself)"
            )
        self.state = 1
        try:
            self.value = self.fn()
        except BaseException:
            self.state = 0
            raise
        self.state = 2
        return self.value


Env = dict[str, Any]


def _pos(e: S.Node) -> tuple[int, int]:
    return e.line, e.col


class Evaluator:
    def __init__(self, decls: tuple[S.Decl, ...], file: str) -> None:
        self.file = file
        self.depth = 0
        self.globals: dict[str, Thunk] = {}
        self.arity: dict[str, int] = {}  # constructor / channel -> number of fields
        self.field_types: dict[str, tuple[S.Expr, ...]] = {}
        self.channels: list[str] = []
        self.ctor_type: dict[str, str] = {}  # constructor -> datatype name
        self.datatypes: dict[str, tuple[str, ...]] = {}
        self.nametypes: dict[str, S.Expr] = {}
        self.transparent: set[str] = set()
        self._event_values: dict[str, Value] | None = None
        self._fv: dict[int, tuple[str, ...]] = {}
        self._vars: dict[int, tuple[S.Node, frozenset[str]]] = {}
        self._events_cache: dict[str, tuple[Value, ...]] = {}
        self._prefix_cache: dict[Hashable, P.Prefix] = {}
        self._field_sets: dict[str, tuple[Value, ...]] = {}
        self._uncheckable: set[str] = set()
        self._width: dict[str, int] = {}
        self._simple: dict[str, list[Value] | None] = {}
        self._descs: dict[str, tuple[tuple[str, Value], ...]] = {}
        self._lengths: dict[int, list[int]] = {}
        self._keep_sets: list[Value] = []
        self._sorted: dict[int, list[Value]] = {}
        self.builtins = make_builtins(self)
        for d in decls:
            self.declare(d)

    # ------------------------------------------------------------- errors
    def error(self, msg: str, node: S.Node | None) -> CspmEvalError:
        line, col = _pos(node) if node is not None else (0, 0)
        return CspmEvalError(msg, (node.file if node is not None else "") or self.file, line, col)

    def unsupported(self, what: str, node: S.Node | None) -> CspmUnsupported:
        line, col = _pos(node) if node is not None else (0, 0)
        return CspmUnsupported(what, (node.file if node is not None else "") or self.file, line, col)

    # -------------------------------------------------------- declarations
    def declare(self, d: S.Decl) -> None:
        if isinstance(d, S.FunDecl):
            self.globals[d.name] = self._fun_thunk(d, {})
        elif isinstance(d, S.PatDecl) and _tuple_split(d):
            assert isinstance(d.pat, S.PTuple) and isinstance(d.body, S.Tuple)
            for sp, se in zip(d.pat.items, d.body.items, strict=True):
                self.declare(S.PatDecl(d.line, d.col, sp, se))
        elif isinstance(d, S.PatDecl):
            whole = Thunk(partial(self.ev, d.body, {}), "pattern binding")
            for name in _pat_vars(d.pat, self):
                self.globals[name] = Thunk(partial(self._pat_extract, d, whole, name), name)
        elif isinstance(d, S.ChannelDecl):
            fields = _split_dots(d.type, self) if d.type is not None else ()
            for n in d.names:
                self.channels.append(n)
                self.arity[n] = len(fields)
                self.field_types[n] = fields
                self.globals[n] = _const(VName(n, "channel"), n)
        elif isinstance(d, S.DataTypeDecl):
            if d.subtype:
                # subtype T = A | B.x : the constructors already exist; T is a subset
                self.globals[d.name] = Thunk(partial(self._datatype_set, d), d.name)
                return
            names = []
            for c in d.clauses:
                fields = _split_dots(c.type, self) if c.type is not None else ()
                self.arity[c.name] = len(fields)
                self.field_types[c.name] = fields
                self.ctor_type[c.name] = d.name
                self.globals[c.name] = _const(VName(c.name, "data"), c.name)
                names.append(c.name)
            self.datatypes[d.name] = tuple(names)
            self.globals[d.name] = Thunk(partial(self._datatype_set, d), d.name)
        elif isinstance(d, S.NameTypeDecl):
            self.nametypes[d.name] = d.expr
            self.globals[d.name] = Thunk(partial(self.eval_type, d.expr, {}), d.name)
        elif isinstance(d, S.ExternalDecl):
            for n in d.names:
                if n == "failure_watchdog":
                    continue  # declaring it is fine; each use is refused with its line
                if n not in COMPRESSIONS | PROCESS_FUNCTIONS:
                    raise CspmUnsupported(
                        f"{'transparent' if d.transparent else 'external'} function {n}",
                        self.file,
                        d.line,
                        d.col,
                    )
                self.transparent.add(n)
        elif isinstance(d, S.AssertDecl | S.IncludeDecl | S.AnnotDecl | S.TimedSection):
            return
        elif isinstance(d, S.UnsupportedDecl):
            raise self.unsupported(d.construct, d)
        else:  # pragma: no cover
            raise self.unsupported(type(d).__name__, d)

    def _pat_extract(self, d: S.PatDecl, whole: Thunk, name: str) -> Value:
        v = whole.force()
        binds: Env = {}
        if not self.match(d.pat, v, binds):
            raise self.error(f"pattern does not match value {render(v)}", d)
        return binds[name]

    def _datatype_set(self, d: S.DataTypeDecl) -> Value:
        out: set[Value] = set()
        for c in d.clauses:
            vals = self.production_values(c.name, d)
            if d.subtype and c.type is not None:
                if c.name not in self.arity:
                    raise self.error(f"subtype {d.name}: {c.name} is not a constructor", c)
                sets = [self.to_set(self.eval_type(t, {}), t) for t in _split_dots(c.type, self)]
                keep = []
                for v in vals:
                    atoms = v.atoms if isinstance(v, VDot) else (v,)
                    i, ok = 1, True
                    for st in sets:
                        if i >= len(atoms):
                            ok = False
                            break
                        j = self.take_value(atoms, i)
                        if atoms_to_value(atoms[i:j]) not in st:
                            ok = False
                            break
                        i = j
                    if ok:
                        keep.append(v)
                vals = tuple(keep)
            out.update(vals)
        return VSet(frozenset(out))

    def _fun_thunk(self, d: S.FunDecl, env: Env) -> Thunk:
        cl = d.clauses[0]
        if not cl.groups:
            name = d.name

            def const() -> Value:
                v = self.ev(cl.body, env)
                if isinstance(v, P.Proc) and not isinstance(v, P.Call):
                    key = (name,) if env is not None and not env else (name, id(d), self.capture(d, env))
                    return P.Call(key, name, _returning(v), _span(self.file, d))
                return v

            return Thunk(const, name)
        return _const(self.make_function(d, env), d.name)

    def make_function(self, d: S.FunDecl, env: Env, outer: Env | None = None) -> VFunc:
        cap_env = env if outer is None else outer
        base: Hashable = d.name if not env else (d.name, id(d), self.capture(d, cap_env))
        ngroups = len(d.clauses[0].groups)
        for c in d.clauses:
            if len(c.groups) != ngroups:
                raise self.error(f"clauses of {d.name} have different numbers of argument lists", c)

        def build(collected: tuple[tuple[Value, ...], ...]) -> VFunc:
            idx = len(collected)
            arity = len(d.clauses[0].groups[idx])

            def apply(args: tuple[Value, ...]) -> Value:
                allargs = collected + (args,)
                if len(allargs) < ngroups:
                    return build(allargs)
                return self.call_clauses(d, env, allargs, base)

            key = base if not collected else (base, collected)
            return VFunc(key, d.name, arity, apply)

        return build(())

    def call_clauses(
        self, d: S.FunDecl, env: Env, allargs: tuple[tuple[Value, ...], ...], base: Hashable
    ) -> Value:
        for c in d.clauses:
            binds: Env = {}
            ok = True
            for pats, args in zip(c.groups, allargs, strict=True):
                if len(pats) != len(args):
                    raise self.error(f"{d.name} expects {len(pats)} argument(s) but was given {len(args)}", c)
                for p, a in zip(pats, args, strict=True):
                    if not self.match(p, a, binds):
                        ok = False
                        break
                if not ok:
                    break
            if ok:
                self.depth += 1
                try:
                    if self.depth > MAX_DEPTH:
                        raise self.error(f"recursion too deep evaluating {d.name}", c)
                    v = self.ev(c.body, {**env, **binds} if binds else env)
                except RecursionError:
                    raise self.error(f"recursion too deep evaluating {d.name}", c) from None
                finally:
                    self.depth -= 1
                if isinstance(v, P.Proc) and not isinstance(v, P.Call):
                    flat = tuple(a for grp in allargs for a in grp)
                    label = d.name + "".join("(" + ",".join(render(a) for a in g) + ")" for g in allargs)
                    return P.Call((base, flat), label, _returning(v), _span(self.file, c))
                return v
        shown = "".join("(" + ", ".join(render(a) for a in g) + ")" for g in allargs)
        raise self.error(f"no clause of {d.name} matches {d.name}{shown}", d)

    # ------------------------------------------------------- free variables
    def free_vars(self, node: S.Node) -> tuple[str, ...]:
        k = id(node)
        r = self._fv.get(k)
        if r is None:
            r = tuple(sorted(_node_vars(node, self._vars)))
            self._fv[k] = r
        return r

    def capture(self, node: S.Node, env: Env) -> tuple[tuple[str, Value], ...]:
        out = []
        for n in self.free_vars(node):
            if n in env:
                v = env[n]
                if isinstance(v, Thunk):
                    v = ("let", v.key_fn()) if v.key_fn is not None else v.force()
                out.append((n, v))
        return tuple(out)

    # ---------------------------------------------------------- evaluation
    def ev(self, e: S.Expr, env: Env) -> Value:
        fn = _DISPATCH.get(type(e))
        if fn is None:
            raise self.unsupported(f"expression {type(e).__name__}", e)
        return fn(self, e, env)

    def lookup(self, name: str, env: Env, node: S.Node) -> Value:
        if name in env:
            v = env[name]
        elif name in self.globals:
            v = self.globals[name]
        elif name in self.builtins:
            b = self.builtins[name]
            if isinstance(b, LazyEvents):
                return VSet(frozenset(self.all_events()))
            return b
        else:
            raise self.error(f"undefined identifier '{name}'", node)
        if isinstance(v, Thunk):
            try:
                return v.force()
            except CspmError as err:
                if err.line == 0:
                    raise _relocate(err, self.file, node) from None
                raise
        return v

    def ev_var(self, e: S.Var, env: Env) -> Value:
        return self.lookup(e.name, env, e)

    def ev_lit(self, e: S.Lit, env: Env) -> Value:
        if e.kind == "int":
            return e.value
        if e.kind == "bool":
            return vbool(bool(e.value))
        if e.kind == "char":
            return VChar(str(e.value))
        return VSeq(tuple(VChar(c) for c in str(e.value)))

    def ev_paren(self, e: S.Paren, env: Env) -> Value:
        return self.ev(e.inner, env)

    def ev_tuple(self, e: S.Tuple, env: Env) -> Value:
        return VTuple(tuple(self.ev(i, env) for i in e.items))

    def ev_dot(self, e: S.Dot, env: Env) -> Value:
        v = dot(self.ev(e.left, env), self.ev(e.right, env))
        self.check_dot(v, e)
        return v

    def check_dot(self, v: VDot, node: S.Node) -> None:
        """A complete constructor / channel application must lie in its declared type."""
        head = v.atoms[0]
        if not isinstance(head, VName) or self.arity.get(head.name, 0) == 0:
            return
        if self.take_value(v.atoms, 0) < len(v.atoms):
            if isinstance(head, VName) and head.kind == "channel":
                raise self.error(f"{render(v)} has too many fields for channel {head.name}", node)
            return
        if not self._complete(v.atoms):
            return
        if head.name in self._uncheckable:
            return
        try:
            ok = self.valid_event(head.name, v)
        except CspmUnsupported:
            self._uncheckable.add(head.name)
            return
        if not ok:
            kind = "channel" if head.kind == "channel" else "constructor"
            raise self.error(
                f"{render(v)} is not a valid value: its fields are outside the type of {kind} {head.name}",
                node,
            )

    def width(self, name: str) -> int:
        """Number of complete values following constructor/channel ``name``.

        A field whose type holds plain dotted values (``{0.1, 1.2}``) counts
        as several; computed lazily from the field types, falling back to the
        syntactic field count when a type cannot be enumerated.
        """
        w = self._width.get(name)
        if w is not None:
            return w
        n = self.arity.get(name, 0)
        if n == 0:
            return 0
        self._width[name] = n  # provisional (recursive types)
        total = 0
        try:
            for kind, st in self.field_descs(name):
                if kind == "data":
                    total += 1
                    continue
                sample = min(st.items, key=sort_key) if isinstance(st, VSet) and st.items else None
                if isinstance(sample, VDot):
                    k, i = 0, 0
                    while i < len(sample.atoms):
                        i = self.take_value(sample.atoms, i)
                        k += 1
                    total += k
                else:
                    total += 1
        except CspmError:
            total = n
        self._width[name] = total
        return total

    def _complete(self, atoms: tuple[Value, ...]) -> bool:
        """Whether every constructor in ``atoms`` has all its fields."""
        need = 0
        for a in atoms:
            need -= 1 if need > 0 else 0
            if isinstance(a, VName):
                need += self.width(a.name)
        return need == 0

    def ev_app(self, e: S.App, env: Env) -> Value:
        f = self.ev(e.func, env)
        if (
            isinstance(f, VFunc)
            and isinstance(f.key, tuple)
            and f.key[:1] == ("builtin",)
            and f.name in PROC_COMPRESSIONS
        ):
            try:
                args = tuple(self.ev(a, env) for a in e.args)
            except CspmSelfDependency:
                # FDR evaluates ``P = normal(P)`` lazily: the application is a process
                # call evaluated when it is unfolded. Compressions are the identity
                # here, so ``P = normal(P)`` is ``P = P``, which the firing rules
                # report as unguarded recursion.
                return self.lazy(e, env, _label(e))
        else:
            args = tuple(self.ev(a, env) for a in e.args)
        return self.apply(f, args, e)

    def apply(self, f: Value, args: tuple[Value, ...], node: S.Node) -> Value:
        if not isinstance(f, VFunc):
            raise self.error(f"{render(f)} is not a function", node)
        if f.arity >= 0 and len(args) != f.arity:
            raise self.error(f"function {f.name} expects {f.arity} argument(s), given {len(args)}", node)
        try:
            return f.apply(args)
        except CspmError as err:
            if err.line == 0:
                raise _relocate(err, self.file, node) from None
            raise

    def ev_let(self, e: S.Let, env: Env) -> Value:
        return self.ev(e.body, self.bind_decls(e.decls, env))

    def bind_decls(self, decls: tuple[S.Decl, ...], env: Env) -> Env:
        new: Env = dict(env)
        for d in decls:
            if isinstance(d, S.FunDecl):
                if not d.clauses[0].groups:
                    new[d.name] = self._let_const(d, new, env)
                else:
                    new[d.name] = Thunk(partial(self.make_function, d, new, env), d.name)
            elif isinstance(d, S.PatDecl) and _tuple_split(d):
                assert isinstance(d.pat, S.PTuple) and isinstance(d.body, S.Tuple)
                for sp, se in zip(d.pat.items, d.body.items, strict=True):
                    sub = S.PatDecl(d.line, d.col, sp, se)
                    whole = Thunk(partial(self.ev, sub.body, new), "pattern binding")
                    for name in _pat_vars(sp, self):
                        new[name] = Thunk(partial(self._pat_extract, sub, whole, name), name)
            elif isinstance(d, S.PatDecl):
                whole = Thunk(partial(self.ev, d.body, new), "pattern binding")
                for name in _pat_vars(d.pat, self):
                    new[name] = Thunk(partial(self._pat_extract, d, whole, name), name)
            elif isinstance(d, S.ExternalDecl):
                for n in d.names:
                    if n == "failure_watchdog":
                        continue
                    if n not in COMPRESSIONS | PROCESS_FUNCTIONS:
                        raise self.unsupported(f"external function {n}", d)
            elif isinstance(d, S.AnnotDecl | S.TimedSection):
                continue
            else:
                raise self.unsupported(f"{type(d).__name__} inside let", d)
        return new

    def _let_const(self, d: S.FunDecl, new: Env, outer: Env) -> Thunk:
        body = d.clauses[0].body

        def const() -> Value:
            v = self.ev(body, new)
            if isinstance(v, P.Proc) and not isinstance(v, P.Call):
                key = (d.name, id(d), self.capture(d, outer))
                return P.Call(key, d.name, _returning(v), _span(self.file, d))
            return v

        return Thunk(const, d.name, lambda: (d.name, id(d), self.capture(d, outer)))

    def ev_if(self, e: S.If, env: Env) -> Value:
        return self.ev(e.then if self.ev_bool(e.cond, env) else e.orelse, env)

    def ev_bool(self, e: S.Expr, env: Env) -> bool:
        v = self.ev(e, env)
        if not isinstance(v, VBool):
            raise self.error(f"expected a boolean, found {render(v)}", e)
        return v.b

    def ev_int(self, e: S.Expr, env: Env) -> int:
        v = self.ev(e, env)
        if not isinstance(v, int) or isinstance(v, bool):
            raise self.error(f"expected an integer, found {render(v)}", e)
        return v

    def ev_lambda(self, e: S.Lambda, env: Env) -> Value:
        key = ("lambda", id(e), self.capture(e, env))

        def apply(args: tuple[Value, ...]) -> Value:
            binds: Env = {}
            for p, a in zip(e.pats, args, strict=True):
                if not self.match(p, a, binds):
                    raise self.error(f"lambda pattern does not match {render(a)}", e)
            self.depth += 1
            try:
                if self.depth > MAX_DEPTH:
                    raise self.error("recursion too deep evaluating lambda", e)
                return self.ev(e.body, {**env, **binds})
            finally:
                self.depth -= 1

        return VFunc(key, "lambda", len(e.pats), apply)

    def ev_binop(self, e: S.BinOp, env: Env) -> Value:
        op = e.op
        if op == "and":
            return vbool(self.ev_bool(e.left, env) and self.ev_bool(e.right, env))
        if op == "or":
            return vbool(self.ev_bool(e.left, env) or self.ev_bool(e.right, env))
        if op in ("+", "-", "*", "/", "%"):
            a = self.ev_int(e.left, env)
            b = self.ev_int(e.right, env)
            if op == "+":
                return a + b
            if op == "-":
                return a - b
            if op == "*":
                return a * b
            if b == 0:
                raise self.error("division by zero", e)
            # Haskell's div / mod (as libcspm): rounding towards negative infinity
            return a // b if op == "/" else a % b
        if op == "^":
            a = self.forced(self.ev(e.left, env), e)
            b = self.ev(e.right, env)
            if isinstance(a, VSeq) and isinstance(b, VLazySeq):  # <x>^xs with xs infinite stays lazy
                return VLazySeq(LazyCells(itertools.chain(a.items, b.iterate())), 0, b.label)
            b = self.forced(b, e)
            if not isinstance(a, VSeq) or not isinstance(b, VSeq):
                raise self.error("'^' expects sequences", e)
            return VSeq(a.items + b.items)
        a = self.forced(self.ev(e.left, env), e)
        b = self.forced(self.ev(e.right, env), e)
        if op == "==":
            return vbool(_equal(a, b))
        if op == "!=":
            return vbool(not _equal(a, b))
        return vbool(self.compare(op, a, b, e))

    def compare(self, op: str, a: Value, b: Value, e: S.Node) -> bool:
        if op in (">", ">="):
            return self.compare("<" if op == ">" else "<=", b, a, e)
        if isinstance(a, int) and isinstance(b, int):
            return a < b if op == "<" else a <= b
        if isinstance(a, VSet | VInf) and isinstance(b, VSet | VInf):
            if isinstance(a, VSet) and isinstance(b, VSet):
                return a.items < b.items if op == "<" else a.items <= b.items
            if isinstance(a, VSet) and isinstance(b, VInf):
                return all(b.contains(x) for x in a.items) and (op == "<=" or True)
            if isinstance(a, VInf) and isinstance(b, VInf):
                lo_a = a.lo if a.lo is not None else -(10**30)
                lo_b = b.lo if b.lo is not None else -(10**30)
                return lo_a >= lo_b if op == "<=" else lo_a > lo_b
            return False
        if isinstance(a, VTuple) and isinstance(b, VTuple) and len(a.items) == len(b.items):
            for x, y in zip(a.items, b.items, strict=True):
                if _equal(x, y):
                    continue
                return self.compare("<", x, y, e)
            return op == "<="
        if isinstance(a, VSeq) and isinstance(b, VSeq):
            pre = b.items[: len(a.items)] == a.items
            return pre if op == "<=" else pre and len(a.items) < len(b.items)
        if isinstance(a, VMap) and isinstance(b, VMap):
            # libcspm: a submap whose values are each at most the other's
            da, db = a.as_dict(), b.as_dict()
            sub = all(k in db and (_equal(v, db[k]) or self.compare("<", v, db[k], e)) for k, v in da.items())
            return sub if op == "<=" else sub and a != b
        raise self.error(f"cannot compare {render(a)} and {render(b)} with '{op}'", e)

    def match_lazy(self, p: S.PSeq | S.PConcat, v: VLazySeq, binds: Env) -> bool:
        """``<>``, ``<x, y>``, ``<x>^xs`` against a lazy sequence: only as much as the pattern fixes is read."""
        if isinstance(p, S.PSeq):
            got = v.take(len(p.items))
            if got is None or v.take(len(p.items) + 1) is not None:
                return False
            return self.match(p, VSeq(got), binds)
        lfix = _fixed_len(p.left)
        if lfix is None:
            return self.match(p, self.forced(v, p), binds)
        got = v.take(lfix)
        if got is None:
            return False
        return self.match(p.left, VSeq(got), binds) and self.match(p.right, v.drop(lfix), binds)

    def ev_unop(self, e: S.UnOp, env: Env) -> Value:
        if e.op == "not":
            return vbool(not self.ev_bool(e.operand, env))
        if e.op == "neg":
            return -self.ev_int(e.operand, env)
        v = self.forced(self.ev(e.operand, env), e)
        if isinstance(v, VSeq):
            return len(v.items)
        raise self.error(f"'#' expects a sequence, found {render(v)}", e)

    # ---------------------------------------------------- sets & sequences
    def to_set(self, v: Value, node: S.Node) -> frozenset[Value]:
        if isinstance(v, VSet):
            return v.items
        if isinstance(v, VInf):
            raise self.unsupported(
                f"infinite set {v.name if v.lo is None else '{' + str(v.lo) + '..}'}", node
            )
        raise self.error(f"expected a set, found {render(v)}", node)

    def iter_set(self, v: Value, node: S.Node) -> list[Value]:
        return sorted_values(self.to_set(v, node))

    def forced(self, v: Value, node: S.Node) -> Value:
        """``v`` with a lazy sequence made whole (an error naming it if it is infinite)."""
        if isinstance(v, VLazySeq):
            try:
                return force_seq(v)
            except ValueError as exc:
                raise self.error(str(exc), node) from None
        return v

    def to_seq(self, v: Value, node: S.Node) -> tuple[Value, ...]:
        v = self.forced(v, node)
        if isinstance(v, VSeq):
            return v.items
        raise self.error(f"expected a sequence, found {render(v)}", node)

    def comprehension(
        self, stmts: tuple[S.Stmt, ...], env: Env, seq: bool, lazy: list[bool] | None = None
    ) -> Iterator[Env]:
        """The environments of a comprehension's generators and filters, in order.

        A generator over an infinite sequence is read lazily when ``lazy`` is given (a
        sequence comprehension: ``lazy[0]`` is set so that its result stays lazy);
        anywhere else it is refused.
        """
        if not stmts:
            yield env
            return
        st, rest = stmts[0], stmts[1:]
        if isinstance(st, S.Filter):
            if self.ev_bool(st.cond, env):
                yield from self.comprehension(rest, env, seq, lazy)
            return
        src = self.ev(st.expr, env)
        items: Iterable[Value]
        if isinstance(src, VLazySeq) and lazy is not None:
            lazy[0] = True
            items = src.iterate()
        elif isinstance(src, VSeq | VLazySeq):
            items = self.to_seq(src, st.expr)
        else:
            items = self.iter_set(src, st.expr)
        for v in items:
            binds: Env = {}
            if self.match(st.pat, v, binds):
                yield from self.comprehension(rest, {**env, **binds}, seq, lazy)

    def ev_setlit(self, e: S.SetLit, env: Env) -> Value:
        return VSet(frozenset(self.ev(i, env) for i in e.items))

    def ev_setrange(self, e: S.SetRange, env: Env) -> Value:
        if e.stmts:
            acc: Value = VSet(frozenset())
            union = self.builtins["union"]
            for env2 in self.comprehension(e.stmts, env, False):
                acc = self.apply(
                    union, (acc, self.ev_setrange(S.SetRange(e.line, e.col, e.lo, e.hi), env2)), e
                )
            return acc
        lo = self.ev_int(e.lo, env)
        if e.hi is None:
            return VInf(lo)
        hi = self.ev_int(e.hi, env)
        self._check_size(lo, hi, e, "{", "}")
        return VSet(frozenset(range(lo, hi + 1)))

    def ev_setcomp(self, e: S.SetComp, env: Env) -> Value:
        out: set[Value] = set()
        for env2 in self.comprehension(e.stmts, env, False):
            for i in e.items:
                out.add(self.ev(i, env2))
        return VSet(frozenset(out))

    def ev_seqlit(self, e: S.SeqLit, env: Env) -> Value:
        return VSeq(tuple(self.ev(i, env) for i in e.items))

    def ev_seqrange(self, e: S.SeqRange, env: Env) -> Value:
        if e.stmts:
            out: list[Value] = []
            for env2 in self.comprehension(e.stmts, env, True):
                part = self.ev_seqrange(S.SeqRange(e.line, e.col, e.lo, e.hi), env2)
                out.extend(part.items)
            return VSeq(tuple(out))
        lo = self.ev_int(e.lo, env)
        if e.hi is None:
            return VLazySeq(LazyCells(itertools.count(lo)), 0, f"<{lo}..>")
        hi = self.ev_int(e.hi, env)
        self._check_size(lo, hi, e, "<", ">")
        return VSeq(tuple(range(lo, hi + 1)))

    def _check_size(self, lo: int, hi: int, e: S.SetRange | S.SeqRange, op: str, cl: str) -> None:
        """Refuse a range that cannot fit the memory limit, before building it."""
        if hi - lo < _SMALL:
            return
        why = limits.check_size(hi - lo + 1, f"the range {op}{lo}..{hi}{cl}")
        if why is not None:
            raise self.error(why, e)

    def ev_seqcomp(self, e: S.SeqComp, env: Env) -> Value:
        lazy = [False]
        gen = (self.ev(i, env2) for env2 in self.comprehension(e.stmts, env, True, lazy) for i in e.items)
        out: list[Value] = []
        while not lazy[0]:
            x = next(gen, _END)
            if x is _END:
                return VSeq(tuple(out))
            out.append(x)
        # a generator reads an infinite sequence: the rest is produced on demand
        return VLazySeq(LazyCells(itertools.chain(out, gen)), 0, "<..|..>")

    def ev_enum(self, e: S.EnumSet, env: Env) -> Value:
        out: set[Value] = set()
        for env2 in self.comprehension(e.stmts, env, False):
            for i in e.items:
                out.update(self.production(self.ev(i, env2), i))
        return VSet(frozenset(out))

    # ------------------------------------------------ structured field types
    def field_descs(self, name: str) -> tuple[tuple[str, Value], ...]:
        """Field type descriptors of a channel / constructor: ``("data", D)`` for a
        datatype (checked and enumerated structurally) or ``("set", S)``."""
        got = self._descs.get(name)
        if got is None:
            got = tuple(self.desc_of(t, 0) for t in self.field_types.get(name, ()))
            self._descs[name] = got
        return got

    def desc_of(self, t: S.Expr, depth: int) -> tuple[str, Value]:
        inner = t.inner if isinstance(t, S.Paren) else t
        if isinstance(inner, S.Var) and depth < 20:
            if inner.name in self.datatypes and inner.name not in self.nametypes:
                return ("data", inner.name)
            if inner.name in self.nametypes:
                return self.desc_of(self.nametypes[inner.name], depth + 1)
        st = self.eval_type(t, {})
        if isinstance(st, VSet) and any(
            isinstance(x, VDot) and not isinstance(x.atoms[0], VName) for x in st.items
        ):
            self._check_rectangular(st, t)
        return ("set", st)

    def _check_rectangular(self, st: VSet, node: S.Node) -> None:
        """A field type of dotted values must be a product set (FDR: rectangular)."""
        lengths = {len(x.atoms) if isinstance(x, VDot) else 1 for x in st.items}
        if len(lengths) != 1:
            raise self.error(f"field type {render(st)} is not rectangular (mixed shapes)", node)
        n = lengths.pop()
        columns: list[set[Value]] = [set() for _ in range(n)]
        for x in st.items:
            for k, a in enumerate(x.atoms if isinstance(x, VDot) else (x,)):
                columns[k].add(a)
        size = 1
        for c in columns:
            size *= len(c)
        if size != len(st.items):
            raise self.error(f"field type {render(st)} is not rectangular (not a product of sets)", node)

    def check_value(self, desc: tuple[str, Value], atoms: tuple[Value, ...], i: int) -> int:
        """End index of a value of type ``desc`` starting at ``atoms[i]``, or -1."""
        if i >= len(atoms):
            return -1
        kind, d = desc
        if kind == "data":
            a = atoms[i]
            if not (isinstance(a, VName) and self.ctor_type.get(a.name) == d):
                return -1
            j = i + 1
            for fd in self.field_descs(a.name):
                j = self.check_value(fd, atoms, j)
                if j < 0:
                    return -1
            return j
        if isinstance(d, VInf):
            return i + 1 if d.contains(atoms[i]) else -1
        if not isinstance(d, VSet):
            return -1
        lengths = self._lengths.get(id(d))
        if lengths is None:
            lengths = sorted({len(x.atoms) if isinstance(x, VDot) else 1 for x in d.items})
            self._lengths[id(d)] = lengths
            self._keep_sets.append(d)
        for n in lengths:
            if i + n <= len(atoms) and atoms_to_value(atoms[i : i + n]) in d.items:
                return i + n
        return -1

    def enum_value(
        self, desc: tuple[str, Value], prefix: tuple[Value, ...], stack: tuple[str, ...], node: S.Node | None
    ) -> Iterator[tuple[Value, ...]]:
        """Atom tuples of the values of type ``desc`` consistent with ``prefix``."""
        kind, d = desc
        if kind == "data":
            assert isinstance(d, str)
            if d in stack:
                raise self.unsupported(f"enumerating the recursive datatype {d}", node)
            for c in sorted(self.datatypes.get(d, ())):
                if prefix and not (isinstance(prefix[0], VName) and prefix[0].name == c):
                    continue
                head = (VName(c, "data"),)
                for rest in self.enum_fields(self.field_descs(c), prefix[1:], stack + (d,), node):
                    yield head + rest
            return
        ordered = self._sorted.get(id(d))
        if ordered is None:
            ordered = self.iter_set(d, node or S.Node(0, 0))
            self._sorted[id(d)] = ordered
            self._keep_sets.append(d)
        for v in ordered:
            at = v.atoms if isinstance(v, VDot) else (v,)
            m = min(len(at), len(prefix))
            if at[:m] == prefix[:m]:
                yield at

    def enum_fields(
        self,
        descs: tuple[tuple[str, Value], ...],
        prefix: tuple[Value, ...],
        stack: tuple[str, ...],
        node: S.Node | None,
    ) -> Iterator[tuple[Value, ...]]:
        if not descs:
            yield ()  # any leftover prefix belongs to an enclosing value (checked there)
            return
        for first in self.enum_value(descs[0], prefix, stack, node):
            rest_prefix = prefix[len(first) :] if len(prefix) > len(first) else ()
            for rest in self.enum_fields(descs[1:], rest_prefix, stack, node):
                yield first + rest

    def events_with_prefix(
        self, name: str, prefix: tuple[Value, ...], node: S.Node | None
    ) -> Iterator[Value]:
        """Complete values ``name.f1...`` whose atoms start with ``(name,) + prefix``."""
        head = VName(name, "channel" if name in self.channels else "data")
        n = len(prefix)
        for rest in self.enum_fields(self.field_descs(name), prefix, (), node):
            if rest[:n] == prefix:
                yield atoms_to_value((head,) + rest)

    def production(self, v: Value, node: S.Node | None) -> list[Value]:
        """``{| v |}``: all events / datatype values extending ``v``."""
        atoms = v.atoms if isinstance(v, VDot) else (v,)
        head = atoms[0]
        if not isinstance(head, VName):
            raise self.error(f"{{| |}} expects a channel or constructor, found {render(v)}", node)
        if head.name not in self.field_types:
            raise self.error(f"{{| |}} expects a channel or constructor, found {render(v)}", node)
        out = list(self.events_with_prefix(head.name, atoms[1:], node))
        if len(out) > 2_000_000:
            raise self.unsupported(f"{{| {render(v)} |}} is too large to enumerate", node)
        if not out and len(atoms) > 1:
            raise self.error(
                f"{{| {render(v)} |}}: {render(v)} is not a prefix of any value of {head.name}", node
            )
        return out

    def production_values(self, name: str, node: S.Node | None) -> tuple[Value, ...]:
        """All complete values ``name.f1....fn`` (events of a channel / values of a constructor)."""
        cached = self._events_cache.get(name)
        if cached is not None:
            return cached
        if name in self._field_sets:
            raise self.unsupported(f"recursive type through {name}", node)
        self._field_sets[name] = ()
        try:
            head = VName(
                name, "channel" if name in self.field_types and name not in self.ctor_type else "data"
            )
            out: list[Value] = []
            for rest in self.enum_fields(self.field_descs(name), (), (), node):
                out.append(atoms_to_value((head,) + rest))
                if len(out) > 2_000_000:
                    raise self.unsupported(f"type of {name} is too large to enumerate", node)
            res = tuple(out)
        finally:
            del self._field_sets[name]
        self._events_cache[name] = res
        return res

    def eval_type(self, e: S.Expr, env: Env) -> Value:
        """Evaluate a type expression: a set, ``A.B`` (dotted product) or ``(A, B)`` (tuples)."""
        if isinstance(e, S.Dot):
            left = self.iter_set(self.eval_type(e.left, env), e.left)
            right = self.iter_set(self.eval_type(e.right, env), e.right)
            return VSet(frozenset(dot(a, b) for a in left for b in right))
        if isinstance(e, S.Tuple):
            parts = [self.iter_set(self.eval_type(i, env), i) for i in e.items]
            return VSet(frozenset(VTuple(c) for c in itertools.product(*parts)))
        if isinstance(e, S.Paren):
            return self.eval_type(e.inner, env)
        if isinstance(e, S.Var) and e.name in self.arity and e.name not in self.datatypes:
            return VSet(frozenset(self.production_values(e.name, e)))
        return self.ev(e, env)

    # ----------------------------------------------------------- patterns
    def is_ctor(self, name: str) -> bool:
        return name in self.arity and name in self.globals

    def match(self, p: S.Pat, v: Value, binds: Env) -> bool:
        if isinstance(p, S.PVar):
            if self.is_ctor(p.name):
                return isinstance(v, VName) and v.name == p.name
            binds[p.name] = v
            return True
        if isinstance(p, S.PWild):
            return True
        if isinstance(p, S.PLit):
            if p.kind == "int":
                return isinstance(v, int) and not isinstance(v, bool) and v == p.value
            if p.kind == "bool":
                return isinstance(v, VBool) and v.b == p.value
            if p.kind == "char":
                return isinstance(v, VChar) and v.c == p.value
            return False
        if isinstance(p, S.PTuple):
            return (
                isinstance(v, VTuple)
                and len(v.items) == len(p.items)
                and all(self.match(a, b, binds) for a, b in zip(p.items, v.items, strict=True))
            )
        if isinstance(p, S.PDot):
            atoms = v.atoms if isinstance(v, VDot) else (v,)
            return self.match_dot(p.items, atoms, 0, binds)
        if isinstance(v, VLazySeq) and isinstance(p, S.PSeq | S.PConcat):
            return self.match_lazy(p, v, binds)
        if isinstance(p, S.PSeq):
            return (
                isinstance(v, VSeq)
                and len(v.items) == len(p.items)
                and all(self.match(a, b, binds) for a, b in zip(p.items, v.items, strict=True))
            )
        if isinstance(p, S.PConcat):
            if not isinstance(v, VSeq):
                return False
            n = len(v.items)
            lfix = _fixed_len(p.left)
            rfix = _fixed_len(p.right)
            if lfix is not None:
                if lfix > n:
                    return False
                return self.match(p.left, VSeq(v.items[:lfix]), binds) and self.match(
                    p.right, VSeq(v.items[lfix:]), binds
                )
            if rfix is not None:
                if rfix > n:
                    return False
                return self.match(p.left, VSeq(v.items[: n - rfix]), binds) and self.match(
                    p.right, VSeq(v.items[n - rfix :]), binds
                )
            raise self.unsupported("concatenation pattern with two variable-length sides", p)
        if isinstance(p, S.PSet):
            if not isinstance(v, VSet):
                return False
            if not p.items:
                return not v.items
            if len(v.items) != 1:
                return False
            return self.match(p.items[0], next(iter(v.items)), binds)
        if isinstance(p, S.PDouble):
            return self.match(p.left, v, binds) and self.match(p.right, v, binds)
        raise self.unsupported(f"pattern {type(p).__name__}", p)

    def take_value(self, atoms: tuple[Value, ...], i: int) -> int:
        """Index just after the complete value starting at ``atoms[i]``."""
        a = atoms[i]
        i += 1
        if isinstance(a, VName):
            for _ in range(self.width(a.name)):
                if i >= len(atoms):
                    return i
                i = self.take_value(atoms, i)
        return i

    def consume(self, p: S.Pat, atoms: tuple[Value, ...], i: int) -> int:
        """How many atoms a non-final dotted sub-pattern takes, starting at ``i``."""
        if i >= len(atoms):
            return i
        if isinstance(p, S.PDot):
            for q in p.items:
                i = self.consume(q, atoms, i)
            return i
        if isinstance(p, S.PDouble):
            return max(self.consume(p.left, atoms, i), self.consume(p.right, atoms, i))
        if isinstance(p, S.PVar) and self.is_ctor(p.name):
            return i + 1
        return self.take_value(atoms, i)

    def match_dot(self, pats: tuple[S.Pat, ...], atoms: tuple[Value, ...], i: int, binds: Env) -> bool:
        for k, p in enumerate(pats):
            if i >= len(atoms):
                return False
            if k == len(pats) - 1:
                return self.match(p, atoms_to_value(atoms[i:]), binds)
            if isinstance(p, S.PVar) and self.is_ctor(p.name):
                a = atoms[i]
                if not (isinstance(a, VName) and a.name == p.name):
                    return False
                i += 1
                continue
            if isinstance(p, S.PDot | S.PDouble):
                j = min(self.consume(p, atoms, i), len(atoms))
                if not self.match(p, atoms_to_value(atoms[i:j]), binds):
                    return False
                i = j
                continue
            j = self.take_value(atoms, i)
            if not self.match(p, atoms_to_value(atoms[i:j]), binds):
                return False
            i = j
        return i >= len(atoms)

    # ----------------------------------------------------------- processes
    def ev_proc(self, e: S.Expr, env: Env) -> P.Proc:
        v = self.ev(e, env)
        if not isinstance(v, P.Proc):
            raise self.error(f"expected a process, found {render(v)}", e)
        return v

    def span(self, e: S.Node) -> P.Span:
        return _span(self.file, e)

    def event_set(self, e: S.Expr, env: Env) -> frozenset[str]:
        v = self.ev(e, env)
        return frozenset(render(x) for x in self.to_set(v, e))

    def ev_prefix(self, e: S.Prefix, env: Env) -> Value:
        key = (id(e), self.capture(e, env))
        cached = self._prefix_cache.get(key)
        if cached is not None:
            return cached
        head = self.ev(e.event, env)
        atoms = head.atoms if isinstance(head, VDot) else (head,)
        chan = atoms[0]
        if not isinstance(chan, VName) or chan.name not in self.channels:
            raise self.error(f"prefix event {render(head)} is not a channel event", e.event)
        conts: dict[str, Env] = {}
        simple = self.simple_fields(chan.name)
        if all(f.kind == "!" for f in e.fields):
            ev_v = head
            for f in e.fields:
                assert f.expr is not None
                ev_v = dot(ev_v, self.ev(f.expr, env))
            if not self.valid_event(chan.name, ev_v):
                raise self.error(f"event {render(ev_v)} is not in the type of channel {chan.name}", e.event)
            conts[render(ev_v)] = env
        elif any(f.kind == "$" for f in e.fields):
            return self._nondet_prefix(e, env, atoms, key)
        elif simple is not None:
            for ev_atoms, sbinds in self._enum_simple(simple, e.fields, atoms, env):
                conts[render(atoms_to_value(ev_atoms))] = {**env, **sbinds}
        else:
            const = atoms[1:] + self._const_prefix(e.fields, env)
            for cand in self.events_with_prefix(chan.name, const, e):
                catoms = cand.atoms if isinstance(cand, VDot) else (cand,)
                if catoms[: len(atoms)] != atoms:
                    continue
                binds: Env = {}
                if self.match_fields(e.fields, catoms, len(atoms), binds, env):
                    conts[render(cand)] = {**env, **binds}
        body = e.body
        events = tuple(conts)

        def cont(event: str) -> P.Proc:
            env2 = conts.get(event)
            if env2 is None:
                raise CspmEvalError(
                    f"event {event} is not offered by this prefix", e.file or self.file, e.line, e.col
                )
            try:
                return self.ev_proc(body, env2)
            except RecursionError:
                raise CspmEvalError(
                    "recursion too deep evaluating a prefix continuation", e.file or self.file, e.line, e.col
                ) from None

        pre = P.Prefix(key, events, cont, self.span(e))
        self._prefix_cache[key] = pre
        return pre

    def _const_prefix(self, fields: tuple[S.Field, ...], env: Env) -> tuple[Value, ...]:
        """Atoms that every event of a prefix has after its head: leading outputs and
        the leading constants of the first input pattern."""
        out: list[Value] = []
        for f in fields:
            if f.kind == "!":
                assert f.expr is not None
                out.extend(_atoms(self.ev(f.expr, env)))
                continue
            pat = f.pat
            items = pat.items if isinstance(pat, S.PDot) else (pat,) if pat is not None else ()
            for q in items:
                if isinstance(q, S.PVar) and self.is_ctor(q.name):
                    out.append(VName(q.name, "channel" if q.name in self.channels else "data"))
                elif isinstance(q, S.PLit) and q.kind == "int":
                    out.append(q.value)
                elif isinstance(q, S.PLit) and q.kind == "bool":
                    out.append(vbool(bool(q.value)))
                else:
                    break
            break
        return tuple(out)

    def simple_fields(self, name: str) -> list[Value] | None:
        """The field types of channel ``name`` when every field value is a single atom
        (no dotted or constructor-with-fields values); ``None`` otherwise."""
        if name in self._simple:
            return self._simple[name]
        res: list[Value] | None
        try:
            res = []
            for kind, st in self.field_descs(name):
                if kind == "data":
                    ctors = self.datatypes.get(str(st), ())
                    if any(self.arity.get(c, 0) for c in ctors):
                        res = None
                        break
                    res.append(VSet(frozenset(VName(c, "data") for c in ctors)))
                    continue
                if isinstance(st, VSet):
                    if any(
                        isinstance(x, VDot) or (isinstance(x, VName) and self.width(x.name) > 0)
                        for x in st.items
                    ):
                        res = None
                        break
                elif not (isinstance(st, VInf) and st.name in ("Int", "Char")):
                    res = None
                    break
                res.append(st)
        except CspmError:
            res = None
        self._simple[name] = res
        return res

    def valid_event(self, name: str, v: Value) -> bool:
        """Whether ``v`` is a complete event of channel ``name``."""
        atoms = v.atoms if isinstance(v, VDot) else (v,)
        simple = self.simple_fields(name)
        if simple is not None:
            if len(atoms) - 1 != len(simple):
                return False
            return all(_member(a, st) for a, st in zip(atoms[1:], simple, strict=True))
        i = 1
        for fd in self.field_descs(name):
            i = self.check_value(fd, atoms, i)
            if i < 0:
                return False
        return i == len(atoms)

    def _enum_simple(
        self, sets: list[Value], fields: tuple[S.Field, ...], head: tuple[Value, ...], env: Env
    ) -> Iterator[tuple[tuple[Value, ...], Env]]:
        """Events of a prefix over a channel with single-atom fields, built field by field."""
        n = len(sets)
        fixed = head[1:]
        if len(fixed) > n or not all(_member(a, st) for a, st in zip(fixed, sets, strict=False)):
            return

        def rec(
            i: int, k: int, acc: tuple[Value, ...], binds: Env
        ) -> Iterator[tuple[tuple[Value, ...], Env]]:
            if k == len(fields):
                if i == n:
                    yield acc, binds
                return
            if i >= n:
                return
            f = fields[k]
            last = k == len(fields) - 1
            if f.kind == "!":
                assert f.expr is not None
                v = self.ev(f.expr, {**env, **binds})
                vat = v.atoms if isinstance(v, VDot) else (v,)
                if i + len(vat) > n or not all(_member(a, sets[i + j]) for j, a in enumerate(vat)):
                    return
                yield from rec(i + len(vat), k + 1, acc + vat, binds)
                return
            assert f.pat is not None
            width = n - i if last else 1
            if width == 1 and isinstance(sets[i], VInf) and f.restrict is not None:
                # c?x:S over an infinite field type: the restriction set bounds the input
                r = self.ev(f.restrict, {**env, **binds})
                pools = [[v for v in self.iter_set(r, f.restrict) if _member(v, sets[i])]]
            else:
                pools = [self.iter_set(sets[i + j], f) for j in range(width)]
            for combo in itertools.product(*pools):
                val = combo[0] if width == 1 else VDot(combo)
                b2 = dict(binds)
                if not self.match(f.pat, val, b2):
                    continue
                if f.restrict is not None:
                    r = self.ev(f.restrict, {**env, **b2})
                    if isinstance(r, VInf):
                        if not r.contains(val):
                            continue
                    elif val not in self.to_set(r, f.restrict):
                        continue
                yield from rec(i + width, k + 1, acc + combo, b2)

        yield from rec(len(fixed), 0, head, {})

    def _nondet_prefix(self, e: S.Prefix, env: Env, atoms: tuple[Value, ...], key: Hashable) -> P.Proc:
        """``c$x?y -> P`` = internal choice over the ``$`` values of ``c.x?y -> P``."""
        chan = atoms[0]
        assert isinstance(chan, VName)
        dollar_names = [
            n for f in e.fields if f.kind == "$" and f.pat is not None for n in _pat_vars(f.pat, self)
        ]
        groups: dict[tuple[Value, ...], dict[str, Env]] = {}
        for cand in self.production_values(chan.name, e):
            catoms = cand.atoms if isinstance(cand, VDot) else (cand,)
            if catoms[: len(atoms)] != atoms:
                continue
            binds: Env = {}
            if self.match_fields(e.fields, catoms, len(atoms), binds, env):
                g = tuple(binds.get(n) for n in dollar_names)
                groups.setdefault(g, {})[render(cand)] = {**env, **binds}
        if not groups:
            raise self.error("nondeterministic input '$' over an empty set of values", e)
        body = e.body
        alts: list[P.Proc] = []
        for g, conts in sorted(groups.items(), key=lambda kv: tuple(sort_key(x) for x in kv[0])):

            def cont(event: str, conts: dict[str, Env] = conts) -> P.Proc:
                env2 = conts.get(event)
                if env2 is None:
                    raise CspmEvalError(
                        f"event {event} is not offered by this prefix", e.file or self.file, e.line, e.col
                    )
                return self.ev_proc(body, env2)

            alts.append(P.Prefix((key, g), tuple(conts), cont, self.span(e)))
        res: P.Proc = alts[0] if len(alts) == 1 else P.IntChoice(tuple(alts), self.span(e))
        return res

    def _event_set(self, name: str) -> frozenset[Value]:
        k = "\0set:" + name
        s = self._events_cache.get(k)
        if s is None:
            s = (frozenset(self.production_values(name, None)),)
            self._events_cache[k] = s
        fs = s[0]
        assert isinstance(fs, frozenset)
        return fs

    def match_fields(
        self, fields: tuple[S.Field, ...], atoms: tuple[Value, ...], i: int, binds: Env, env: Env
    ) -> bool:
        for k, f in enumerate(fields):
            if i >= len(atoms):
                return False
            last = k == len(fields) - 1
            j = len(atoms) if last else self.take_value(atoms, i)
            if f.kind == "!":
                assert f.expr is not None
                v = self.ev(f.expr, {**env, **binds})
                vat = v.atoms if isinstance(v, VDot) else (v,)
                if atoms[i : i + len(vat)] != vat:
                    return False
                i += len(vat)
                continue
            assert f.pat is not None
            val = atoms_to_value(atoms[i:j])
            if isinstance(f.pat, S.PDot) and not last:
                if not self.match_dot(f.pat.items, atoms[i:j], 0, binds):
                    return False
            elif not self.match(f.pat, val, binds):
                return False
            if f.restrict is not None:
                r = self.ev(f.restrict, {**env, **binds})
                if isinstance(r, VInf):
                    if not r.contains(val):
                        return False
                elif val not in self.to_set(r, f.restrict):
                    return False
            i = j
        return i == len(atoms)

    def ev_timedprefix(self, e: S.TimedPrefix, env: Env) -> Value:
        """A prefix of a timed section: ``X = (tock -> X) [] p'`` where ``p'`` is the
        prefix with every event ``ev`` followed by ``timing(ev)`` tocks."""
        p = self.ev_proc(e.prefix, env)
        tock = render(self.ev(e.tock, {}))
        timing = self.ev(e.timing, {}) if e.timing is not None else None

        def tocks(ev: str) -> int:
            if timing is None:
                return 1
            n = self.apply(timing, (self.event_value(ev, e),), e)
            if not isinstance(n, int) or isinstance(n, bool) or n < 0:
                raise self.error(f"the timing function gives {render(n)} for {ev}: expected a natural number", e)
            return n

        def delayed(q: P.Proc) -> P.Proc:
            if isinstance(q, P.ExtChoice):
                return P.ExtChoice(tuple(delayed(x) for x in q.procs), q.span)
            if not isinstance(q, P.Prefix):
                return q
            base = q

            def cont(ev: str) -> P.Proc:
                nxt = base.cont(ev)
                for i in range(tocks(ev)):
                    nxt = P.Prefix(("tocks", base.key, ev, i), (tock,), _then(nxt), base.span)
                return nxt

            return P.Prefix(("timed", base.key), base.events, cont, base.span)

        body = delayed(p)
        key = ("timed prefix", p)

        def unfold() -> P.Proc:
            return P.ExtChoice((P.Prefix(("tock", p), (tock,), _then(me), self.span(e)), body), self.span(e))

        me = P.Call(key, _label(e.prefix), unfold, self.span(e))
        return me

    def event_value(self, ev: str, node: S.Node) -> Value:
        """The value of the event rendered as ``ev``."""
        if self._event_values is None:
            self._event_values = {render(v): v for v in self.all_events()}
        v = self._event_values.get(ev)
        if v is None:
            raise self.error(f"{ev} is not an event", node)
        return v

    def ev_maplit(self, e: S.MapLit, env: Env) -> Value:
        d: dict[Value, Value] = {}
        for k, v in e.pairs:
            d[self.ev(k, env)] = self.ev(v, env)
        return vmap(d)

    def ev_guard(self, e: S.Guard, env: Env) -> Value:
        if self.ev_bool(e.cond, env):
            return self.ev_proc(e.proc, env)
        return P.Stop()

    def lazy(self, e: S.Expr, env: Env, label: str) -> P.Proc:
        key = ("lazy", id(e), self.capture(e, env))

        def body() -> P.Proc:
            try:
                return self.ev_proc(e, env)
            except RecursionError:
                raise self.error(f"recursion too deep evaluating {label}", e) from None

        return P.Call(key, label, body, self.span(e))

    def ev_procop(self, e: S.ProcOp, env: Env) -> Value:
        op = e.op
        left = self.ev_proc(e.left, env)
        sp = self.span(e)
        if op == "\\":
            hidden = self.event_set(e.right, env)
            return P.Hide(left, hidden, sp) if hidden else left
        if op == "|\\":  # project: hide every event outside the set
            kept = self.event_set(e.right, env)
            hidden = frozenset(render(v) for v in self.all_events()) - kept
            return P.Hide(left, hidden, sp) if hidden else left
        if op == ";":
            return P.SeqComp(left, self.lazy(e.right, env, _label(e.right)), sp)
        right = self.ev_proc(e.right, env)
        if op == "[]":
            return P.ExtChoice(_flat(P.ExtChoice, left) + _flat(P.ExtChoice, right), sp)
        if op == "|~|":
            return P.IntChoice(_flat(P.IntChoice, left) + _flat(P.IntChoice, right), sp)
        if op == "|||":
            return P.GenParallel((left, right), frozenset(), sp)
        if op == "/\\":
            return P.Interrupt(left, right, sp)
        if op == "[>":
            return P.SlidingChoice(left, right, sp)
        raise self.unsupported(f"operator {op}", e)

    def ev_syncop(self, e: S.SyncOp, env: Env) -> Value:
        sync = self.event_set(e.sync, env)
        left = self.ev_proc(e.left, env)
        sp = self.span(e)
        if e.op == "[|>":
            return P.ExceptionOp(left, self.lazy(e.right, env, _label(e.right)), sync, sp)
        right = self.ev_proc(e.right, env)
        if e.op == "[+":
            return P.SyncExtChoice(_flat_sync(left, sync) + _flat_sync(right, sync), sync, sp)
        if e.op == "/+":
            return P.SyncInterrupt(left, right, sync, sp)
        raise self.unsupported(f"operator {e.op}", e)

    def ev_genpar(self, e: S.GenPar, env: Env) -> Value:
        sync = self.event_set(e.sync, env)
        return P.GenParallel((self.ev_proc(e.left, env), self.ev_proc(e.right, env)), sync, self.span(e))

    def ev_alphapar(self, e: S.AlphaPar, env: Env) -> Value:
        a = self.event_set(e.alpha_left, env)
        b = self.event_set(e.alpha_right, env)
        return P.AlphaParallel(
            ((self.ev_proc(e.left, env), a), (self.ev_proc(e.right, env), b)), self.span(e)
        )

    def pairs(
        self, pairs: tuple[tuple[S.Expr, S.Expr], ...], stmts: tuple[S.Stmt, ...], env: Env, node: S.Node
    ) -> frozenset[tuple[str, str]]:
        out: set[tuple[str, str]] = set()
        for env2 in self.comprehension(stmts, env, False):
            for a_e, b_e in pairs:
                a = self.ev(a_e, env2)
                b = self.ev(b_e, env2)
                a_atoms = a.atoms if isinstance(a, VDot) else (a,)
                for x in self.production(a, a_e):
                    xat = x.atoms if isinstance(x, VDot) else (x,)
                    suffix = xat[len(a_atoms) :]
                    y = b
                    for s in suffix:
                        y = dot(y, s)
                    yat = y.atoms if isinstance(y, VDot) else (y,)
                    head = yat[0]
                    if (
                        isinstance(head, VName)
                        and head.name in self.channels
                        and y in self._event_set(head.name)
                    ):
                        out.add((render(x), render(y)))
                    elif not (isinstance(head, VName) and head.name in self.channels):
                        raise self.error(f"{render(b)} is not a channel event", b_e)
        return frozenset(out)

    def check_links(self, links: frozenset[tuple[str, str]], e: S.Node) -> None:
        lefts: dict[str, str] = {}
        rights: dict[str, str] = {}
        for a, b in sorted(links):
            if lefts.setdefault(a, b) != b or rights.setdefault(b, a) != a:
                raise self.error(
                    f"linked parallel links {a if lefts[a] != b else b} to more than one event", e
                )

    def ev_linkpar(self, e: S.LinkPar, env: Env) -> Value:
        links = self.pairs(e.links, e.stmts, env, e)
        self.check_links(links, e)
        return P.LinkedParallel(self.ev_proc(e.left, env), self.ev_proc(e.right, env), links, self.span(e))

    def ev_rename(self, e: S.RenameE, env: Env) -> Value:
        proc = self.ev_proc(e.proc, env)
        return P.Rename(proc, self.pairs(e.pairs, e.stmts, env, e), self.span(e))

    def ev_replicated(self, e: S.Replicated, env: Env) -> Value:
        op = e.op
        sp = self.span(e)
        envs = list(self.comprehension(e.stmts, env, op == ";"))
        if not envs and e.empty is not None:
            return self.ev_proc(e.empty, env)
        if op == "[]":
            ps = tuple(self.ev_proc(e.body, x) for x in envs)
            return P.ExtChoice(ps, sp) if ps else P.Stop()
        if op == "|~|":
            ps = tuple(self.ev_proc(e.body, x) for x in envs)
            if not ps:
                raise self.error("replicated internal choice over an empty set", e)
            return P.IntChoice(ps, sp) if len(ps) > 1 else ps[0]
        if op in ("|||", "[|", "||") and len(envs) > MAX_PARALLEL_WIDTH:
            shown = "[| ... |]" if op == "[|" else op
            raise self.error(
                f"replicated {shown} over {len(envs)} processes is too wide: "
                f"at most {MAX_PARALLEL_WIDTH} parallel components are supported",
                e,
            )
        if op == "|||":
            ps = tuple(self.ev_proc(e.body, x) for x in envs)
            return P.GenParallel(ps, frozenset(), sp) if ps else P.Skip()
        if op == "[|":
            assert e.param is not None
            sync = self.event_set(e.param, env)
            ps = tuple(self.ev_proc(e.body, x) for x in envs)
            return P.GenParallel(ps, sync, sp) if ps else P.Skip()
        if op == "||":
            assert e.param is not None
            comps = tuple((self.ev_proc(e.body, x), self.event_set(e.param, x)) for x in envs)
            return P.AlphaParallel(comps, sp) if comps else P.Skip()
        if op == "[+":
            assert e.param is not None
            sync = self.event_set(e.param, env)
            ps = tuple(q for x in envs for q in _flat_sync(self.ev_proc(e.body, x), sync))
            return P.SyncExtChoice(ps, sync, sp) if ps else P.Stop()
        if op == ";":
            if not envs:
                return P.Skip()
            procs_: list[P.Proc] = [self.ev_proc(e.body, x) for x in envs]
            acc = procs_[-1]
            for p in reversed(procs_[:-1]):
                acc = P.SeqComp(p, acc, sp)
            return acc
        if op == "link":
            if not envs:
                raise self.error("replicated linked parallel over an empty sequence", e)
            acc = self.ev_proc(e.body, envs[0])
            for x in envs[1:]:
                links = self.pairs(e.links, e.link_stmts, x, e)
                self.check_links(links, e)
                acc = P.LinkedParallel(acc, self.ev_proc(e.body, x), links, sp)
            return acc
        raise self.unsupported(f"replicated operator {op}", e)

    def ev_unsupported(self, e: S.Unsupported, env: Env) -> Value:
        raise self.unsupported(e.construct, e)

    def ev_wild(self, e: S.Wildcard, env: Env) -> Value:
        raise self.error("'_' is only allowed in patterns", e)

    def ev_double(self, e: S.DoublePatE, env: Env) -> Value:
        raise self.error("'@@' is only allowed in patterns", e)

    def all_events(self) -> list[Value]:
        for c in self.channels:  # fail fast on infinite field types
            for kind, d in self.field_descs(c):
                if kind == "set" and isinstance(d, VInf):
                    raise CspmUnsupported(f"Events: channel {c} has an infinite field type", self.file, 0, 0)
        out: list[Value] = []
        for c in self.channels:
            out.extend(self.production_values(c, None))
        return out


def _flat_sync(p: P.Proc, sync: frozenset[str]) -> tuple[P.Proc, ...]:
    """Operands of a ``[+ A +]`` chain with the same ``A`` (the operator is associative)."""
    if isinstance(p, P.SyncExtChoice) and p.sync == sync:
        return p.procs
    return (p,)


def _atoms(v: Value) -> tuple[Value, ...]:
    return v.atoms if isinstance(v, VDot) else (v,)


def _member(v: Value, st: Value) -> bool:
    if isinstance(st, VInf):
        return st.contains(v)
    return isinstance(st, VSet) and v in st.items


def _then(v: P.Proc) -> Callable[[str], P.Proc]:
    """A prefix continuation that is ``v`` whatever the event."""

    def get(_ev: str) -> P.Proc:
        return v

    return get


def _returning(v: P.Proc) -> Callable[[], P.Proc]:
    def get() -> P.Proc:
        return v

    return get


def _spread(fn: Callable[..., Value]) -> Callable[[tuple[Value, ...]], Value]:
    def apply(args: tuple[Value, ...]) -> Value:
        return fn(*args)

    return apply


def _relocate(err: CspmError, file: str, node: S.Node) -> CspmError:
    where = node.file or file
    if isinstance(err, CspmUnsupported):
        return CspmUnsupported(err.construct, where, node.line, node.col)
    return type(err)(err.message, where, node.line, node.col)


def _tuple_split(d: S.PatDecl) -> bool:
    body = d.body.inner if isinstance(d.body, S.Paren) else d.body
    return (
        isinstance(d.pat, S.PTuple)
        and isinstance(body, S.Tuple)
        and len(d.pat.items) == len(body.items)
        and body is d.body
    )


def _label(e: S.Expr) -> str:
    if isinstance(e, S.Var):
        return e.name
    if isinstance(e, S.App) and isinstance(e.func, S.Var):
        return e.func.name + "(...)"
    return "…"


def _flat(cls: type, p: P.Proc) -> tuple[P.Proc, ...]:
    if isinstance(p, cls):
        return p.procs  # type: ignore[attr-defined,no-any-return]
    return (p,)


def _span(file: str, e: S.Node) -> P.Span:
    return P.Span(e.file or file, e.line, e.col, e.end_line or e.line, e.end_col or e.col)


def _const(v: Value, name: str) -> Thunk:
    t = Thunk(lambda: v, name)
    t.value = v
    t.state = 2
    return t


def _equal(a: Value, b: Value) -> bool:
    if isinstance(a, VInf) or isinstance(b, VInf):
        return isinstance(a, VInf) and isinstance(b, VInf) and a == b
    return bool(a == b) and type(a) is type(b)


def _fixed_len(p: S.Pat) -> int | None:
    if isinstance(p, S.PSeq):
        return len(p.items)
    if isinstance(p, S.PConcat):
        a, b = _fixed_len(p.left), _fixed_len(p.right)
        return a + b if a is not None and b is not None else None
    if isinstance(p, S.PDouble):
        return _fixed_len(p.left) or _fixed_len(p.right)
    return None


def _split_dots(e: S.Expr | None, ev: Evaluator) -> tuple[S.Expr, ...]:
    if e is None:
        return ()
    if isinstance(e, S.Dot):
        return _split_dots(e.left, ev) + _split_dots(e.right, ev)
    if isinstance(e, S.Paren) and isinstance(e.inner, S.Dot):
        return _split_dots(e.inner, ev)
    if isinstance(e, S.Var) and e.name in ev.nametypes:
        inner = ev.nametypes[e.name]
        if isinstance(inner, S.Dot):
            return _split_dots(inner, ev)
    return (e,)


def _pat_vars(p: S.Pat, ev: Evaluator) -> list[str]:
    out: list[str] = []

    def go(q: S.Pat) -> None:
        if isinstance(q, S.PVar):
            if not ev.is_ctor(q.name):
                out.append(q.name)
        elif isinstance(q, S.PTuple | S.PDot | S.PSeq | S.PSet):
            for i in q.items:
                go(i)
        elif isinstance(q, S.PConcat | S.PDouble):
            go(q.left)
            go(q.right)

    go(p)
    return out


_POS_FIELDS = frozenset({"line", "col", "end_line", "end_col"})
_NO_VARS: frozenset[str] = frozenset()


def _child_nodes(node: S.Node) -> list[S.Node]:
    out: list[S.Node] = []
    todo: list[object] = [v for k, v in vars(node).items() if k not in _POS_FIELDS]
    while todo:
        x = todo.pop()
        if isinstance(x, S.Node):
            out.append(x)
        elif isinstance(x, tuple):
            todo.extend(x)
    return out


def _node_vars(root: S.Node, memo: dict[int, tuple[S.Node, frozenset[str]]]) -> frozenset[str]:
    """Every variable name occurring in ``root`` (bound ones included).

    Computed bottom-up without recursion and memoised per node (the memo keeps
    the node alive so its id is not reused): a node costs the size of its
    children's sets, so a prefix chain of n steps is linear, not quadratic.
    """
    got = memo.get(id(root))
    if got is not None:
        return got[1]
    stack: list[tuple[S.Node, list[S.Node] | None]] = [(root, None)]
    while stack:
        node, kids = stack.pop()
        if id(node) in memo:
            continue
        if isinstance(node, S.Var):
            memo[id(node)] = (node, frozenset((node.name,)))
            continue
        if kids is None:
            kids = _child_nodes(node)
            stack.append((node, kids))
            stack.extend((c, None) for c in kids if id(c) not in memo)
            continue
        acc = _NO_VARS
        for c in kids:
            cv = memo[id(c)][1]
            if not acc:
                acc = cv
            elif cv and not cv <= acc:
                acc = acc | cv
        memo[id(node)] = (node, acc)
    return memo[id(root)][1]


_DISPATCH: dict[type, Callable[[Evaluator, Any, Env], Value]] = {
    S.Var: Evaluator.ev_var,
    S.Lit: Evaluator.ev_lit,
    S.Paren: Evaluator.ev_paren,
    S.Tuple: Evaluator.ev_tuple,
    S.Dot: Evaluator.ev_dot,
    S.App: Evaluator.ev_app,
    S.Let: Evaluator.ev_let,
    S.If: Evaluator.ev_if,
    S.Lambda: Evaluator.ev_lambda,
    S.BinOp: Evaluator.ev_binop,
    S.UnOp: Evaluator.ev_unop,
    S.SetLit: Evaluator.ev_setlit,
    S.SetRange: Evaluator.ev_setrange,
    S.SetComp: Evaluator.ev_setcomp,
    S.SeqLit: Evaluator.ev_seqlit,
    S.SeqRange: Evaluator.ev_seqrange,
    S.SeqComp: Evaluator.ev_seqcomp,
    S.EnumSet: Evaluator.ev_enum,
    S.Prefix: Evaluator.ev_prefix,
    S.Guard: Evaluator.ev_guard,
    S.ProcOp: Evaluator.ev_procop,
    S.GenPar: Evaluator.ev_genpar,
    S.TimedPrefix: Evaluator.ev_timedprefix,
    S.MapLit: Evaluator.ev_maplit,
    S.SyncOp: Evaluator.ev_syncop,
    S.AlphaPar: Evaluator.ev_alphapar,
    S.LinkPar: Evaluator.ev_linkpar,
    S.RenameE: Evaluator.ev_rename,
    S.Replicated: Evaluator.ev_replicated,
    S.Wildcard: Evaluator.ev_wild,
    S.Unsupported: Evaluator.ev_unsupported,
    S.DoublePatE: Evaluator.ev_double,
}


__all__ = ["Evaluator", "Thunk", "VInf", "UNSUPPORTED_BUILTINS", "builtin_names"]
