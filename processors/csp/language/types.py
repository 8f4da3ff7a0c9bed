"""Type inference for CSPm (Hindley–Milner with let-polymorphism and CSPm's dot types).

Pure. :func:`infer_module` raises :class:`CspmTypeError` on a type error.

Types: ``Int Bool Char Proc Event``, ``Seq(t)``, ``Set(t)``, tuples,
functions, datatypes ``Data(D)``, and for the dot operator:

* ``Dotable([f1..fn], r)``: a channel / constructor (or a partial event)
  still expecting fields ``f1..fn`` and yielding ``r`` (``Event`` or a datatype);
* ``DotSeq([t1..tn])``: a plain dotted value ``x.y`` (or the "rest" of an
  event bound by the last input ``c?x``).

Type-class constraints ``Eq`` and ``Ord`` are carried on type variables.
Where CSPm's typing of dots is genuinely ambiguous the checker is permissive
(``Any`` unifies with everything), so it never rejects what libcspm accepts
for the supported subset, while catching ordinary type errors.
"""

from __future__ import annotations

import contextlib
from collections import ChainMap
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field

from processors.csp.language import syntax as S
from processors.csp.language.errors import CspmTypeError

# ----------------------------------------------------------------- types


class Type:
    __slots__ = ()


@dataclass(eq=False)
class TVar(Type):
    ident: int
    level: int
    constraints: set[str] = field(default_factory=set)
    ref: Type | None = None


@dataclass(frozen=True)
class TCon(Type):
    name: str  # Int Bool Char Proc Event Any


@dataclass(frozen=True)
class TApp(Type):
    con: str  # Seq Set
    arg: Type


@dataclass(frozen=True)
class TTuple(Type):
    items: tuple[Type, ...]


@dataclass(frozen=True)
class TMap(Type):
    key: Type
    value: Type


@dataclass(frozen=True)
class TFunc(Type):
    args: tuple[Type, ...]
    ret: Type


@dataclass(frozen=True)
class TData(Type):
    name: str


@dataclass(frozen=True)
class TDotable(Type):
    fields: tuple[Type, ...]
    result: Type


@dataclass(frozen=True)
class TDotSeq(Type):
    items: tuple[Type, ...]


@dataclass(eq=False)
class TRigid(Type):
    """A type variable of a type annotation while checking the annotated definition."""

    name: str
    ident: int
    constraints: frozenset[str]


INT = TCon("Int")
BOOL = TCon("Bool")
CHAR = TCon("Char")
PROC = TCon("Proc")
EVENT = TCon("Event")
ANY = TCon("Any")


def tset(t: Type) -> Type:
    return TApp("Set", t)


def tseq(t: Type) -> Type:
    return TApp("Seq", t)


def prune(t: Type) -> Type:
    while isinstance(t, TVar) and t.ref is not None:
        t = t.ref
    return t


def show(t: Type) -> str:
    t = prune(t)
    if isinstance(t, TVar):
        c = f"{','.join(sorted(t.constraints))} " if t.constraints else ""
        return f"{c}t{t.ident}"
    if isinstance(t, TCon):
        return t.name
    if isinstance(t, TRigid):
        return t.name
    if isinstance(t, TApp):
        return f"{{{show(t.arg)}}}" if t.con == "Set" else f"<{show(t.arg)}>"
    if isinstance(t, TTuple):
        return "(" + ", ".join(show(i) for i in t.items) + ")"
    if isinstance(t, TMap):
        return f"(| {show(t.key)} => {show(t.value)} |)"
    if isinstance(t, TFunc):
        return "(" + ", ".join(show(a) for a in t.args) + ") -> " + show(t.ret)
    if isinstance(t, TData):
        return t.name
    if isinstance(t, TDotable):
        return "Dotable(" + ".".join(show(f) for f in t.fields) + " => " + show(t.result) + ")"
    if isinstance(t, TDotSeq):
        return ".".join(show(i) for i in t.items)
    return "?"


@dataclass(frozen=True)
class Scheme:
    vars: tuple[TVar, ...]
    type: Type


TEnv = MutableMapping[str, "Scheme | Type"]


def _extend(env: TEnv, binds: Mapping[str, Scheme | Type]) -> TEnv:
    """``env`` with (a copy of) ``binds`` on top, without copying ``env`` (a scope overlay)."""
    if not binds:
        return env
    top: dict[str, Scheme | Type] = dict(binds)
    if isinstance(env, ChainMap):
        return ChainMap(top, *env.maps)
    return ChainMap(top, env)


class _Mismatch(Exception):
    def __init__(self, msg: str) -> None:
        super().__init__(msg)
        self.msg = msg


# --------------------------------------------------------------- checker


class Infer:
    def __init__(self, file: str) -> None:
        self.file = file
        self.counter = 0
        self.level = 0
        self.ctor_fields: dict[str, tuple[Type, ...]] = {}
        self.ctor_result: dict[str, Type] = {}
        self.ctors: set[str] = set()
        self.data_names: set[str] = set()
        self.scoped: dict[str, Type] = {}
        self.deferred: list[tuple[list[tuple[S.Node, Type]], S.Prefix]] = []
        # libcspm's extendables: a variable of unknown type used in {| |} yields events, so
        # every x.e of it extends it by the same first field ("divergent extendable")
        self.extendable: dict[int, Type] = {}  # the variable's id -> its first field's type

    # ------------------------------------------------------- annotations
    def annot_type(self, a: S.AnnotDecl, rigid: bool) -> tuple[Type, dict[str, Type]]:
        """The annotated type: rigid variables (for checking) or fresh ones (for uses)."""
        cons: dict[str, set[str]] = {}
        for cls, v in a.constraints:
            if v in self.scoped or v[:1].isupper() or v in ("Int", "Bool", "Char", "Proc", "Event"):
                raise self.err(a, f"type error: constraint '{cls} {v}' must be on a new type variable")
            cons.setdefault(v, set()).add(cls)
        varmap: dict[str, Type] = {}
        t = self.to_type(a.type, varmap, cons, rigid)
        for v in cons:
            if v not in varmap:
                raise self.err(a, f"type error: constrained type variable '{v}' does not occur in the type")
        return t, varmap

    def to_type(self, ty: S.TyExpr, varmap: dict[str, Type], cons: dict[str, set[str]], rigid: bool) -> Type:
        def go(x: S.TyExpr) -> Type:
            return self.to_type(x, varmap, cons, rigid)

        if isinstance(ty, S.TyName):
            n = ty.name
            fixed = {"Int": INT, "Bool": BOOL, "Char": CHAR, "Proc": PROC, "Event": EVENT}
            if n in fixed:
                return fixed[n]
            if n in self.data_names:
                return TData(n)
            if "::" in n:  # a module's type: only datatypes are types
                raise self.err(ty, f"type error: {n} is not a datatype")
            if n in varmap:
                return varmap[n]
            if n in self.scoped and n not in cons:
                return self.scoped[n]
            self.counter += 1
            v: Type = (
                TRigid(n, self.counter, frozenset(cons.get(n, ())))
                if rigid
                else TVar(self.counter, self.level + 1, set(cons.get(n, ())))
            )
            varmap[n] = v
            return v
        if isinstance(ty, S.TySet):
            return tset(go(ty.elem))
        if isinstance(ty, S.TySeq):
            return tseq(go(ty.elem))
        if isinstance(ty, S.TyTuple):
            return TTuple(tuple(go(i) for i in ty.items))
        if isinstance(ty, S.TyMap):
            return TMap(go(ty.key), go(ty.value))
        if isinstance(ty, S.TyFunc):
            return TFunc(tuple(go(a) for a in ty.args), go(ty.ret))
        if isinstance(ty, S.TyDot):
            return TDotSeq(tuple(go(i) for i in ty.items))
        if isinstance(ty, S.TyDotable):
            if ty.star and not (
                isinstance(ty.arg, S.TyName)
                and ty.arg.name not in ("Int", "Bool", "Char", "Proc", "Event")
                and ty.arg.name not in self.data_names
            ):
                # libcspm: the fields of an extendable ``a =>* b`` are a type variable
                raise CspmTypeError(
                    "type error: the left of '=>*' must be a type variable",
                    ty.file or self.file,
                    ty.line,
                    ty.col,
                )
            arg, res = go(ty.arg), go(ty.result)
            if ty.star:
                return ANY
            res = prune(res)
            if isinstance(res, TDotable):
                return TDotable((arg,) + res.fields, res.result)
            return TDotable((arg,), res)
        return ANY

    def group(
        self,
        group: Sequence[S.Decl],
        env: TEnv,
        annots: dict[str, S.AnnotDecl],
        top: bool,
    ) -> None:
        """Infer one strongly connected group of value declarations; updates ``env``."""
        if top:
            self.level += 1
        mono: dict[str, Type] = {}
        rigid_vars: dict[str, dict[str, Type]] = {}
        for d in group:
            for n in _decl_names(d, self.ctors):
                if n in annots:
                    t, vm = self.annot_type(annots[n], rigid=True)
                    mono[n] = t
                    rigid_vars[n] = vm
                else:
                    mono[n] = self.fresh()
        inner: TEnv = _extend(env, mono)  # an overlay: copying env per group is quadratic
        for d in group:
            names = _decl_names(d, self.ctors)
            saved = self.scoped
            for n in names:
                if n in rigid_vars:
                    self.scoped = {**self.scoped, **rigid_vars[n]}
            try:
                self.decl(d, inner, mono)
            finally:
                self.scoped = saved
        if top:
            self.level -= 1
        for n, t in mono.items():
            if n in annots:
                self.level += 1
                ft, _ = self.annot_type(annots[n], rigid=False)
                self.level -= 1
                env[n] = self.generalize(ft)
            elif top:
                env[n] = self.generalize(t)
            else:
                env[n] = t

    # --------------------------------------------------------- variables
    def fresh(self, constraints: set[str] | None = None) -> TVar:
        self.counter += 1
        return TVar(self.counter, self.level, set(constraints or ()))

    def err(self, node: S.Node, msg: str) -> CspmTypeError:
        return CspmTypeError(msg, node.file or self.file, node.line, node.col)

    def instantiate(self, s: Scheme | Type) -> Type:
        if not isinstance(s, Scheme):
            return s
        if not s.vars:
            return s.type
        mapping: dict[int, Type] = {v.ident: self.fresh(v.constraints) for v in s.vars}
        return _subst(s.type, mapping)

    def generalize(self, t: Type) -> Scheme:
        vs: dict[int, TVar] = {}
        for v in _free_vars(t):
            if v.level > self.level:
                vs[v.ident] = v
        return Scheme(tuple(vs.values()), t)

    # -------------------------------------------------------- unification
    def unify(self, a: Type, b: Type, node: S.Node, what: str = "") -> None:
        try:
            self._unify(a, b)
        except _Mismatch as m:
            ctx = f" in {what}" if what else ""
            raise self.err(node, f"type error{ctx}: {m.msg}") from None

    def _unify(self, a: Type, b: Type) -> None:
        a = prune(a)
        b = prune(b)
        if a is b:
            return
        if a == ANY or b == ANY:
            return
        if isinstance(a, TVar):
            self._bind(a, b)
            return
        if isinstance(b, TVar):
            self._bind(b, a)
            return
        a = _norm(a)
        b = _norm(b)
        if isinstance(a, TRigid) or isinstance(b, TRigid):
            raise _Mismatch(f"expected {show(b)}, found {show(a)} (annotated type variables are rigid)")
        if isinstance(a, TCon) and isinstance(b, TCon):
            if a.name != b.name:
                raise _Mismatch(f"expected {show(b)}, found {show(a)}")
            return
        if isinstance(a, TApp) and isinstance(b, TApp) and a.con == b.con:
            self._unify(a.arg, b.arg)
            return
        if isinstance(a, TTuple) and isinstance(b, TTuple) and len(a.items) == len(b.items):
            for x, y in zip(a.items, b.items, strict=True):
                self._unify(x, y)
            return
        if isinstance(a, TMap) and isinstance(b, TMap):
            self._unify(a.key, b.key)
            self._unify(a.value, b.value)
            return
        if isinstance(a, TFunc) and isinstance(b, TFunc) and len(a.args) == len(b.args):
            for x, y in zip(a.args, b.args, strict=True):
                self._unify(x, y)
            self._unify(a.ret, b.ret)
            return
        if isinstance(a, TData) and isinstance(b, TData) and a.name == b.name:
            return
        if isinstance(a, TDotable) and isinstance(b, TDotable):
            a, b = _uncurry(a), _uncurry(b)
            fa, fb = _flat_fields(a.fields), _flat_fields(b.fields)
            if len(fa) == len(fb):
                for x, y in zip(fa, fb, strict=True):
                    self._unify(x, y)
                self._unify(a.result, b.result)
                return
            # curried: Dotable(f1 => r) is Dotable(f1.f2 => s) when r is Dotable(f2 => s)
            few, many = (a, b) if len(fa) < len(fb) else (b, a)
            ff, fm = _flat_fields(few.fields), _flat_fields(many.fields)
            if isinstance(prune(few.result), TVar):
                for x, y in zip(ff, fm, strict=False):
                    self._unify(x, y)
                self._unify(few.result, TDotable(fm[len(ff) :], many.result))
                return
        if isinstance(a, TDotSeq) and isinstance(b, TDotSeq):
            fa, fb = _flat_fields(a.items), _flat_fields(b.items)
            if len(fa) == len(fb):
                for x, y in zip(fa, fb, strict=True):
                    self._unify(x, y)
                return
            short, long_ = (fa, fb) if len(fa) < len(fb) else (fb, fa)
            if isinstance(prune(short[-1]), TVar):
                # the last component of a dotted pattern takes the rest
                for x, y in zip(short[:-1], long_, strict=False):
                    self._unify(x, y)
                self._unify(short[-1], TDotSeq(long_[len(short) - 1 :]))
                return
        raise _Mismatch(f"expected {show(b)}, found {show(a)}")

    def _bind(self, v: TVar, t: Type) -> None:
        if isinstance(t, TVar):
            t.constraints |= v.constraints
            t.level = min(t.level, v.level)
            v.ref = t
            return
        for w in _free_vars(t):
            if w is v:
                raise _Mismatch(f"infinite type {show(v)} = {show(t)}")
            w.level = min(w.level, v.level)
        for c in v.constraints:
            self._require(c, t)
        v.ref = t

    def require(self, node: S.Node, cls: str, t: Type, what: str) -> None:
        try:
            self._require(cls, t)
        except _Mismatch as m:
            raise self.err(node, f"type error in {what}: {m.msg}") from None

    def _require(self, cls: str, t: Type) -> None:
        t = prune(t)
        if isinstance(t, TVar):
            t.constraints.add(cls)
            return
        if t == ANY:
            return
        if isinstance(t, TRigid):
            have = t.constraints
            ok = cls in have or (cls in ("Eq", "Set") and bool(have & {"Eq", "Ord", "Set"}))
            if not ok:
                raise _Mismatch(
                    f"type variable {t.name} needs a '{cls} {t.name}' constraint in its annotation"
                )
            return
        if isinstance(t, TCon):
            if t.name == "Proc":
                raise _Mismatch(f"processes are not in class {cls}")
            if cls == "Ord" and t.name in ("Bool", "Event"):
                raise _Mismatch(f"{t.name} is not in class Ord")
            return
        if isinstance(t, TFunc):
            raise _Mismatch(f"functions are not in class {cls}")
        if isinstance(t, TApp):
            self._require("Eq", t.arg)
            return
        if isinstance(t, TMap):
            self._require("Eq", t.key)
            self._require(cls, t.value)
            return
        if isinstance(t, TTuple | TDotSeq):
            for i in t.items:
                self._require(cls, i)
            return
        if isinstance(t, TData | TDotable):
            if cls == "Ord":
                raise _Mismatch(f"{show(t)} is not in class Ord")
            if isinstance(t, TData):
                self._require_data_eq(t.name)
            return

    def _require_data_eq(self, name: str) -> None:
        for c, r in self.ctor_result.items():
            if isinstance(r, TData) and r.name == name:
                for f in self.ctor_fields.get(c, ()):
                    if _contains_proc(f, set()):
                        raise _Mismatch(f"datatype {name} contains processes, so it is not in class Eq")

    # ---------------------------------------------------------- patterns
    def pat(self, p: S.Pat, binds: dict[str, Type]) -> Type:
        if isinstance(p, S.PVar):
            if p.name in self.ctors:
                return self.ctor_type(p.name)
            t = self.fresh()
            binds[p.name] = t
            return t
        if isinstance(p, S.PWild):
            return self.fresh()
        if isinstance(p, S.PLit):
            return {"int": INT, "bool": BOOL, "char": CHAR}.get(p.kind, tseq(CHAR))
        if isinstance(p, S.PTuple):
            return TTuple(tuple(self.pat(i, binds) for i in p.items))
        if isinstance(p, S.PSeq):
            el = self.fresh()
            for i in p.items:
                self.unify(self.pat(i, binds), el, i, "a sequence pattern")
            return tseq(el)
        if isinstance(p, S.PConcat):
            tc = self.pat(p.left, binds)
            self.unify(tc, tseq(self.fresh()), p.left, "a concatenation pattern")
            self.unify(self.pat(p.right, binds), tc, p.right, "a concatenation pattern")
            return tc
        if isinstance(p, S.PSet):
            el = self.fresh({"Eq"})
            for i in p.items:
                self.unify(self.pat(i, binds), el, i, "a set pattern")
            return tset(el)
        if isinstance(p, S.PDouble):
            td = self.pat(p.left, binds)
            self.unify(self.pat(p.right, binds), td, p, "a double pattern")
            return td
        if isinstance(p, S.PDot):
            items: list[tuple[S.Node, Type]] = [(i, self.pat(i, binds)) for i in p.items]
            return self.dot_items(items, p, rest_var=True)[0]
        return self.fresh()

    # --------------------------------------------------------------- dots
    def ctor_type(self, name: str) -> Type:
        fields = self.ctor_fields.get(name)
        result = self.ctor_result.get(name, ANY)
        if fields is None:
            return ANY
        if not fields:
            return result
        return TDotable(fields, result)

    def dot_items(
        self, items: list[tuple[S.Node, Type]], node: S.Node, rest_var: bool = False, strict: bool = False
    ) -> tuple[Type, Type]:
        """Type of ``i1.i2...in``: (value type, final result type of the head)."""
        head = _norm(prune(items[0][1]))
        rest = [_norm(prune(t)) for _, t in items[1:]]
        if isinstance(head, TVar) and head.ident in self.extendable and len(rest) == 1 and not rest_var:
            self.unify(rest[0], self.extendable[head.ident], items[1][0], "an extension of an extendable")
            return ANY, ANY
        if (
            isinstance(head, TVar)
            and not rest_var
            and rest
            and all(isinstance(t, TCon | TData | TApp | TTuple) and t != ANY for t in rest)
        ):
            # libcspm: ``x.0`` with x unknown makes x a channel / constructor taking those fields
            result = self.fresh()
            self.unify(head, TDotable(tuple(rest), result), items[0][0], "a dotted value")
            return result, result
        if not isinstance(head, TDotable):
            if rest_var and isinstance(head, TVar) and all(isinstance(prune(t), TVar) for _, t in items):
                # a pattern x.y.z of plain variables: a dotted tuple
                return TDotSeq(tuple(t for _, t in items)), ANY
            if isinstance(head, TVar | TCon) and (isinstance(head, TVar) or head == ANY):
                return ANY, ANY
            simple = [_norm(prune(t)) for _, t in items]
            if any(isinstance(t, TVar) or t == ANY for t in simple):
                return ANY, ANY
            if any(isinstance(t, TDotable) for t in simple):
                got = self.plain_dot(simple)
                return (got, ANY) if got is not None else (ANY, ANY)
            return TDotSeq(tuple(simple)), ANY
        head = _uncurry(head)
        pending = list(_flat_fields(head.fields))
        n = len(items)
        for idx in range(1, n):
            inode, t = items[idx]
            t = _norm(prune(t))
            last = idx == n - 1
            if not pending and strict:
                raise self.err(inode, f"type error: too many fields for {show(head)}")
            if not pending and isinstance(prune(head.result), TVar):
                # the result is still unknown: a channel / constructor taking more fields
                more = self.fresh()
                self.unify(head.result, TDotable(tuple(prune(t2) for _, t2 in items[idx:]), more), inode, "a dotted value")
                return more, more
            if not pending:
                # a complete value dotted with more values: a plain dotted tuple
                return TDotSeq((head.result,) + tuple(prune(t2) for _, t2 in items[idx:])), head.result
            if isinstance(t, TDotable):
                f = pending.pop(0)
                self.unify(t.result, f, inode, "a dotted value")
                pending = list(_flat_fields(t.fields)) + pending
            elif isinstance(t, TDotSeq):
                for g in _flat_fields(t.items):
                    if not pending:
                        raise self.err(inode, "too many fields in dotted value")
                    self.unify(g, pending.pop(0), inode, "a dotted value")
            elif isinstance(t, TVar) and strict and not last:
                # libcspm: a variable inside an event takes exactly one field (no longest match)
                self.unify(t, pending.pop(0), inode, "a dotted value")
            elif isinstance(t, TVar) and not rest_var and not (strict and last):
                return ANY, head.result  # unknown width: cannot check statically
            elif isinstance(t, TVar) and last and len(pending) >= 2:
                self.unify(t, TDotSeq(tuple(pending)), inode, "a dotted value")
                pending = []
            elif t == ANY:
                return ANY, head.result
            else:
                self.unify(t, pending.pop(0), inode, "a dotted value")
        if pending:
            return TDotable(tuple(pending), head.result), head.result
        return head.result, head.result

    def plain_dot(self, types: list[Type]) -> Type | None:
        """A plain dotted value whose components include constructors / channels, each
        completed by the components after it (``true.B.0`` is ``Bool.A``); None when
        that does not work out (left to the evaluator)."""
        out: list[Type] = []
        i = 0
        try:
            while i < len(types):
                t = types[i]
                i += 1
                if not isinstance(t, TDotable):
                    out.append(t)
                    continue
                pending = list(_flat_fields(t.fields))
                while pending and i < len(types):
                    u = types[i]
                    i += 1
                    if isinstance(u, TDotable):
                        return None
                    for g in _flat_fields(u.items) if isinstance(u, TDotSeq) else (u,):
                        if not pending:
                            return None
                        self._unify(g, pending.pop(0))
                if pending:
                    return None
                out.append(t.result)
        except _Mismatch:
            return None
        return TDotSeq(tuple(out))

    def flat_dot(self, e: S.Expr) -> list[S.Expr]:
        if isinstance(e, S.Dot):
            return self.flat_dot(e.left) + self.flat_dot(e.right)
        return [e]

    # -------------------------------------------------------- expressions
    def expr(self, e: S.Expr, env: TEnv) -> Type:
        m = getattr(self, "e_" + type(e).__name__, None)
        if m is None:
            return ANY
        t: Type = m(e, env)
        return t

    def check(self, e: S.Expr, env: TEnv, want: Type, what: str) -> None:
        self.unify(self.expr(e, env), want, e, what)

    def e_Var(self, e: S.Var, env: TEnv) -> Type:
        s = env.get(e.name)
        if s is None:
            if e.name in self.ctors:
                return self.ctor_type(e.name)
            b = _builtin(self, e.name)
            return b if b is not None else ANY
        return self.instantiate(s)

    def e_Lit(self, e: S.Lit, env: TEnv) -> Type:
        return {"int": INT, "bool": BOOL, "char": CHAR}.get(e.kind, tseq(CHAR))

    def e_Paren(self, e: S.Paren, env: TEnv) -> Type:
        return self.expr(e.inner, env)

    def e_Tuple(self, e: S.Tuple, env: TEnv) -> Type:
        return TTuple(tuple(self.expr(i, env) for i in e.items))

    def e_Dot(self, e: S.Dot, env: TEnv) -> Type:
        parts = self.flat_dot(e)
        return self.dot_items([(p, self.expr(p, env)) for p in parts], e)[0]

    def e_App(self, e: S.App, env: TEnv) -> Type:
        ft = prune(self.expr(e.func, env))
        args = [self.expr(a, env) for a in e.args]
        if isinstance(e.func, S.Var) and e.func.name == "extensions" and "extensions" not in env and args:
            at = _norm(prune(args[0]))
            if at == EVENT or isinstance(at, TData):
                raise self.err(e, f"type error: extensions of a complete value of type {show(at)}")
        if ft == ANY:
            return ANY
        if isinstance(ft, TFunc):
            if len(ft.args) != len(args):
                raise self.err(e, f"function expects {len(ft.args)} argument(s) but is given {len(args)}")
            for a, (pt, node) in zip(args, zip(ft.args, e.args, strict=True), strict=True):
                self.unify(a, pt, node, "a function argument")
            return ft.ret
        if isinstance(ft, TVar):
            ret = self.fresh()
            self.unify(ft, TFunc(tuple(args), ret), e, "a function application")
            return ret
        raise self.err(e.func, f"type error: {show(ft)} is not a function")

    def e_Let(self, e: S.Let, env: TEnv) -> Type:
        return self.expr(e.body, self.decls(e.decls, env))

    def e_If(self, e: S.If, env: TEnv) -> Type:
        self.check(e.cond, env, BOOL, "an if condition")
        t = self.expr(e.then, env)
        self.check(e.orelse, env, t, "the else branch")
        return t

    def e_Lambda(self, e: S.Lambda, env: TEnv) -> Type:
        binds: dict[str, Type] = {}
        pts = tuple(self.pat(p, binds) for p in e.pats)
        return TFunc(pts, self.expr(e.body, _extend(env, binds)))

    def e_BinOp(self, e: S.BinOp, env: TEnv) -> Type:
        op = e.op
        if op in ("and", "or"):
            self.check(e.left, env, BOOL, f"'{op}'")
            self.check(e.right, env, BOOL, f"'{op}'")
            return BOOL
        if op in ("+", "-", "*", "/", "%"):
            self.check(e.left, env, INT, f"'{op}'")
            self.check(e.right, env, INT, f"'{op}'")
            return INT
        if op == "^":
            t = tseq(self.fresh())
            self.check(e.left, env, t, "'^'")
            self.check(e.right, env, t, "'^'")
            return t
        t = self.fresh({"Eq"} if op in ("==", "!=") else {"Ord"})
        self.check(e.left, env, t, f"'{op}'")
        self.check(e.right, env, t, f"'{op}'")
        return BOOL

    def e_UnOp(self, e: S.UnOp, env: TEnv) -> Type:
        if e.op == "not":
            self.check(e.operand, env, BOOL, "'not'")
            return BOOL
        if e.op == "neg":
            self.check(e.operand, env, INT, "unary minus")
            return INT
        self.check(e.operand, env, tseq(self.fresh()), "'#'")
        return INT

    def stmts(self, stmts: tuple[S.Stmt, ...], env: TEnv, kind: str) -> TEnv:
        for st in stmts:
            if isinstance(st, S.Filter):
                self.check(st.cond, env, BOOL, "a comprehension condition")
                continue
            src = prune(self.expr(st.expr, env))
            binds: dict[str, Type] = {}
            pt = self.pat(st.pat, binds)
            if isinstance(src, TApp):
                if kind == "seq" and src.con != "Seq":
                    raise self.err(st.expr, f"type error: this generator needs a sequence, found {show(src)}")
                self.unify(pt, src.arg, st, "a generator")
            elif isinstance(src, TVar):
                self.unify(
                    src,
                    tseq(pt) if kind == "seq" else tset(pt) if kind == "set" else ANY,
                    st.expr,
                    "a generator",
                )
            elif src != ANY:
                raise self.err(st.expr, f"type error: a generator needs a set or sequence, found {show(src)}")
            env = _extend(env, binds)
        return env

    def e_SetLit(self, e: S.SetLit, env: TEnv) -> Type:
        el = self.fresh()
        for i in e.items:
            self.check(i, env, el, "a set")
        return tset(el)

    def e_SeqLit(self, e: S.SeqLit, env: TEnv) -> Type:
        el = self.fresh()
        for i in e.items:
            self.check(i, env, el, "a sequence")
        return tseq(el)

    def e_SetRange(self, e: S.SetRange, env: TEnv) -> Type:
        env = self.stmts(e.stmts, env, "set")
        self.check(e.lo, env, INT, "a range")
        if e.hi is not None:
            self.check(e.hi, env, INT, "a range")
        return tset(INT)

    def e_SeqRange(self, e: S.SeqRange, env: TEnv) -> Type:
        env = self.stmts(e.stmts, env, "seq")
        self.check(e.lo, env, INT, "a range")
        if e.hi is not None:
            self.check(e.hi, env, INT, "a range")
        return tseq(INT)

    def e_SetComp(self, e: S.SetComp, env: TEnv) -> Type:
        inner = self.stmts(e.stmts, env, "set")
        el = self.fresh()
        for i in e.items:
            self.check(i, inner, el, "a set comprehension")
        return tset(el)

    def e_SeqComp(self, e: S.SeqComp, env: TEnv) -> Type:
        inner = self.stmts(e.stmts, env, "seq")
        el = self.fresh()
        for i in e.items:
            self.check(i, inner, el, "a sequence comprehension")
        return tseq(el)

    def e_EnumSet(self, e: S.EnumSet, env: TEnv) -> Type:
        inner = self.stmts(e.stmts, env, "set")
        el = self.fresh()
        for i in e.items:
            parts = self.flat_dot(i)
            typed: list[tuple[S.Node, Type]] = [(p, self.expr(p, inner)) for p in parts]
            if len(typed) == 1 and isinstance(v := prune(typed[0][1]), TVar):
                self.extendable.setdefault(v.ident, self.fresh())  # {|x|}: x yields events
                continue
            _, res = self.dot_items(typed, i)
            res = prune(res)
            if res == ANY:
                continue
            if not isinstance(res, TCon | TData | TVar):
                raise self.err(i, f"type error: {{| |}} needs channels or constructors, found {show(res)}")
            self.unify(res, el, i, "a {| |} set")
        return tset(el)

    def e_Prefix(self, e: S.Prefix, env: TEnv) -> Type:
        parts = self.flat_dot(e.event)
        items: list[tuple[S.Node, Type]] = [(p, self.expr(p, env)) for p in parts]
        restricts: list[tuple[S.Field, Type]] = []
        for f in e.fields:
            if f.kind == "!":
                assert f.expr is not None
                items.append((f, self.expr(f.expr, env)))
            else:
                assert f.pat is not None
                binds: dict[str, Type] = {}
                pt = self.pat(f.pat, binds)
                if f.restrict is not None:
                    restricts.append((f, pt))
                    rt = prune(self.expr(f.restrict, env))
                    if not isinstance(rt, TApp) or rt.con != "Set":
                        self.unify(rt, tset(self.fresh()), f.restrict, "an input restriction")
                    rt = prune(rt)
                    elem = _norm(prune(rt.arg)) if isinstance(rt, TApp) else None
                    if isinstance(elem, TDotSeq) and len(elem.items) > 1 and isinstance(prune(pt), TVar):
                        # libcspm: the input takes as many fields as its restriction's values have
                        self.unify(pt, elem, f.restrict, "an input restriction")
                    restricts[-1] = (f, TFunc((pt,), prune(rt)))
                items.append((f, pt))
                env = _extend(env, binds)
        head = _norm(prune(items[0][1]))
        if isinstance(head, TCon | TApp | TTuple | TFunc | TData) and head not in (ANY, EVENT):
            raise self.err(e.event, f"type error: a prefix needs a channel or event, found {show(head)}")
        if isinstance(head, TVar) and len(items) == 1:
            self.unify(head, EVENT, e.event, "a prefix")
        else:
            self.prefix_event(items, e)
            self.deferred.append((items, e))
        for _f, ft in restricts:
            assert isinstance(ft, TFunc)
            st = ft.ret
            if isinstance(st, TApp):
                # libcspm is lenient about restriction sets of dotted values
                with contextlib.suppress(_Mismatch):
                    self._unify(ft.args[0], st.arg)
        self.check(e.body, env, PROC, "a prefix body")
        return PROC

    def prefix_event(self, items: list[tuple[S.Node, Type]], e: S.Prefix) -> None:
        t, _ = self.dot_items(items, e, rest_var=e.fields[-1].kind != "!" if e.fields else False, strict=True)
        t = prune(t)
        if isinstance(t, TCon | TData) and t != ANY and t != EVENT:
            raise self.err(e.event, f"type error: a prefix needs an event, found {show(t)}")
        if isinstance(t, TDotable) and not any(f.kind != "!" for f in e.fields):
            need = ".".join(show(f) for f in _flat_fields(t.fields))
            raise self.err(e.event, f"type error: incomplete event: it still needs field(s) of type {need}")

    def recheck_prefixes(self) -> None:
        """Prefix events whose component types became known only later in inference."""
        for items, e in self.deferred:
            if all(not isinstance(prune(t), TVar) for _, t in items):
                self.prefix_event(items, e)

    def e_TimedPrefix(self, e: S.TimedPrefix, env: TEnv) -> Type:
        self.check(e.prefix, env, PROC, "a timed prefix")
        self.check(e.tock, env, EVENT, "tock")
        if e.timing is not None:
            self.check(e.timing, env, TFunc((EVENT,), INT), "the timing function of a timed section")
        return PROC

    def e_MapLit(self, e: S.MapLit, env: TEnv) -> Type:
        k, v = self.fresh({"Eq"}), self.fresh()
        for a, b in e.pairs:
            self.check(a, env, k, "a map key")
            self.check(b, env, v, "a map value")
        return TMap(k, v)

    def e_Guard(self, e: S.Guard, env: TEnv) -> Type:
        self.check(e.cond, env, BOOL, "a guard")
        self.check(e.proc, env, PROC, "a guarded process")
        return PROC

    def e_ProcOp(self, e: S.ProcOp, env: TEnv) -> Type:
        self.check(e.left, env, PROC, f"'{e.op}'")
        if e.op == "\\":
            self.check(e.right, env, tset(EVENT), "a hidden set")
        elif e.op == "|\\":
            self.check(e.right, env, tset(EVENT), "a projected set")
        else:
            self.check(e.right, env, PROC, f"'{e.op}'")
        return PROC

    def e_SyncOp(self, e: S.SyncOp, env: TEnv) -> Type:
        what = {"[|>": "an exception", "[+": "a synchronising external choice"}.get(e.op, "a synchronising interrupt")
        self.check(e.left, env, PROC, what)
        self.check(e.sync, env, tset(EVENT), "a synchronisation set")
        self.check(e.right, env, PROC, what)
        return PROC

    def e_GenPar(self, e: S.GenPar, env: TEnv) -> Type:
        self.check(e.left, env, PROC, "a parallel")
        self.check(e.sync, env, tset(EVENT), "a synchronisation set")
        self.check(e.right, env, PROC, "a parallel")
        return PROC

    def e_AlphaPar(self, e: S.AlphaPar, env: TEnv) -> Type:
        self.check(e.left, env, PROC, "a parallel")
        self.check(e.alpha_left, env, tset(EVENT), "an alphabet")
        self.check(e.alpha_right, env, tset(EVENT), "an alphabet")
        self.check(e.right, env, PROC, "a parallel")
        return PROC

    def _pairs(self, pairs: tuple[tuple[S.Expr, S.Expr], ...], env: TEnv, what: str) -> None:
        for a, b in pairs:
            ta = self.expr(a, env)
            tb = self.expr(b, env)
            self.unify(ta, tb, b, what)

    def e_LinkPar(self, e: S.LinkPar, env: TEnv) -> Type:
        self.check(e.left, env, PROC, "a linked parallel")
        self.check(e.right, env, PROC, "a linked parallel")
        self._pairs(e.links, self.stmts(e.stmts, env, "set"), "a link")
        return PROC

    def e_RenameE(self, e: S.RenameE, env: TEnv) -> Type:
        self.check(e.proc, env, PROC, "a renaming")
        self._pairs(e.pairs, self.stmts(e.stmts, env, "set"), "a renaming")
        return PROC

    def e_Replicated(self, e: S.Replicated, env: TEnv) -> Type:
        if e.op in ("[|", "[+") and e.param is not None:
            self.check(e.param, env, tset(EVENT), "a synchronisation set")
        inner = self.stmts(e.stmts, env, "seq" if e.op in (";", "link") else "any")
        if e.op == "||" and e.param is not None:
            self.check(e.param, inner, tset(EVENT), "an alphabet")
        if e.links:
            self._pairs(e.links, self.stmts(e.link_stmts, inner, "set"), "a link")
        self.check(e.body, inner, PROC, "a replicated operator")
        return PROC

    # ------------------------------------------------------- declarations
    def decls(self, decls: tuple[S.Decl, ...], env: TEnv) -> TEnv:
        """``let`` declarations: monomorphic, as in libcspm (unless annotated)."""
        env = ChainMap({}, env)
        annots = {n: a for a in decls if isinstance(a, S.AnnotDecl) for n in a.names}
        for group in _sccs(decls):
            values = [d for d in group if isinstance(d, S.FunDecl | S.PatDecl)]
            if values:
                self.group(values, env, annots, top=False)
        return env

    def decl(self, d: S.Decl, env: TEnv, mono: dict[str, Type]) -> None:
        if isinstance(d, S.FunDecl):
            t = mono[d.name]
            for c in d.clauses:
                binds: dict[str, Type] = {}
                groups = [tuple(self.pat(p, binds) for p in g) for g in c.groups]
                body = self.expr(c.body, _extend(env, binds))
                ct = body
                for g in reversed(groups):
                    ct = TFunc(g, ct)
                self.unify(ct, t, c, f"the definition of {d.name}")
        elif isinstance(d, S.PatDecl):
            binds = {}
            pt = self.pat(d.pat, binds)
            self.unify(self.expr(d.body, env), pt, d, "a pattern definition")
            for n, bt in binds.items():
                self.unify(bt, mono[n], d)
        elif isinstance(d, S.NameTypeDecl):
            nt = prune(self.type_expr(d.expr, env))
            if isinstance(nt, TApp) and isinstance(_norm(prune(nt.arg)), TDotable):
                raise self.err(
                    d, f"type error: nametype {d.name} has incomplete values of type {show(prune(nt.arg))}"
                )
            self.unify(nt, mono[d.name], d)
        elif isinstance(d, S.AssertDecl):
            self.check(d.left, env, PROC, "an assertion")
            if d.right is not None:
                self.check(d.right, env, PROC, "an assertion")
            if d.trace is not None:
                self.check(d.trace, env, tseq(EVENT), "a trace")

    def type_expr(self, e: S.Expr, env: TEnv) -> Type:
        """The type of a set used as a type (``A.B`` is the set of dotted pairs)."""
        if isinstance(e, S.Paren):
            return self.type_expr(e.inner, env)
        if isinstance(e, S.Dot):
            parts = self.flat_dot(e)
            els = tuple(self.elem_type(p, env) for p in parts)
            return tset(TDotSeq(els))
        if isinstance(e, S.Tuple):
            return tset(TTuple(tuple(self.elem_type(i, env) for i in e.items)))
        t = self.expr(e, env)
        self.unify(t, tset(self.fresh()), e, "a type expression")
        return t

    def elem_type(self, e: S.Expr, env: TEnv) -> Type:
        t = prune(self.type_expr(e, env))
        if isinstance(t, TApp):
            el = prune(t.arg)
            if isinstance(el, TDotable):
                raise self.err(
                    e, f"type error: incomplete field type {show(el)} (constructor without its fields)"
                )
            return el
        return ANY

    def field_types(self, e: S.Expr | None, env: TEnv) -> tuple[Type, ...]:
        if e is None:
            return ()
        parts = self.flat_dot(e) if isinstance(e, S.Dot) else [e]
        out: list[Type] = []
        for p in parts:
            el = self.elem_type(p, env)
            el = prune(el)
            if isinstance(el, TDotSeq):
                out.extend(el.items)
            else:
                out.append(el)
        return tuple(out)


# ----------------------------------------------------------- module level


def infer_module(decls: tuple[S.Decl, ...], file: str) -> None:
    """Type check a module's declarations; raises CspmTypeError."""
    inf = Infer(file)
    env: TEnv = {}
    annots = {n: a for a in decls if isinstance(a, S.AnnotDecl) for n in a.names}
    inf.data_names = {d.name for d in decls if isinstance(d, S.DataTypeDecl)}
    for d in decls:
        if isinstance(d, S.ChannelDecl):
            inf.ctors.update(d.names)
        elif isinstance(d, S.DataTypeDecl) and not d.subtype:
            inf.ctors.update(c.name for c in d.clauses)
            env[d.name] = tset(TData(d.name))
            for c in d.clauses:
                inf.ctor_result[c.name] = TData(d.name)
    for d in decls:
        if isinstance(d, S.DataTypeDecl) and d.subtype and d.clauses:
            parent = inf.ctor_result.get(d.clauses[0].name, ANY)
            env[d.name] = tset(parent)
        elif isinstance(d, S.ExternalDecl):
            for n in d.names:
                if _builtin(inf, n) is None:
                    env[n] = ANY
    # Value declarations, in dependency order; channels and datatypes join the order.
    order = _sccs(decls)
    for group in order:
        for d in group:
            if isinstance(d, S.DataTypeDecl) and not d.subtype:
                for c in d.clauses:
                    inf.ctor_fields[c.name] = inf.field_types(c.type, env)
            elif isinstance(d, S.ChannelDecl):
                ft = inf.field_types(d.type, env)
                for fty in ft:
                    inf.require(d, "Eq", fty, "a channel field")
                for n in d.names:
                    inf.ctor_fields[n] = ft
                    inf.ctor_result[n] = EVENT
        for d in group:
            if isinstance(d, S.DataTypeDecl) and d.subtype:
                parents = {show(inf.ctor_result.get(c.name, ANY)) for c in d.clauses}
                if len(parents) > 1:
                    raise inf.err(
                        d, f"type error: subtype {d.name} mixes constructors of different datatypes"
                    )
                for c in d.clauses:
                    if c.name not in inf.ctor_fields:
                        continue
                    given = inf.field_types(c.type, env)
                    have = _flat_fields(inf.ctor_fields[c.name])
                    if len(given) > len(have):
                        raise inf.err(c, f"type error: {c.name} has only {len(have)} field(s)")
                    for g, h in zip(given, have, strict=False):
                        inf.unify(g, h, c, f"subtype {d.name}")
        values = [d for d in group if isinstance(d, S.FunDecl | S.PatDecl | S.NameTypeDecl)]
        if values:
            inf.group(values, env, annots, top=True)
        for d in group:
            names = (
                d.names
                if isinstance(d, S.ChannelDecl)
                else ([c.name for c in d.clauses] if isinstance(d, S.DataTypeDecl) and not d.subtype else [])
            )
            for n in names:
                if n in annots:
                    inf.level += 1
                    at, _ = inf.annot_type(annots[n], rigid=True)
                    inf.level -= 1
                    inf.unify(inf.ctor_type(n), at, annots[n], f"the annotation of {n}")
        for d in group:
            if isinstance(d, S.AssertDecl):
                inf.decl(d, env, {})
    for d in decls:
        if isinstance(d, S.TimedSection):  # tock is an event (a channel without fields)
            inf.check(S.Var(d.line, d.col, "tock", file=d.file), env, EVENT, "a timed section's tock")
            if d.timing is not None:
                inf.check(d.timing, env, TFunc((EVENT,), INT), "the timing function of a timed section")
    inf.recheck_prefixes()
    for d in decls:
        names = (
            d.names
            if isinstance(d, S.ChannelDecl)
            else ([c.name for c in d.clauses] if isinstance(d, S.DataTypeDecl) and not d.subtype else [])
        )
        for n in names:
            for fty in inf.ctor_fields.get(n, ()):
                if isinstance(prune(fty), TVar | TRigid):
                    raise inf.err(d, f"type error: the type of a field of {n} is ambiguous (an empty set?)")


# ---------------------------------------------------------------- helpers


def _norm(t: Type) -> Type:
    if isinstance(t, TDotSeq) and len(t.items) == 1:
        return prune(t.items[0])
    if isinstance(t, TDotable) and not t.fields:
        return prune(t.result)
    return t


def _uncurry(t: TDotable) -> TDotable:
    """``Dotable(f1 => Dotable(f2 => r))`` as ``Dotable(f1.f2 => r)``."""
    r = _norm(prune(t.result))
    while isinstance(r, TDotable):
        t = TDotable(t.fields + r.fields, r.result)
        r = _norm(prune(t.result))
    return t


def _flat_fields(fs: tuple[Type, ...]) -> tuple[Type, ...]:
    out: list[Type] = []
    for f in fs:
        f = prune(f)
        if isinstance(f, TDotSeq):
            out.extend(_flat_fields(f.items))
        else:
            out.append(f)
    return tuple(out)


def _contains_proc(t: Type, seen: set[str]) -> bool:
    t = prune(t)
    if t == PROC:
        return True
    if isinstance(t, TApp):
        return _contains_proc(t.arg, seen)
    if isinstance(t, TMap):
        return _contains_proc(t.key, seen) or _contains_proc(t.value, seen)
    if isinstance(t, TTuple | TDotSeq):
        return any(_contains_proc(i, seen) for i in t.items)
    return False


def _free_vars(t: Type) -> Iterator[TVar]:
    t = prune(t)
    if isinstance(t, TVar):
        yield t
    elif isinstance(t, TApp):
        yield from _free_vars(t.arg)
    elif isinstance(t, TMap):
        yield from _free_vars(t.key)
        yield from _free_vars(t.value)
    elif isinstance(t, TTuple | TDotSeq):
        for i in t.items:
            yield from _free_vars(i)
    elif isinstance(t, TFunc):
        for a in t.args:
            yield from _free_vars(a)
        yield from _free_vars(t.ret)
    elif isinstance(t, TDotable):
        for f in t.fields:
            yield from _free_vars(f)
        yield from _free_vars(t.result)


def _subst(t: Type, m: dict[int, Type]) -> Type:
    t = prune(t)
    if isinstance(t, TVar):
        return m.get(t.ident, t)
    if isinstance(t, TApp):
        return TApp(t.con, _subst(t.arg, m))
    if isinstance(t, TMap):
        return TMap(_subst(t.key, m), _subst(t.value, m))
    if isinstance(t, TTuple):
        return TTuple(tuple(_subst(i, m) for i in t.items))
    if isinstance(t, TDotSeq):
        return TDotSeq(tuple(_subst(i, m) for i in t.items))
    if isinstance(t, TFunc):
        return TFunc(tuple(_subst(a, m) for a in t.args), _subst(t.ret, m))
    if isinstance(t, TDotable):
        return TDotable(tuple(_subst(f, m) for f in t.fields), _subst(t.result, m))
    return t


def _pat_names(p: S.Pat, ctors: set[str]) -> list[str]:
    out: list[str] = []
    if isinstance(p, S.PVar):
        if p.name not in ctors:
            out.append(p.name)
    elif isinstance(p, S.PTuple | S.PDot | S.PSeq | S.PSet):
        for i in p.items:
            out.extend(_pat_names(i, ctors))
    elif isinstance(p, S.PConcat | S.PDouble):
        out.extend(_pat_names(p.left, ctors))
        out.extend(_pat_names(p.right, ctors))
    return out


def _decl_names(d: S.Decl, ctors: set[str]) -> list[str]:
    if isinstance(d, S.FunDecl | S.NameTypeDecl):
        return [d.name]
    if isinstance(d, S.PatDecl):
        return _pat_names(d.pat, ctors)
    return []


def _defined(d: S.Decl) -> list[str]:
    if isinstance(d, S.FunDecl | S.NameTypeDecl):
        return [d.name]
    if isinstance(d, S.PatDecl):
        return _pat_names(d.pat, set())
    if isinstance(d, S.ChannelDecl):
        return list(d.names)
    if isinstance(d, S.DataTypeDecl):
        return [d.name] + ([] if d.subtype else [c.name for c in d.clauses])
    return []


def _uses(node: object, out: set[str]) -> None:
    if isinstance(node, S.Var | S.PVar):
        out.add(node.name)
    elif isinstance(node, tuple):
        for x in node:
            _uses(x, out)
    elif isinstance(node, S.Node):
        for k, v in vars(node).items():
            if k not in ("line", "col", "end_line", "end_col"):
                _uses(v, out)


def _sccs(decls: tuple[S.Decl, ...]) -> list[list[S.Decl]]:
    """Strongly connected components of the declarations, dependencies first (Tarjan)."""
    owner: dict[str, int] = {}
    for i, d in enumerate(decls):
        for n in _defined(d):
            owner.setdefault(n, i)
    deps: list[list[int]] = []
    for d in decls:
        used: set[str] = set()
        _uses(d, used)
        deps.append(sorted({owner[n] for n in used if n in owner}))
    index: dict[int, int] = {}
    low: dict[int, int] = {}
    on: set[int] = set()
    stack: list[int] = []
    out: list[list[S.Decl]] = []
    counter = 0
    for root in range(len(decls)):
        if root in index:
            continue
        work: list[tuple[int, int]] = [(root, 0)]
        while work:
            v, i = work.pop()
            if i == 0:
                index[v] = low[v] = counter
                counter += 1
                stack.append(v)
                on.add(v)
            recurse = False
            while i < len(deps[v]):
                w = deps[v][i]
                i += 1
                if w not in index:
                    work.append((v, i))
                    work.append((w, 0))
                    recurse = True
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            if recurse:
                continue
            if low[v] == index[v]:
                comp: list[int] = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                out.append([decls[k] for k in sorted(comp)])
            if work:
                u = work[-1][0]
                low[u] = min(low[u], low[v])
    return out


_MAP_FUNCTIONS: dict[str, Callable[[Type, Type], Type]] = {
    "emptyMap": lambda k, v: TMap(k, v),
    "mapFromList": lambda k, v: TFunc((tseq(TTuple((k, v))),), TMap(k, v)),
    "mapLookup": lambda k, v: TFunc((TMap(k, v), k), v),
    "mapMember": lambda k, v: TFunc((TMap(k, v), k), BOOL),
    "mapToList": lambda k, v: TFunc((TMap(k, v),), tseq(TTuple((k, v)))),
    "mapUpdate": lambda k, v: TFunc((TMap(k, v), k, v), TMap(k, v)),
    "mapUpdateMultiple": lambda k, v: TFunc((TMap(k, v), tseq(TTuple((k, v)))), TMap(k, v)),
    "mapDelete": lambda k, v: TFunc((TMap(k, v), k), TMap(k, v)),
    "Map": lambda k, v: TFunc((tset(k), tset(v)), tset(TMap(k, v))),
}


def _builtin(inf: Infer, name: str) -> Type | None:
    f = inf.fresh
    if name in ("union", "inter", "diff"):
        a = f()
        return TFunc((tset(a), tset(a)), tset(a))
    if name in ("Union", "Inter"):
        a = f()
        return TFunc((tset(tset(a)),), tset(a))
    if name == "member":
        a = f({"Eq"})
        return TFunc((a, tset(a)), BOOL)
    if name == "card":
        return TFunc((tset(f({"Eq"})),), INT)
    if name == "empty":
        return TFunc((tset(f()),), BOOL)
    if name == "seq":
        a = f({"Eq"})
        return TFunc((tset(a),), tseq(a))
    if name == "set":
        a = f()
        return TFunc((tseq(a),), tset(a))
    if name == "Set":
        a = f()
        return TFunc((tset(a),), tset(tset(a)))
    if name == "Seq":
        a = f()
        return TFunc((tset(a),), tset(tseq(a)))
    if name == "head":
        a = f()
        return TFunc((tseq(a),), a)
    if name == "tail":
        a = f()
        return TFunc((tseq(a),), tseq(a))
    if name == "concat":
        a = f()
        return TFunc((tseq(tseq(a)),), tseq(a))
    if name == "elem":
        a = f({"Eq"})
        return TFunc((a, tseq(a)), BOOL)
    if name == "null":
        return TFunc((tseq(f()),), BOOL)
    if name == "length":
        return TFunc((tseq(f()),), INT)
    if name == "error":
        return TFunc((tseq(CHAR),), f())
    if name == "show":
        return TFunc((f(),), tseq(CHAR))
    if name in ("CHAOS", "RUN"):
        return TFunc((tset(EVENT),), PROC)
    if name in ("STOP", "SKIP", "DIV"):
        return PROC
    if name in _MAP_FUNCTIONS:
        k, v = f({"Eq"}), f({"Eq"} if name == "Map" else None)
        return _MAP_FUNCTIONS[name](k, v)
    if name in ("timed STOP", "timed SKIP"):
        return TFunc((EVENT,), PROC)
    if name == "timed WAIT":
        return TFunc((EVENT,), TFunc((INT,), PROC))
    if name == "timed timed_priority":
        return TFunc((EVENT,), TFunc((PROC,), PROC))
    if name == "BUFFER":
        return TFunc((INT, tset(TTuple((EVENT, EVENT)))), PROC)
    if name == "WEAK_BUFFER":
        return TFunc((INT, EVENT, tset(TTuple((EVENT, EVENT)))), PROC)
    if name == "SIGNAL_BUFFER":
        return TFunc((INT, EVENT, EVENT, tset(TTuple((EVENT, EVENT)))), PROC)
    if name in ("true", "false"):
        return BOOL
    if name == "Bool":
        return tset(BOOL)
    if name == "Int":
        return tset(INT)
    if name == "Char":
        return tset(CHAR)
    if name == "Proc":
        return tset(PROC)
    if name == "Events":
        return tset(EVENT)
    if name in (
        "normal",
        "sbisim",
        "diamond",
        "explicate",
        "wbisim",
        "dbisim",
        "tau_loop_factor",
        "model_compress",
        "lazyenumerate",
        "lazynorm",
        "loop",
        "normalise",
        "normalize",
        "chase",
        "chase_nocache",
        "deter",
    ):
        return TFunc((PROC,), PROC)
    if name in ("prioritise", "prioritise_nocache"):
        return TFunc((PROC, tseq(tset(EVENT))), PROC)
    if name == "prioritisepo":
        return TFunc((PROC, tset(EVENT), tset(TTuple((EVENT, EVENT))), tset(EVENT)), PROC)
    if name in ("trace_watchdog", "failure_watchdog"):
        return TFunc((PROC, tset(EVENT), EVENT), PROC)
    if name == "transpose":
        a, b = f(), f()
        return TFunc((tset(TTuple((a, b))),), tset(TTuple((b, a))))
    if name in ("relational_image", "relational_inverse_image"):
        a, b = f({"Eq"}), f({"Eq"})
        if name == "relational_image":
            return TFunc((tset(TTuple((a, b))),), TFunc((a,), tset(b)))
        return TFunc((tset(TTuple((a, b))),), TFunc((b,), tset(a)))
    if name == "mtransclose":
        a = f({"Eq"})
        return TFunc((tset(TTuple((a, a))), tset(a)), tset(TTuple((a, a))))
    if name in ("extensions", "productions"):
        return TFunc((f(),), tset(f()))
    return None
