"""CSPm modules: flatten ``module … exports … endmodule`` and ``instance`` into plain declarations.

Every name a module defines becomes a top-level name qualified by the module's
path, as the script spells it from outside: the exported ``f`` of ``X`` is
``X::f``, the exported ``z`` of ``Y`` nested in ``X`` is ``X::Y::z``. Private
names get a ``%`` segment that no identifier can spell (``X::%g``), so they
stay unreachable from outside the module. Inside a module, references to its
own names (and to ``Y::z`` of a nested ``Y``) are rewritten to the qualified
names, respecting local bindings (function arguments, ``let``, lambdas,
comprehension generators, prefix inputs, replicated operators).

A parameterised module ``M(X)`` is a template: ``instance I = M(e)`` makes a
module ``I`` whose private part binds ``X = e`` (``e`` read where the instance
is written) followed by ``M``'s declarations; each instance has its own
channels and datatypes. Pure: declarations in, declarations out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeVar

from processors.csp.language import syntax as S
from processors.csp.language.errors import CspmTypeError

Names = dict[str, str]  # name as written -> qualified top-level name
MAX_NESTING = 100
N = TypeVar("N", bound=S.Node)


@dataclass(frozen=True)
class _Template:
    decl: S.ModuleDecl
    names: Names  # the mapping in force where the module was defined
    ctors: frozenset[str]
    templates: dict[str, _Template]


def has_modules(decls: Iterable[S.Decl]) -> bool:
    return any(isinstance(d, S.ModuleDecl | S.InstanceDecl) for d in decls)


def flatten_modules(decls: tuple[S.Decl, ...], file: str) -> tuple[S.Decl, ...]:
    """The declarations with every module and instance replaced by qualified top-level ones."""
    if not has_modules(decls):
        return decls
    out: list[S.Decl] = []
    fl = _Flattener(file, out)
    top = [(d, False) for d in decls]
    fl.top_names = frozenset(
        n
        for d in decls
        if not isinstance(d, S.ModuleDecl | S.InstanceDecl)
        for n in fl.defined(d, {}) + fl.ctor_names(d)
    )
    fl.check_recursion(decls)
    fl.block(top, "", {}, frozenset(), {})
    return tuple(out)


class _Flattener:
    def __init__(self, file: str, out: list[S.Decl]) -> None:
        self.file = file
        self.out = out
        self.depth = 0
        self.top_names: frozenset[str] = frozenset()
        self.raw: set[int] = set()
        self.keep: list[
            S.Decl
        ] = []  # keeps the ids in ``raw`` alive  # instance argument bindings: already renamed where written

    def err(self, node: S.Node, msg: str) -> CspmTypeError:
        return CspmTypeError(msg, node.file or self.file, node.line, node.col)

    # ------------------------------------------------------------ names
    def exports(self, mod: S.ModuleDecl, templates: dict[str, _Template]) -> list[str]:
        return [n for d in mod.exported for n in self.defined(d, templates)]

    def defined(self, d: S.Decl, templates: dict[str, _Template]) -> list[str]:
        """The names (as written inside the enclosing block) that ``d`` defines."""
        if isinstance(d, S.FunDecl | S.NameTypeDecl):
            return [d.name]
        if isinstance(d, S.PatDecl):
            return _pat_names(d.pat, frozenset())
        if isinstance(d, S.ChannelDecl | S.ExternalDecl):
            return list(d.names)
        if isinstance(d, S.DataTypeDecl):
            return [d.name] + ([] if d.subtype else [c.name for c in d.clauses])
        if isinstance(d, S.ModuleDecl):
            if d.params is not None:
                return []
            return [f"{d.name}::{n}" for n in self.exports(d, templates)]
        if isinstance(d, S.InstanceDecl):
            t = templates.get(d.module)
            if t is None:
                return []
            return [f"{d.name}::{n}" for n in self.exports(t.decl, t.templates)]
        return []

    @staticmethod
    def ctor_names(d: S.Decl) -> list[str]:
        if isinstance(d, S.ChannelDecl):
            return list(d.names)
        if isinstance(d, S.DataTypeDecl) and not d.subtype:
            return [c.name for c in d.clauses]
        return []

    # ------------------------------------------------------------ blocks
    def block(
        self,
        decls: list[tuple[S.Decl, bool]],
        prefix: str,
        outer: Names,
        outer_ctors: frozenset[str],
        outer_templates: dict[str, _Template],
    ) -> dict[str, _Template]:
        """Emit the declarations of one block; ``(decl, private)`` pairs; ``prefix`` e.g. ``"X::"``.

        Returns the modules this block exports (as written outside it: ``N``, ``Y::N``), so that
        ``instance J = I::N`` can instantiate a module defined inside the instance ``I``.
        """
        self.depth += 1
        if self.depth > MAX_NESTING:
            node = decls[0][0] if decls else S.Var(0, 0, "")
            raise self.err(node, "modules nested too deeply (recursive instances?)")
        templates = dict(outer_templates)
        for d, _ in decls:
            if isinstance(d, S.ModuleDecl):
                templates[d.name] = _Template(d, {}, frozenset(), {})  # placeholder for defined()
        self.check_clashes(decls, templates)
        own: Names = {}
        ctors = set(outer_ctors)
        for d, private in decls:
            seg = "%" if private else ""
            for n in self.defined(d, templates):
                own[n] = n if not prefix and not private else f"{prefix}{seg}{n}"
            for c in self.ctor_names(d):
                ctors.add(c)
        for d, _ in decls:  # nested modules' constructors, as written here
            if isinstance(d, S.ModuleDecl) and d.params is None:
                ctors.update(f"{d.name}::{c}" for c in self._exported_ctors(d, templates))
        names = {**outer, **{k: v for k, v in own.items() if k != v}}
        for k in own:
            if own[k] == k:
                names.pop(k, None)
        fctors = frozenset(ctors)
        for d, _ in decls:
            if isinstance(d, S.ModuleDecl):
                templates[d.name] = _Template(d, names, fctors, templates)
        exported: dict[str, _Template] = {}
        for d, private in decls:
            seg = "%" if private else ""
            sub: dict[str, _Template] = {}
            if isinstance(d, S.ModuleDecl):
                if not private:
                    exported[d.name] = templates[d.name]
                if d.params is not None:
                    continue
                inner = [(x, True) for x in d.private] + [(x, False) for x in d.exported]
                sub = self.block(inner, f"{prefix}{seg}{d.name}::", names, fctors, templates)
            elif isinstance(d, S.InstanceDecl):
                sub = self.instance(d, f"{prefix}{seg}{d.name}::", names, fctors, templates)
            elif id(d) in self.raw and isinstance(d, S.FunDecl):
                self.out.append(dataclasses.replace(d, name=names.get(d.name, d.name)))
            elif isinstance(d, S.ExternalDecl):
                self.out.append(d)
                for n in d.names:  # M::normal names the builtin
                    if names.get(n, n) != n:
                        clause = S.Clause(d.line, d.col, (), S.Var(d.line, d.col, n, file=d.file))
                        self.out.append(S.FunDecl(d.line, d.col, names[n], (clause,), file=d.file))
            elif isinstance(d, S.IncludeDecl):
                self.out.append(d)
            else:
                self.out.append(_Renamer(names, fctors).decl(d))
            if sub:
                name = d.name if isinstance(d, S.ModuleDecl | S.InstanceDecl) else ""
                for k, t in sub.items():
                    templates[f"{name}::{k}"] = t
                    if not private:
                        exported[f"{name}::{k}"] = t
        self.depth -= 1
        return exported

    def check_recursion(self, decls: tuple[S.Decl, ...]) -> None:
        """Refuse modules that instantiate themselves, directly or through other modules' instances."""
        mods = {d.name: d for d in decls if isinstance(d, S.ModuleDecl)}
        inst_of = {d.name: d.module for d in decls if isinstance(d, S.InstanceDecl)}
        deps: dict[str, set[str]] = {}
        for name, m in mods.items():
            got: set[str] = set()
            for node in _walk(m):
                if isinstance(node, S.InstanceDecl):
                    got.add(node.module.split("::")[0])
                elif isinstance(node, S.Var) and "::" in node.name:
                    head = node.name.split("::")[0]
                    if head in inst_of:
                        got.add(inst_of[head].split("::")[0])
            deps[name] = {g for g in got if g in mods}
        state: dict[str, int] = {}

        def visit(n: str) -> None:
            state[n] = 1
            for k in sorted(deps[n]):
                if state.get(k) == 1:
                    raise self.err(mods[n], f"module {n} instantiates itself (through {k})")
                if k not in state:
                    visit(k)
            state[n] = 2

        for n in mods:
            if n not in state:
                visit(n)

    def check_clashes(self, decls: list[tuple[S.Decl, bool]], templates: dict[str, _Template]) -> None:
        """A module or instance name may not be defined twice in a block, nor name anything else there."""
        seen: dict[str, str] = {}
        for d, _ in decls:
            if isinstance(d, S.ModuleDecl | S.InstanceDecl):
                kind = "module" if isinstance(d, S.ModuleDecl) else "instance"
                if d.name in seen:
                    raise self.err(d, f"{kind} {d.name} is already defined as a {seen[d.name]}")
                seen[d.name] = kind
        for d, _ in decls:
            if isinstance(d, S.ModuleDecl | S.InstanceDecl):
                continue
            plain = [n for n in self.defined(d, templates) if "::" not in n]
            plain += [c.name for c in d.clauses] if isinstance(d, S.DataTypeDecl) else []
            for n in plain:
                if n in seen:
                    raise self.err(d, f"{n} is both a {seen[n]} and a definition")
        for n in seen:
            if n in self.top_names:
                raise self.err(decls[0][0], f"{n} is both a {seen[n]} and a top-level definition")

    def _exported_ctors(self, mod: S.ModuleDecl, templates: dict[str, _Template]) -> list[str]:
        out: list[str] = []
        for d in mod.exported:
            out.extend(self.ctor_names(d))
            if isinstance(d, S.ModuleDecl) and d.params is None:
                out.extend(f"{d.name}::{c}" for c in self._exported_ctors(d, templates))
        return out

    def instance(
        self,
        d: S.InstanceDecl,
        prefix: str,
        names: Names,
        ctors: frozenset[str],
        templates: dict[str, _Template],
    ) -> dict[str, _Template]:
        t = templates.get(d.module)
        if t is None:
            raise self.err(d, f"instance {d.name}: {d.module} is not a module")
        params = t.decl.params or ()
        args = d.args or ()
        if len(args) != len(params):
            raise self.err(
                d, f"instance {d.name}: module {d.module} takes {len(params)} argument(s), given {len(args)}"
            )
        rn = _Renamer(names, ctors)
        binds: list[tuple[S.Decl, bool]] = []
        for p, a in zip(params, args, strict=True):
            body = rn.expr(a)
            clause = S.Clause(a.line, a.col, (), body)
            bind = S.FunDecl(a.line, a.col, p, (clause,), file=a.file)
            self.raw.add(id(bind))
            self.keep.append(bind)
            binds.append((bind, True))
        inner = binds + [(x, True) for x in t.decl.private] + [(x, False) for x in t.decl.exported]
        return self.block(inner, prefix, t.names, t.ctors, t.templates)


def _pat_names(p: S.Pat, ctors: frozenset[str]) -> list[str]:
    out: list[str] = []

    def go(q: S.Pat) -> None:
        if isinstance(q, S.PVar):
            if q.name not in ctors:
                out.append(q.name)
        elif isinstance(q, S.PTuple | S.PDot | S.PSeq | S.PSet):
            for i in q.items:
                go(i)
        elif isinstance(q, S.PConcat | S.PDouble):
            go(q.left)
            go(q.right)

    go(p)
    return out


class _Renamer:
    """Rewrite names per ``names`` in declarations and expressions, respecting local bindings."""

    def __init__(self, names: Names, ctors: frozenset[str]) -> None:
        self.names = names
        self.ctors = ctors

    def without(self, bound: Iterable[str]) -> _Renamer:
        drop = [b for b in bound if b in self.names]
        if not drop:
            return self
        return _Renamer({k: v for k, v in self.names.items() if k not in drop}, self.ctors)

    def name(self, n: str) -> str:
        return self.names.get(n, n)

    def bound(self, p: S.Pat) -> list[str]:
        return _pat_names(p, self.ctors)

    # -------------------------------------------------------- patterns
    def pat(self, p: S.Pat) -> S.Pat:
        if isinstance(p, S.PVar):
            if p.name in self.ctors and p.name in self.names:
                return dataclasses.replace(p, name=self.names[p.name])
            return p
        return self.generic(p)

    # ----------------------------------------------------- declarations
    def decl(self, d: S.Decl) -> S.Decl:
        if isinstance(d, S.FunDecl):
            return dataclasses.replace(
                d, name=self.name(d.name), clauses=tuple(self.clause(c) for c in d.clauses)
            )
        if isinstance(d, S.PatDecl):
            return dataclasses.replace(d, pat=self.def_pat(d.pat), body=self.expr(d.body))
        if isinstance(d, S.ChannelDecl):
            return dataclasses.replace(d, names=tuple(self.name(n) for n in d.names), type=self.opt(d.type))
        if isinstance(d, S.DataTypeDecl):
            clauses = tuple(
                dataclasses.replace(c, name=self.name(c.name), type=self.opt(c.type)) for c in d.clauses
            )
            return dataclasses.replace(d, name=self.name(d.name), clauses=clauses)
        if isinstance(d, S.NameTypeDecl):
            return dataclasses.replace(d, name=self.name(d.name), expr=self.expr(d.expr))
        if isinstance(d, S.AnnotDecl):
            ty = self.value(d.type)
            assert isinstance(ty, S.TyExpr)
            return dataclasses.replace(d, names=tuple(self.name(n) for n in d.names), type=ty)
        if isinstance(d, S.AssertDecl):
            return dataclasses.replace(
                d, left=self.expr(d.left), right=self.opt(d.right), trace=self.opt(d.trace)
            )
        return d

    def def_pat(self, p: S.Pat) -> S.Pat:
        """A pattern on the left of a top-level definition: its variables are defined names."""
        if isinstance(p, S.PVar):
            return dataclasses.replace(p, name=self.name(p.name))
        return self.generic(p, pat_fn=self.def_pat)

    def clause(self, c: S.Clause) -> S.Clause:
        inner = self.without(n for g in c.groups for p in g for n in self.bound(p))
        groups = tuple(tuple(self.pat(p) for p in g) for g in c.groups)
        return dataclasses.replace(c, groups=groups, body=inner.expr(c.body))

    # ------------------------------------------------------- expressions
    def opt(self, e: S.Expr | None) -> S.Expr | None:
        return None if e is None else self.expr(e)

    def stmts(self, stmts: tuple[S.Node, ...]) -> tuple[tuple[S.Node, ...], _Renamer]:
        rn = self
        out: list[S.Node] = []
        for st in stmts:
            if isinstance(st, S.Gen):
                out.append(dataclasses.replace(st, pat=rn.pat(st.pat), expr=rn.expr(st.expr)))
                rn = rn.without(rn.bound(st.pat))
            else:
                out.append(rn.generic(st))
        return tuple(out), rn

    def expr(self, e: S.Expr) -> S.Expr:
        if not self.names:
            return e
        if isinstance(e, S.Var):
            return dataclasses.replace(e, name=self.names[e.name]) if e.name in self.names else e
        if isinstance(e, S.Lambda):
            inner = self.without(n for p in e.pats for n in self.bound(p))
            return dataclasses.replace(e, pats=tuple(self.pat(p) for p in e.pats), body=inner.expr(e.body))
        if isinstance(e, S.Let):
            local = [n for d in e.decls for n in _local_names(d, self.ctors)]
            inner = self.without(local)
            return dataclasses.replace(
                e, decls=tuple(inner.decl(d) for d in e.decls), body=inner.expr(e.body)
            )
        if isinstance(e, S.Prefix):
            rn = self
            fields: list[S.Field] = []
            for f in e.fields:
                nf = dataclasses.replace(
                    f,
                    expr=rn.opt(f.expr),
                    restrict=rn.opt(f.restrict),
                    pat=rn.pat(f.pat) if f.pat is not None else None,
                )
                fields.append(nf)
                if f.pat is not None:
                    rn = rn.without(rn.bound(f.pat))
            return dataclasses.replace(
                e, event=self.expr(e.event), fields=tuple(fields), body=rn.expr(e.body)
            )
        stmts = getattr(e, "stmts", None)
        if isinstance(stmts, tuple) and stmts:
            new_stmts, rn = self.stmts(stmts)
            changes: dict[str, object] = {"stmts": new_stmts}
            for fld in dataclasses.fields(e):
                if fld.name in ("stmts", "line", "col", "end_line", "end_col", "file"):
                    continue
                v = getattr(e, fld.name)
                if isinstance(e, S.Replicated) and fld.name in ("links", "link_stmts"):
                    continue
                changes[fld.name] = rn.value(v)
            if isinstance(e, S.Replicated) and e.link_stmts:
                ls, rn2 = rn.stmts(e.link_stmts)
                changes["link_stmts"] = ls
                changes["links"] = rn2.value(e.links)
            elif isinstance(e, S.Replicated):
                changes["links"] = rn.value(e.links)
            return dataclasses.replace(e, **changes)  # type: ignore[arg-type]
        return self.generic(e)

    def value(self, v: object) -> object:
        if isinstance(v, S.TyName):
            return dataclasses.replace(v, name=self.names[v.name]) if v.name in self.names else v
        if isinstance(v, S.Pat):
            return self.pat(v)
        if isinstance(v, S.Expr):
            return self.expr(v)
        if isinstance(v, S.Decl):
            return self.decl(v)
        if isinstance(v, S.Node):
            return self.generic(v)
        if isinstance(v, tuple):
            return tuple(self.value(x) for x in v)
        return v

    def generic(self, n: N, pat_fn: object = None) -> N:
        changes: dict[str, object] = {}
        for f in dataclasses.fields(n):
            if f.name in ("line", "col", "end_line", "end_col", "file"):
                continue
            v = getattr(n, f.name)
            if pat_fn is not None and isinstance(v, S.Pat | tuple):
                nv = _map_pats(v, pat_fn)
            else:
                nv = self.value(v)
            if nv is not v:
                changes[f.name] = nv
        return dataclasses.replace(n, **changes) if changes else n  # type: ignore[arg-type]


def _map_pats(v: object, fn: object) -> object:
    if isinstance(v, S.Pat):
        return fn(v)  # type: ignore[operator]
    if isinstance(v, tuple):
        return tuple(_map_pats(x, fn) for x in v)
    return v


def _local_names(d: S.Decl, ctors: frozenset[str]) -> list[str]:
    if isinstance(d, S.FunDecl):
        return [d.name]
    if isinstance(d, S.PatDecl):
        return _pat_names(d.pat, ctors)
    return []


def _walk(root: S.Node) -> Iterable[S.Node]:
    todo: list[object] = [root]
    while todo:
        x = todo.pop()
        if isinstance(x, S.Node):
            yield x
            todo.extend(getattr(x, f.name) for f in dataclasses.fields(x))
        elif isinstance(x, tuple):
            todo.extend(x)
