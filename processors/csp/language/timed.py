"""``Timed (f) { ... }`` sections: FDR's tock-CSP translation, as libcspm desugars it.

Pure syntax-to-syntax. Inside a timed section (``tock`` is the script's channel
``tock``; ``f`` maps an event to the number of tocks it takes, 1 by default):

* a prefix may let time pass (``tock``) before its event, and its event is
  followed by ``f(e)`` tocks (:class:`~syntax.TimedPrefix`);
* ``STOP`` / ``SKIP`` are ``TSTOP`` / ``TSKIP`` (they let time pass), ``WAIT(n)`` is
  ``n`` tocks then ``TSKIP``, ``timed_priority(P)`` gives τ and ✓ priority over ``tock``;
* ``[]`` is ``[+ {tock} +]`` and ``/\\`` is ``/+ {tock} +\\`` (time passing does not
  resolve them); every parallel synchronises on ``tock`` (``|||`` is ``[| {tock} |]``);
* a false guard is ``TSTOP``; an empty replicated choice / parallel is ``TSTOP`` and
  an empty replicated ``;`` is ``TSKIP``; linked parallel is rejected.

The names a timed section defines are top-level names like any other.
"""

from __future__ import annotations

import dataclasses

from processors.csp.language import syntax as S

# builtins of the translation; their names cannot be written in a script
TSTOP = "timed STOP"
TSKIP = "timed SKIP"
WAIT = "timed WAIT"
PRIORITY = "timed timed_priority"
_RENAMED = {"STOP": TSTOP, "TSTOP": TSTOP, "SKIP": TSKIP, "TSKIP": TSKIP, "WAIT": WAIT, "timed_priority": PRIORITY}


def expand(decls: tuple[S.Decl, ...]) -> tuple[S.Decl, ...]:
    """``decls`` with every :class:`~syntax.TimedSection` (also those in ``let``)
    replaced by its translated declarations, after an empty ``TimedSection`` that
    stands for the section's requirements (a channel ``tock`` without fields, and
    the timing function's type)."""
    out: list[S.Decl] = []
    for d in decls:
        if isinstance(d, S.TimedSection) and d.decls:
            tr = _Translate(d.timing, d)
            out.append(dataclasses.replace(d, decls=()))
            out.extend(tr.decl(x) for x in expand(d.decls))
        else:
            got = _Lets().node(d)
            assert isinstance(got, S.Decl)
            out.append(got)
    return tuple(out)


class _Lets:
    """Expands the timed sections of ``let`` declarations, changing nothing else."""

    def node(self, n: S.Node) -> S.Node:
        if isinstance(n, S.Let) and any(isinstance(d, S.TimedSection) for d in n.decls):
            body = self.node(n.body)
            assert isinstance(body, S.Expr)
            return dataclasses.replace(n, decls=expand(n.decls), body=body)
        changes: dict[str, object] = {}
        for f in dataclasses.fields(n):
            v = getattr(n, f.name)
            nv = self.value(v)
            if nv is not v:
                changes[f.name] = nv
        return dataclasses.replace(n, **changes) if changes else n  # type: ignore[arg-type]

    def value(self, v: object) -> object:
        if isinstance(v, S.Pat | S.TyExpr):
            return v
        if isinstance(v, S.Node):
            return self.node(v)
        if isinstance(v, tuple):
            items = tuple(self.value(x) for x in v)
            return v if all(a is b for a, b in zip(items, v, strict=True)) else items
        return v


class _Translate:
    def __init__(self, timing: S.Expr | None, at: S.Node) -> None:
        self.timing = timing
        self.at = at

    def pos(self, n: S.Node) -> dict[str, object]:
        return {"end_line": n.end_line, "end_col": n.end_col, "file": n.file}

    def tock(self, n: S.Node) -> S.Expr:
        return S.Var(n.line, n.col, "tock", file=n.file)

    def tock_set(self, n: S.Node) -> S.Expr:
        return S.SetLit(n.line, n.col, (self.tock(n),), file=n.file)

    def with_tock(self, e: S.Expr) -> S.Expr:
        return S.App(e.line, e.col, S.Var(e.line, e.col, "union", file=e.file), (e, self.tock_set(e)), file=e.file)

    def builtin(self, name: str, n: S.Node) -> S.Expr:
        return S.App(n.line, n.col, S.Var(n.line, n.col, name, file=n.file), (self.tock(n),), file=n.file)

    def decl(self, d: S.Decl) -> S.Decl:
        if isinstance(d, S.FunDecl | S.PatDecl | S.AssertDecl):
            got = self.node(d)
            assert isinstance(got, S.Decl)
            return got
        return d

    def node(self, n: S.Node) -> S.Node:  # noqa: C901 - one case per construct
        if isinstance(n, S.Var) and n.name in _RENAMED:
            return self.builtin(_RENAMED[n.name], n)
        if isinstance(n, S.Prefix):
            inner = self.generic(n)
            assert isinstance(inner, S.Expr)
            return S.TimedPrefix(n.line, n.col, inner, self.timing, self.tock(n), **self.pos(n))  # type: ignore[arg-type]
        if isinstance(n, S.ProcOp) and n.op in ("[]", "/\\", "|||"):
            left, right = self.expr(n.left), self.expr(n.right)
            if n.op == "|||":
                return S.GenPar(n.line, n.col, left, self.tock_set(n), right, **self.pos(n))  # type: ignore[arg-type]
            op = "[+" if n.op == "[]" else "/+"
            return S.SyncOp(n.line, n.col, op, left, self.tock_set(n), right, **self.pos(n))  # type: ignore[arg-type]
        if isinstance(n, S.GenPar):
            return dataclasses.replace(
                n, left=self.expr(n.left), sync=self.with_tock(self.expr(n.sync)), right=self.expr(n.right)
            )
        if isinstance(n, S.AlphaPar):
            return dataclasses.replace(
                n,
                left=self.expr(n.left),
                alpha_left=self.with_tock(self.expr(n.alpha_left)),
                alpha_right=self.with_tock(self.expr(n.alpha_right)),
                right=self.expr(n.right),
            )
        if isinstance(n, S.SyncOp) and n.op in ("[+", "/+"):
            return dataclasses.replace(
                n, left=self.expr(n.left), sync=self.with_tock(self.expr(n.sync)), right=self.expr(n.right)
            )
        if isinstance(n, S.Guard):
            return S.If(n.line, n.col, self.expr(n.cond), self.expr(n.proc), self.builtin(TSTOP, n), **self.pos(n))  # type: ignore[arg-type]
        if isinstance(n, S.LinkPar) or (isinstance(n, S.Replicated) and n.op == "link"):
            return S.Unsupported(n.line, n.col, "linked parallel in a timed section", (), **self.pos(n))  # type: ignore[arg-type]
        if isinstance(n, S.Replicated):
            r = self.generic(n)
            assert isinstance(r, S.Replicated)
            if r.op == "|~|":
                return r
            if r.op == ";":
                return dataclasses.replace(r, empty=self.builtin(TSKIP, n))
            op, param = r.op, r.param
            if op == "[]":
                op, param = "[+", self.tock_set(n)
            elif op == "|||":
                op, param = "[|", self.tock_set(n)
            elif param is not None:
                param = self.with_tock(param)
            return dataclasses.replace(r, op=op, param=param, empty=self.builtin(TSTOP, n))
        return self.generic(n)

    def expr(self, e: S.Expr) -> S.Expr:
        got = self.node(e)
        assert isinstance(got, S.Expr)
        return got

    def generic(self, n: S.Node) -> S.Node:
        changes: dict[str, object] = {}
        for f in dataclasses.fields(n):
            v = getattr(n, f.name)
            nv = self.value(v)
            if nv is not v:
                changes[f.name] = nv
        return dataclasses.replace(n, **changes) if changes else n  # type: ignore[arg-type]

    def value(self, v: object) -> object:
        if isinstance(v, S.Pat | S.TyExpr):
            return v
        if isinstance(v, S.Node):
            return self.node(v)
        if isinstance(v, tuple):
            items = tuple(self.value(x) for x in v)
            return v if all(a is b for a, b in zip(items, v, strict=True)) else items
        return v
