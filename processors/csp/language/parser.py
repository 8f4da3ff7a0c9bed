"""CSPm parser: tokens -> :mod:`processors.csp.language.syntax`.

Recursive descent with FDR/libcspm operator precedence (loosest first)::

    let/if/lambda/replicated   (bodies extend as far as possible)
    \\ (hiding)   |||   [| |] [ || ] [ <-> ]   |~|   []   /\\   [>   ;
    -> &   (prefix fields ? ! $)   .   or   and   not   == != < > <= >=
    + -   * / %   #   ^   application, [[ ]]

Layout: a declaration ends before a token that starts a line at or left of the
current block's column (column 1 at top level, the first declaration's column
inside ``let``), unless the previous token is an operator that needs a right
operand. Inside brackets layout is off.
"""

from __future__ import annotations

import dataclasses
from typing import Any, cast

from processors.csp.language import syntax as S
from processors.csp.language import timed
from processors.csp.language.errors import CspmError, CspmSyntaxError, CspmUnsupported
from processors.csp.language.lexer import Token, tokenize

# Tokens after which an expression must continue (so a newline does not end it).
_CONTINUE_OPS = frozenset(
    {
        "[FD=",
        "[F=",
        "[T=",
        "|~|",
        "|||",
        "<->",
        "[|",
        "|]",
        "[[",
        "[]",
        "[>",
        "||",
        "{|",
        "->",
        "<-",
        "<=",
        ">=",
        "==",
        "!=",
        "..",
        "/\\",
        "\\\\",
        "[",
        "(",
        "{",
        "<",
        "=",
        "+",
        "-",
        "*",
        "/",
        "%",
        "^",
        "#",
        ",",
        ".",
        ":",
        "?",
        "!",
        "$",
        "&",
        "@",
        "\\",
        ";",
        "|",
    }
)
_CONTINUE_KWS = frozenset({"and", "or", "not", "if", "then", "else", "let", "within"})
_DECL_KWS = frozenset(
    {
        "channel",
        "datatype",
        "subtype",
        "nametype",
        "assert",
        "include",
        "transparent",
        "external",
        "module",
        "instance",
        "timed",
        "Timed",
        "print",
        "exports",
        "endmodule",
        "true",
        "false",
    }
)
_DECL_START_OPS = frozenset({"(", "<", "{", "_", "{|"})

_UNSUPPORTED_OPS = {
    "[R=": "refusal-testing refinement [R=",
    "[V=": "revivals refinement [V=",
    "[M=": "refinement model [M=",
    "::": "module scoping ::",
    "=>": "=>",
    "~": "~",
}

_LIT_KWS = {"true": True, "false": False}
_TYPE_CLASSES = frozenset({"Eq", "Ord", "Set", "Complete", "Yieldable", "Inputable"})


class Parser:
    def __init__(self, src: str, file: str) -> None:
        self.src = src
        self.file = file
        self.toks = tokenize(src, file)
        self.pos = 0
        self.decl_start = 0
        self.ctx: list[str] = []  # enclosing blocks: "let", "module", "timed"
        self.layout: list[int] = [1]
        self.seq_depth: list[bool] = [False]  # True while directly inside < ... >
        # a hidden / projected process already parsed: the first operand of what follows (lvl_hide)
        self.pending: S.Expr | None = None
        self._line_starts = [0]
        for i, ch in enumerate(src):
            if ch == "\n":
                self._line_starts.append(i + 1)

    # ------------------------------------------------------------ helpers
    def _terminates(self, idx: int) -> bool:
        tok = self.toks[idx]
        if tok.kind == "eof":
            return True
        if not tok.bol or tok.col > self.layout[-1] or idx == self.decl_start:
            return False
        if tok.kind == "kw" and tok.text not in _DECL_KWS:
            return False
        if idx > 0:
            prev = self.toks[idx - 1]
            if (prev.kind == "op" and prev.text in _CONTINUE_OPS) or (
                prev.kind == "kw" and prev.text in _CONTINUE_KWS
            ):
                return False
        return not (tok.kind == "op" and tok.text not in _DECL_START_OPS)

    def peek(self) -> Token:
        tok = self.toks[self.pos]
        if self._terminates(self.pos):
            return Token("eof", "", tok.line, tok.col, True, tok.line, tok.col)
        return tok

    def peek_at(self, k: int) -> Token:
        i = min(self.pos + k, len(self.toks) - 1)
        return self.toks[i]

    def at(self, text: str) -> bool:
        t = self.peek()
        return t.kind in ("op", "kw") and t.text == text

    def advance(self) -> Token:
        t = self.toks[self.pos]
        if self.pos < len(self.toks) - 1:
            self.pos += 1
        return t

    def err(self, expected: str, tok: Token | None = None) -> CspmError:
        t = tok or self.peek()
        if t.kind == "op" and t.text in _UNSUPPORTED_OPS:
            return self.unsupported(_UNSUPPORTED_OPS[t.text], t)
        if t.kind == "eof":
            found = (
                "end of file" if self.toks[self.pos].kind == "eof" else f"end of definition (line {t.line})"
            )
        else:
            found = t.describe()
        return CspmSyntaxError(f"expected {expected}, found {found}", self.file, t.line, t.col)

    def expect(self, text: str) -> Token:
        if not self.at(text):
            raise self.err(repr(text))
        return self.advance()

    def unsupported(self, what: str, tok: Token) -> CspmUnsupported:
        return CspmUnsupported(what, self.file, tok.line, tok.col)

    def _end(self, node_tok: Token) -> dict[str, Any]:
        prev = self.toks[self.pos - 1] if self.pos > 0 else node_tok
        return {"end_line": prev.end_line, "end_col": prev.end_col, "file": self.file}

    def text_between(self, start: Token, end: Token) -> str:
        a = self._line_starts[start.line - 1] + start.col - 1
        b = self._line_starts[end.end_line - 1] + end.end_col - 1
        return " ".join(self.src[a:b].split())

    def bracketed(self) -> None:
        self.layout.append(0)
        self.seq_depth.append(False)

    def unbracket(self) -> None:
        self.layout.pop()
        self.seq_depth.pop()

    # ------------------------------------------------------- declarations
    def parse_file(self) -> S.ModuleFile:
        decls: list[S.Decl] = []
        while self.toks[self.pos].kind != "eof":
            # a top-level declaration ends at a line starting at or left of its own column
            self.layout[-1] = max(1, self.toks[self.pos].col)
            d = self.parse_decl()
            if d is not None:
                decls.append(d)
            self.end_decl()
        combined = _combine(decls)
        _check_annotations(combined, self.file)
        return S.ModuleFile(self.file, tuple(combined))

    def end_decl(self) -> None:
        t = self.peek()
        if t.kind != "eof" and not (t.kind == "kw" and t.text == "within"):
            raise self.err("end of definition or an operator", t)

    def parse_decl(self) -> S.Decl | None:
        saved = self.decl_start
        self.decl_start = self.pos
        try:
            return self._parse_decl()
        finally:
            self.decl_start = saved

    def _parse_decl(self) -> S.Decl | None:
        t = self.peek()
        if t.kind == "kw":
            if t.text in ("channel", "datatype", "subtype", "nametype", "include") and "let" in self.ctx:
                raise CspmSyntaxError(f"'{t.text}' is not allowed inside let", self.file, t.line, t.col)
            if t.text == "channel":
                self.advance()
                names = self.name_list()
                ty = None
                if self.at(":"):
                    self.advance()
                    ty = self.parse_expr()
                return S.ChannelDecl(t.line, t.col, tuple(names), ty, **self._end(t))
            if t.text in ("datatype", "subtype"):
                self.advance()
                name = self.ident()
                self.expect("=")
                clauses = [self.data_clause()]
                while self.at("|"):
                    self.advance()
                    clauses.append(self.data_clause())
                return S.DataTypeDecl(
                    t.line, t.col, name, tuple(clauses), t.text == "subtype", **self._end(t)
                )
            if t.text == "nametype":
                self.advance()
                name = self.ident()
                self.expect("=")
                e = self.parse_expr()
                return S.NameTypeDecl(t.line, t.col, name, e, **self._end(t))
            if t.text in ("transparent", "external"):
                self.advance()
                names = self.name_list()
                return S.ExternalDecl(t.line, t.col, tuple(names), t.text == "transparent", **self._end(t))
            if t.text == "include":
                self.advance()
                s = self.peek()
                if s.kind != "string":
                    raise self.err("a file name string")
                self.advance()
                return S.IncludeDecl(t.line, t.col, s.text, **self._end(t))
            if t.text == "assert":
                if "module" in self.ctx or "let" in self.ctx:
                    raise CspmSyntaxError(
                        f"assertions are not allowed inside {self.ctx[-1]}", self.file, t.line, t.col
                    )
                return self.parse_assert()
            if t.text == "print":
                if "module" in self.ctx or "timed" in self.ctx:
                    raise CspmSyntaxError("'print' is not allowed here", self.file, t.line, t.col)
                self.advance()
                self.parse_expr()
                return None
            if t.text == "module":
                return self.parse_module()
            if t.text == "instance":
                return self.parse_instance()
            if t.text == "Timed":
                return self.parse_timed()
            if t.text in ("exports", "endmodule", "timed"):
                raise self.err("a definition")
        if t.kind == "eof":
            raise self.err("a definition")
        if t.kind == "ident" and self.peek_at(1).text in ("::", ",") and self._is_annotation():
            return self.parse_annotation()
        lhs = self.parse_expr()
        if not self.at("="):
            raise self.err("'=' or an operator")
        self.advance()
        rhs = self.parse_expr()
        return self.make_def(lhs, rhs, t)

    def parse_block(self, closers: tuple[str, ...], ctx: str) -> list[S.Decl]:
        """Declarations up to (not including) one of ``closers`` (module bodies, timed sections)."""
        decls: list[S.Decl] = []
        self.layout.append(1)
        self.seq_depth.append(False)
        self.ctx.append(ctx)
        try:
            while True:
                raw = self.toks[self.pos]
                if raw.text in closers and raw.kind in ("kw", "op"):
                    break
                if raw.kind == "eof":
                    raise self.err(" or ".join(repr(c) for c in closers), raw)
                self.layout[-1] = max(1, raw.col)
                d = self.parse_decl()
                if d is not None:
                    decls.append(d)
                nxt = self.toks[self.pos]
                if not (nxt.text in closers and nxt.kind in ("kw", "op")):
                    self.end_decl()
        finally:
            self.layout.pop()
            self.seq_depth.pop()
            self.ctx.pop()
        return decls

    def expect_raw(self, text: str) -> Token:
        t = self.toks[self.pos]
        if t.text != text or t.kind not in ("kw", "op"):
            raise self.err(repr(text), t)
        return self.advance()

    def parse_module(self) -> S.Decl:
        t = self.advance()
        if "let" in self.ctx or "timed" in self.ctx:
            raise CspmSyntaxError(f"modules are not allowed inside {self.ctx[-1]}", self.file, t.line, t.col)
        name = self.ident()
        params: list[str] | None = None
        bad_param: S.Expr | None = None
        if self.at("("):
            self.advance()
            if self.at(")"):
                raise CspmSyntaxError("a module's parameter list cannot be empty", self.file, t.line, t.col)
            params = []
            while True:
                e = self.parse_expr()
                if isinstance(e, S.Var) and "::" not in e.name:
                    params.append(e.name)
                elif bad_param is None:
                    bad_param = e
                if not self.at(","):
                    break
                self.advance()
            self.expect(")")
        body = self.parse_block(("exports",), "module")
        self.expect_raw("exports")
        exported = self.parse_block(("endmodule",), "module")
        self.expect_raw("endmodule")
        if bad_param is not None:
            return S.UnsupportedDecl(
                bad_param.line, bad_param.col, "module parameter patterns", (), **self._end(t)
            )
        return S.ModuleDecl(
            t.line,
            t.col,
            name,
            tuple(params) if params is not None else None,
            tuple(_combine(body)),
            tuple(_combine(exported)),
            **self._end(t),
        )

    def parse_instance(self) -> S.Decl:
        t = self.advance()
        name = self.ident()
        self.expect("=")
        target = self.parse_postfix_unary()
        prev = self.toks[self.pos - 1]
        if prev.text == ")" and self.toks[self.pos - 2].text == "(":
            raise CspmSyntaxError("an instance's argument list cannot be empty", self.file, t.line, t.col)
        if isinstance(target, S.Var):
            return S.InstanceDecl(t.line, t.col, name, target.name, None, **self._end(t))
        if isinstance(target, S.App) and isinstance(target.func, S.Var):
            return S.InstanceDecl(t.line, t.col, name, target.func.name, target.args, **self._end(t))
        return S.UnsupportedDecl(t.line, t.col, "module system 'instance'", (), **self._end(t))

    def parse_timed(self) -> S.Decl:
        t = self.advance()
        timing: S.Expr | None = None
        if self.at("("):
            self.advance()
            self.bracketed()
            timing = self.parse_expr()
            self.expect(")")
            self.unbracket()
        self.expect("{")
        inner = self.parse_block(("}",), "timed")
        self.expect_raw("}")
        return S.TimedSection(t.line, t.col, timing, tuple(inner), **self._end(t))

    def _is_annotation(self) -> bool:
        i = self.pos
        while self.toks[i].kind == "ident" and self.toks[i + 1].text == ",":
            i += 2
        return self.toks[i].kind == "ident" and self.toks[i + 1].text == "::"

    def parse_annotation(self) -> S.AnnotDecl:
        t = self.peek()
        names = self.name_list()
        self.expect("::")
        constraints: list[tuple[str, str]] = []
        if self._constraint_start(self.pos):
            constraints.append(self._constraint())
            self.expect("=>")
        elif self.at("(") and self._constraint_start(self.pos + 1):
            self.advance()
            constraints.append(self._constraint())
            while self.at(","):
                self.advance()
                constraints.append(self._constraint())
            self.expect(")")
            self.expect("=>")
        ty = self.ty()
        return S.AnnotDecl(t.line, t.col, tuple(names), tuple(constraints), ty, **self._end(t))

    def _constraint_start(self, i: int) -> bool:
        a, b = self.toks[i], self.toks[min(i + 1, len(self.toks) - 1)]
        return (
            a.kind == "ident" and a.text[:1].isupper() and b.kind == "ident" and not self._terminates(i + 1)
        )

    def _constraint(self) -> tuple[str, str]:
        c = self.peek()
        if c.kind != "ident":
            raise self.err("a type class")
        if c.text not in _TYPE_CLASSES:
            raise CspmSyntaxError(f"unknown type class '{c.text}'", self.file, c.line, c.col)
        self.advance()
        v = self.ident()
        return c.text, v

    def ty(self) -> S.TyExpr:
        t = self.peek()
        left = self.ty_dot()
        if self.at("=>"):
            self.advance()
            star = False
            if self.at("*"):
                self.advance()
                star = True
            right = self.ty()
            return S.TyDotable(t.line, t.col, left, right, star, **self._end(t))
        return left

    def ty_dot(self) -> S.TyExpr:
        t = self.peek()
        items = [self.ty_atom()]
        while self.at("."):
            self.advance()
            items.append(self.ty_atom())
        if len(items) == 1:
            return items[0]
        return S.TyDot(t.line, t.col, tuple(items), **self._end(t))

    def ty_atom(self) -> S.TyExpr:
        t = self.peek()
        if t.kind == "ident":
            self.advance()
            name = t.text
            while self.at("::") and self.peek_at(1).kind == "ident":  # a type exported by a module
                self.advance()
                name += "::" + self.advance().text
            if self.at("->"):
                raise CspmSyntaxError(
                    "function argument types must be parenthesised: (T) -> U", self.file, t.line, t.col
                )
            return S.TyName(t.line, t.col, name, **self._end(t))
        if self.at("{"):
            self.advance()
            self.bracketed()
            e = self.ty()
            self.expect("}")
            self.unbracket()
            return S.TySet(t.line, t.col, e, **self._end(t))
        if self.at("<"):
            self.advance()
            self.bracketed()
            e = self.ty()
            self.expect(">")
            self.unbracket()
            return S.TySeq(t.line, t.col, e, **self._end(t))
        if self.at("(|"):
            self.advance()
            self.bracketed()
            key = self.ty_dot()
            self.expect("=>")
            value = self.ty()
            self.expect("|)")
            self.unbracket()
            return S.TyMap(t.line, t.col, key, value, **self._end(t))
        if self.at("(") and self.peek_at(1).text == ")":
            self.advance()
            self.advance()
            self.expect("->")
            ret = self.ty()
            return S.TyFunc(t.line, t.col, (), ret, **self._end(t))
        if self.at("("):
            self.advance()
            self.bracketed()
            items = [self.ty()]
            while self.at(","):
                self.advance()
                items.append(self.ty())
            self.expect(")")
            self.unbracket()
            if self.at("->"):
                self.advance()
                ret = self.ty()
                return S.TyFunc(t.line, t.col, tuple(items), ret, **self._end(t))
            if len(items) == 1:
                return items[0]
            return S.TyTuple(t.line, t.col, tuple(items), **self._end(t))
        raise self.err("a type")

    def make_def(self, lhs: S.Expr, rhs: S.Expr, t: Token) -> S.Decl:
        end = self._end(t)
        if isinstance(lhs, S.Var):
            return S.FunDecl(t.line, t.col, lhs.name, (S.Clause(t.line, t.col, (), rhs, **end),), **end)
        if isinstance(lhs, S.App):
            groups: list[tuple[S.Pat, ...]] = []
            f: S.Expr = lhs
            while isinstance(f, S.App):
                groups.append(tuple(self.to_pat(a) for a in f.args))
                f = f.func
            if isinstance(f, S.Var):
                groups.reverse()
                clause = S.Clause(t.line, t.col, tuple(groups), rhs, **end)
                return S.FunDecl(t.line, t.col, f.name, (clause,), **end)
            raise CspmSyntaxError("expected a function name on the left of '='", self.file, lhs.line, lhs.col)
        return S.PatDecl(t.line, t.col, self.to_pat(lhs), rhs, **end)

    def data_clause(self) -> S.DataClause:
        t = self.peek()
        name = self.ident()
        ty = None
        if self.at("."):
            self.advance()
            ty = self.parse_level(_DOT + 1)
            while self.at("."):
                self.advance()
                r = self.parse_level(_DOT + 1)
                ty = S.Dot(ty.line, ty.col, ty, r, **self._end(t))
        return S.DataClause(t.line, t.col, name, ty, **self._end(t))

    def ident(self) -> str:
        t = self.peek()
        if t.kind != "ident":
            raise self.err("a name")
        self.advance()
        return t.text

    def name_list(self) -> list[str]:
        names = [self.ident()]
        while self.at(","):
            self.advance()
            names.append(self.ident())
        return names

    def parse_assert(self) -> S.Decl:
        at = self.advance()
        negated = False
        if self.at("not"):
            self.advance()
            negated = True
        start = self.peek()
        left = self.parse_expr()
        t = self.peek()
        if t.kind == "op" and t.text in ("[T=", "[F=", "[FD=", "[R=", "[V=", "[M=", "[VD=", "[RD="):
            self.advance()
            right = self.parse_expr()
            options = self.assert_options()
            if t.text not in ("[T=", "[F=", "[FD="):
                return S.UnsupportedDecl(at.line, at.col, f"refinement model {t.text}", (), **self._end(at))
            if options:
                return S.UnsupportedDecl(
                    at.line, at.col, f"assertion option '{options[0]}'", (), **self._end(at)
                )
            text = self.text_between(start, self.toks[self.pos - 1])
            return S.AssertDecl(
                at.line, at.col, text, "refines", t.text[1:-1], negated, left, right, None, **self._end(at)
            )
        if not self.at(":"):
            raise self.err("a refinement ('[T=', '[F=', '[FD=') or ':[' property")
        self.advance()
        self.expect("[")
        words: list[str] = []
        while self.peek().kind in ("ident", "kw"):
            words.append(self.advance().text)
        prop = " ".join(words)
        kinds = {
            "deadlock free": "deadlock free",
            "divergence free": "divergence free",
            "livelock free": "divergence free",
            "deterministic": "deterministic",
            "has trace": "has trace",
        }
        if prop not in kinds:
            raise self.unsupported(f"assertion property '{prop}'", t)
        model = None
        if self.at("["):
            self.advance()
            m = self.peek()
            if m.kind != "ident" or m.text not in ("T", "F", "FD"):
                if m.kind == "ident":
                    raise self.unsupported(f"model [{m.text}]", m)
                raise self.err("a model (T, F or FD)")
            self.advance()
            model = m.text
            if self.at("]]"):
                self.advance()
            else:
                self.expect("]")
                self.expect("]")
        else:
            self.expect("]")
        trace = None
        if kinds[prop] == "has trace":
            if self.at(":"):
                self.advance()
            trace = self.parse_expr()
        options = self.assert_options()
        if options:
            return S.UnsupportedDecl(at.line, at.col, f"assertion option '{options[0]}'", (), **self._end(at))
        text = self.text_between(start, self.toks[self.pos - 1])
        return S.AssertDecl(
            at.line, at.col, text, kinds[prop], model, negated, left, None, trace, **self._end(at)
        )

    def assert_options(self) -> list[str]:
        """``:[tau priority]: A``, ``:[partial order reduce]`` ... (parsed, not supported)."""
        opts: list[str] = []
        while self.at(":") and self.peek_at(1).text == "[":
            t = self.advance()
            self.advance()
            words: list[str] = []
            while self.peek().kind in ("ident", "kw"):
                words.append(self.advance().text)
            if self.at("["):
                self.advance()
                while self.peek().kind in ("ident", "kw"):
                    self.advance()
                if self.at("]]"):
                    self.advance()
                else:
                    self.expect("]")
                    self.expect("]")
            else:
                self.expect("]")
            name = " ".join(words)
            if name in opts:
                raise CspmSyntaxError(f"assertion option '{name}' given twice", self.file, t.line, t.col)
            if name.startswith("tau priority"):
                self.expect(":")
                self.parse_level(_DOT)
            opts.append(name)
        return opts

    def parse_let_decls(self) -> list[S.Decl]:
        first = self.peek()
        self.layout.append(first.col)
        self.seq_depth.append(False)
        decls: list[S.Decl] = []
        try:
            while True:
                raw = self.toks[self.pos]
                if raw.kind == "kw" and raw.text == "within":
                    break
                if raw.kind == "eof":
                    raise self.err("'within'", raw)
                if raw.kind == "kw" and raw.text in ("print", "module", "instance"):
                    raise CspmSyntaxError(
                        f"'{raw.text}' is not allowed inside let", self.file, raw.line, raw.col
                    )
                self.ctx.append("let")
                try:
                    d = self.parse_decl()
                finally:
                    self.ctx.pop()
                if d is not None:
                    decls.append(d)
                self.end_decl()
        finally:
            self.layout.pop()
            self.seq_depth.pop()
        combined = _combine(decls)
        _check_annotations(combined, self.file)
        return combined

    # -------------------------------------------------------- expressions
    def parse_expr(self) -> S.Expr:
        return self.parse_level(0)

    def parse_level(self, level: int) -> S.Expr:
        if level > _MAX_BINARY:
            return self.parse_unary(level)
        fn = _LEVEL_FUNCS[level]
        return fn(self, level)

    def _left_binary(self, level: int, ops: tuple[str, ...], make: str) -> S.Expr:
        left = self.parse_level(level + 1)
        while True:
            t = self.peek()
            if t.kind in ("op", "kw") and t.text in ops:
                if t.text == ">" and not self._gt_is_operator():
                    return left
                self.advance()
                right = self.parse_level(level + 1)
                op = t.text
                if make == "proc":
                    if op == "\\\\":
                        op = "\\"
                    left = S.ProcOp(left.line, left.col, op, left, right, **self._end(t))
                else:
                    left = S.BinOp(left.line, left.col, op, left, right, **self._end(t))
            else:
                return left

    def _gt_is_operator(self) -> bool:
        if not self.seq_depth[-1]:
            return True
        nxt = self.peek_at(1)
        if nxt.bol or nxt.kind == "eof":
            return False
        if nxt.kind in ("int", "ident", "char", "string"):
            return True
        return nxt.kind == "kw" and nxt.text in ("true", "false", "not", "if", "let")

    def lvl_hide(self, level: int) -> S.Expr:
        """``P \\ A`` and ``P |\\ A``, as libcspm parses them: the lowest-precedence
        operators, whose set operand binds tightly, so ``P \\ A ||| Q`` is
        ``(P \\ A) ||| Q`` (the hidden process is the first operand of what follows)."""
        left = self.parse_level(level + 1)
        while self.at("\\") or self.at("\\\\") or self.at("|\\"):
            t = self.advance()
            right = self.parse_level(_DOT)
            op = "|\\" if t.text == "|\\" else "\\"
            self.pending = S.ProcOp(left.line, left.col, op, left, right, **self._end(t))
            left = self.parse_level(level + 1)
        return left

    def lvl_interleave(self, level: int) -> S.Expr:
        return self._left_binary(level, ("|||",), "proc")

    def lvl_par(self, level: int) -> S.Expr:
        left = self.parse_level(level + 1)
        while True:
            t = self.peek()
            if t.kind == "op" and t.text == "[|":
                self.advance()
                self.bracketed()
                sync = self.parse_expr()
                if self.at("|>"):
                    self.advance()
                    self.unbracket()
                    right = self.parse_level(level + 1)
                    left = S.SyncOp(left.line, left.col, "[|>", left, sync, right, **self._end(t))
                    continue
                self.expect("|]")
                self.unbracket()
                right = self.parse_level(level + 1)
                left = S.GenPar(left.line, left.col, left, sync, right, **self._end(t))
            elif t.kind == "op" and t.text == "[":
                self.advance()
                self.bracketed()
                a = self.parse_expr()
                if self.at("||"):
                    self.advance()
                    b = self.parse_expr()
                    self.expect("]")
                    self.unbracket()
                    right = self.parse_level(level + 1)
                    left = S.AlphaPar(left.line, left.col, left, a, b, right, **self._end(t))
                elif self.at("<->"):
                    links, stmts = self.link_pairs(a)
                    self.expect("]")
                    self.unbracket()
                    right = self.parse_level(level + 1)
                    left = S.LinkPar(left.line, left.col, left, links, stmts, right, **self._end(t))
                else:
                    raise self.err("'||' or '<->'")
            else:
                return left

    def link_pairs(self, first: S.Expr) -> tuple[tuple[tuple[S.Expr, S.Expr], ...], tuple[S.Stmt, ...]]:
        self.expect("<->")
        pairs = [(first, self.parse_expr())]
        stmts: tuple[S.Stmt, ...] = ()
        while self.at(","):
            self.advance()
            a = self.parse_expr()
            self.expect("<->")
            pairs.append((a, self.parse_expr()))
        if self.at("|"):
            self.advance()
            stmts = self.stmts()
        return tuple(pairs), stmts

    def lvl_intchoice(self, level: int) -> S.Expr:
        return self._left_binary(level, ("|~|",), "proc")

    def lvl_extchoice(self, level: int) -> S.Expr:
        return self._with_sync_variant(level, "[]", "[+", "+]")

    def lvl_interrupt(self, level: int) -> S.Expr:
        return self._with_sync_variant(level, "/\\", "/+", "+\\")

    def _with_sync_variant(self, level: int, op: str, open_: str, close: str) -> S.Expr:
        """``op`` chains, plus its synchronising variant ``open_ A close`` (an :class:`S.SyncOp`)."""
        left = self._left_binary(level, (op,), "proc")
        while self.at(open_):
            t = self.advance()
            self.bracketed()
            sync = self.parse_expr()
            self.expect(close)
            self.unbracket()
            right = self._left_binary(level, (op,), "proc")
            left = S.SyncOp(left.line, left.col, open_, left, sync, right, **self._end(t))
        return left

    def lvl_sliding(self, level: int) -> S.Expr:
        return self._left_binary(level, ("[>",), "proc")

    def lvl_seq(self, level: int) -> S.Expr:
        return self._left_binary(level, (";",), "proc")

    def lvl_prefix(self, level: int) -> S.Expr:
        start = self.peek()
        left = self.parse_level(_DOT)
        fields: list[S.Field] = []
        while True:
            t = self.peek()
            if t.kind == "op" and t.text in ("?", "!", "$"):
                if t.text == "$" and fields and fields[-1].kind != "$":
                    raise CspmSyntaxError(
                        "a '$' field must come before '?' and '!' fields", self.file, t.line, t.col
                    )
                self.advance()
                if t.text == "!":
                    e = self.parse_level(_DOT)
                    fields.append(S.Field(t.line, t.col, "!", e, None, None, **self._end(t)))
                else:
                    pe = self.parse_level(_DOT)
                    pat = self.to_pat(pe)
                    restrict = None
                    if self.at(":"):
                        self.advance()
                        restrict = self.parse_level(_DOT)
                    fields.append(S.Field(t.line, t.col, t.text, None, pat, restrict, **self._end(t)))
            else:
                break
        t = self.peek()
        if t.kind == "op" and t.text == "->":
            self.advance()
            body = self.parse_level(level)
            return S.Prefix(start.line, start.col, left, tuple(fields), body, **self._end(start))
        if fields:
            raise self.err("'->'")
        if t.kind == "op" and t.text == "&":
            self.advance()
            body = self.parse_level(level)
            return S.Guard(start.line, start.col, left, body, **self._end(start))
        return left

    def lvl_dot(self, level: int) -> S.Expr:
        left = self.parse_level(level + 1)
        if self.at("."):
            t = self.advance()
            right = self.parse_level(level)
            return S.Dot(left.line, left.col, left, right, **self._end(t))
        if self.at("@@"):
            t = self.advance()
            right = self.parse_level(level)
            return S.DoublePatE(left.line, left.col, left, right, **self._end(t))
        return left

    def lvl_or(self, level: int) -> S.Expr:
        return self._left_binary(level, ("or",), "bin")

    def lvl_and(self, level: int) -> S.Expr:
        return self._left_binary(level, ("and",), "bin")

    def lvl_not(self, level: int) -> S.Expr:
        t = self.peek()
        if self.pending is None and t.kind == "kw" and t.text == "not":
            self.advance()
            e = self.parse_level(level)
            return S.UnOp(t.line, t.col, "not", e, **self._end(t))
        return self.parse_level(level + 1)

    def lvl_cmp(self, level: int) -> S.Expr:
        left = self.parse_level(level + 1)
        t = self.peek()
        if t.kind == "op" and t.text in ("==", "!=", "<", ">", "<=", ">="):
            if t.text == ">" and not self._gt_is_operator():
                return left
            self.advance()
            right = self.parse_level(level + 1)
            return S.BinOp(left.line, left.col, t.text, left, right, **self._end(t))
        return left

    def lvl_add(self, level: int) -> S.Expr:
        return self._left_binary(level, ("+", "-"), "bin")

    def lvl_mul(self, level: int) -> S.Expr:
        return self._left_binary(level, ("*", "/", "%"), "bin")

    def parse_unary(self, level: int) -> S.Expr:
        if self.pending is not None:
            return self.parse_postfix()
        t = self.peek()
        if t.kind == "op" and t.text == "-":
            self.advance()
            e = self.parse_unary(level)
            return S.UnOp(t.line, t.col, "neg", e, **self._end(t))
        if t.kind == "op" and t.text == "#":
            self.advance()
            e = self.parse_unary(level)
            return S.UnOp(t.line, t.col, "#", e, **self._end(t))
        left = self.parse_postfix()
        while self.at("^"):
            op = self.advance()
            right = self.parse_postfix_unary()
            left = S.BinOp(left.line, left.col, "^", left, right, **self._end(op))
        return left

    def parse_postfix_unary(self) -> S.Expr:
        t = self.peek()
        if t.kind == "op" and t.text in ("-", "#"):
            return self.parse_unary(_MAX_BINARY + 1)
        return self.parse_postfix()

    def parse_postfix(self) -> S.Expr:
        e = self.parse_primary()
        while True:
            t = self.peek()
            if t.kind == "op" and t.text == "(":
                self.advance()
                self.bracketed()
                args: list[S.Expr] = []
                if not self.at(")"):
                    args.append(self.parse_expr())
                    while self.at(","):
                        self.advance()
                        args.append(self.parse_expr())
                self.expect(")")
                self.unbracket()
                e = S.App(e.line, e.col, e, tuple(args), **self._end(t))
            elif t.kind == "op" and t.text == "[[":
                self.advance()
                self.bracketed()
                pairs: list[tuple[S.Expr, S.Expr]] = []
                stmts: tuple[S.Stmt, ...] = ()
                if not self.at("]]"):
                    while True:
                        a = self.parse_expr()
                        self.expect("<-")
                        pairs.append((a, self.parse_expr()))
                        if not self.at(","):
                            break
                        self.advance()
                    if self.at("|"):
                        self.advance()
                        stmts = self.stmts()
                self.expect("]]")
                self.unbracket()
                e = S.RenameE(e.line, e.col, e, tuple(pairs), stmts, **self._end(t))
            else:
                return e

    def stmts(self) -> tuple[S.Stmt, ...]:
        out: list[S.Stmt] = [self.stmt()]
        while self.at(","):
            self.advance()
            out.append(self.stmt())
        return tuple(out)

    def stmt(self, colon: bool = False) -> S.Stmt:
        t = self.peek()
        e = self.parse_level(_DOT) if colon else self.parse_expr()
        if self.at("<-") or (colon and self.at(":")):
            self.advance()
            pat = self.to_pat(e)
            src = self.parse_expr()
            return S.Gen(t.line, t.col, pat, src, **self._end(t))
        if colon:
            # a filter in a replicated operator: the expression continues
            return S.Filter(t.line, t.col, e, **self._end(t))
        return S.Filter(t.line, t.col, e, **self._end(t))

    def rep_stmts(self) -> tuple[S.Stmt, ...]:
        out: list[S.Stmt] = [self.stmt(colon=True)]
        while self.at(","):
            self.advance()
            out.append(self.stmt(colon=True))
        self.expect("@")
        return tuple(out)

    def parse_primary(self) -> S.Expr:
        if self.pending is not None:
            e, self.pending = self.pending, None
            return e
        t = self.peek()
        k = t.kind
        if k == "int":
            self.advance()
            return S.Lit(t.line, t.col, int(t.text), "int", **self._end(t))
        if k == "char":
            self.advance()
            return S.Lit(t.line, t.col, t.text, "char", **self._end(t))
        if k == "string":
            self.advance()
            return S.Lit(t.line, t.col, t.text, "string", **self._end(t))
        if k == "ident":
            self.advance()
            if self.at("::") and self.peek_at(1).kind == "ident":
                segs = [t.text]
                while self.at("::") and self.peek_at(1).kind == "ident":
                    self.advance()
                    segs.append(self.advance().text)
                return S.Var(t.line, t.col, "::".join(segs), **self._end(t))
            return S.Var(t.line, t.col, t.text, **self._end(t))
        if k == "kw":
            if t.text in _LIT_KWS:
                self.advance()
                return S.Lit(t.line, t.col, _LIT_KWS[t.text], "bool", **self._end(t))
            if t.text == "if":
                self.advance()
                c = self.parse_expr()
                self.expect("then")
                a = self.parse_expr()
                self.expect("else")
                b = self.parse_expr()
                return S.If(t.line, t.col, c, a, b, **self._end(t))
            if t.text == "let":
                self.advance()
                decls = self.parse_let_decls()
                self.expect("within")
                body = self.parse_expr()
                return S.Let(t.line, t.col, tuple(decls), body, **self._end(t))
            if t.text == "not":
                self.advance()
                e = self.parse_level(_NOT)
                return S.UnOp(t.line, t.col, "not", e, **self._end(t))
            if t.text in ("module", "instance", "timed", "Timed"):
                raise self.unsupported(t.text, t)
            raise self.err("an expression")
        if k == "eof":
            raise self.err("an expression")
        op = t.text
        if op == "(":
            self.advance()
            self.bracketed()
            items = [self.parse_expr()]
            while self.at(","):
                self.advance()
                items.append(self.parse_expr())
            self.expect(")")
            self.unbracket()
            if len(items) == 1:
                return S.Paren(t.line, t.col, items[0], **self._end(t))
            return S.Tuple(t.line, t.col, tuple(items), **self._end(t))
        if op == "_":
            self.advance()
            return S.Wildcard(t.line, t.col, **self._end(t))
        if op == "(|":
            self.advance()
            self.bracketed()
            pairs: list[tuple[S.Expr, S.Expr]] = []
            while not self.at("|)"):
                key = self.parse_expr()
                self.expect("=>")
                pairs.append((key, self.parse_expr()))
                if not self.at(","):
                    break
                self.advance()
            self.expect("|)")
            self.unbracket()
            return S.MapLit(t.line, t.col, tuple(pairs), **self._end(t))
        if op == "<":
            return self.parse_seq()
        if op == "{":
            return self.parse_set()
        if op == "{|":
            self.advance()
            self.bracketed()
            items = [self.parse_expr()]
            while self.at(","):
                self.advance()
                items.append(self.parse_expr())
            stmts: tuple[S.Stmt, ...] = ()
            if self.at("|"):
                self.advance()
                stmts = self.stmts()
            self.expect("|}")
            self.unbracket()
            return S.EnumSet(t.line, t.col, tuple(items), stmts, **self._end(t))
        if op == "\\":
            self.advance()
            pats = [self.to_pat(self.parse_level(_DOT))]
            while self.at(","):
                self.advance()
                pats.append(self.to_pat(self.parse_level(_DOT)))
            self.expect("@")
            body = self.parse_expr()
            return S.Lambda(t.line, t.col, tuple(pats), body, **self._end(t))
        if op in ("[]", "|~|", "|||", ";", "||"):
            self.advance()
            stmts = self.rep_stmts()
            param = None
            if op == "||":
                self.expect("[")
                self.bracketed()
                param = self.parse_expr()
                self.expect("]")
                self.unbracket()
            body = self.parse_level(_REPL_BODY)
            return S.Replicated(t.line, t.col, op, stmts, body, param, (), (), **self._end(t))
        if op in ("[|", "[+"):
            self.advance()
            self.bracketed()
            sync = self.parse_expr()
            self.expect("|]" if op == "[|" else "+]")
            self.unbracket()
            stmts = self.rep_stmts()
            body = self.parse_level(_REPL_BODY)
            return S.Replicated(t.line, t.col, op, stmts, body, sync, (), (), **self._end(t))
        if op == "[":
            self.advance()
            self.bracketed()
            a = self.parse_expr()
            links, lstmts = self.link_pairs(a)
            self.expect("]")
            self.unbracket()
            stmts = self.rep_stmts()
            body = self.parse_level(_REPL_BODY)
            return S.Replicated(t.line, t.col, "link", stmts, body, None, links, lstmts, **self._end(t))
        if op == "-":
            return self.parse_unary(_MAX_BINARY + 1)
        if op in _UNSUPPORTED_OPS:
            raise self.unsupported(_UNSUPPORTED_OPS[op], t)
        raise self.err("an expression")

    def parse_seq(self) -> S.Expr:
        t = self.advance()  # <
        self.layout.append(0)
        self.seq_depth.append(True)
        try:
            return self._collection(t, ">", S.SeqLit, S.SeqRange, S.SeqComp)
        finally:
            self.layout.pop()
            self.seq_depth.pop()

    def parse_set(self) -> S.Expr:
        t = self.advance()  # {
        self.bracketed()
        try:
            return self._collection(t, "}", S.SetLit, S.SetRange, S.SetComp)
        finally:
            self.unbracket()

    def _collection(self, t: Token, close: str, lit: Any, rng: Any, comp: Any) -> S.Expr:
        """The inside of ``<...>`` or ``{...}``: a literal, a range or a comprehension."""
        if self.at(close):
            self.advance()
            return cast(S.Expr, lit(t.line, t.col, (), **self._end(t)))
        first = self.parse_expr()
        if self.at(".."):
            self.advance()
            hi = None
            if not self.at(close) and not self.at("|"):
                hi = self.parse_expr()
            rstmts: tuple[S.Stmt, ...] = ()
            if self.at("|"):
                self.advance()
                rstmts = self.stmts()
            self.expect(close)
            return cast(S.Expr, rng(t.line, t.col, first, hi, rstmts, **self._end(t)))
        items = [first]
        while self.at(","):
            self.advance()
            items.append(self.parse_expr())
        if self.at("|"):
            self.advance()
            stmts = self.stmts()
            self.expect(close)
            return cast(S.Expr, comp(t.line, t.col, tuple(items), stmts, **self._end(t)))
        self.expect(close)
        return cast(S.Expr, lit(t.line, t.col, tuple(items), **self._end(t)))

    # ------------------------------------------------------------ patterns
    def to_pat(self, e: S.Expr) -> S.Pat:
        pos: dict[str, Any] = {"end_line": e.end_line, "end_col": e.end_col, "file": e.file}
        if isinstance(e, S.Var):
            return S.PVar(e.line, e.col, e.name, **pos)
        if isinstance(e, S.Wildcard):
            return S.PWild(e.line, e.col, **pos)
        if isinstance(e, S.Lit):
            if e.kind == "string":
                assert isinstance(e.value, str)
                chars = tuple(S.PLit(e.line, e.col, c, "char", **pos) for c in e.value)
                return S.PSeq(e.line, e.col, chars, **pos)
            return S.PLit(e.line, e.col, e.value, e.kind, **pos)
        if (
            isinstance(e, S.UnOp)
            and e.op == "neg"
            and isinstance(e.operand, S.Lit)
            and e.operand.kind == "int"
        ):
            v = e.operand.value
            assert isinstance(v, int)
            return S.PLit(e.line, e.col, -v, "int", **pos)
        if isinstance(e, S.Paren):
            return self.to_pat(e.inner)
        if isinstance(e, S.Tuple):
            return S.PTuple(e.line, e.col, tuple(self.to_pat(i) for i in e.items), **pos)
        if isinstance(e, S.Dot):
            items: list[S.Pat] = []
            for part in (e.left, e.right):
                p = self.to_pat(part)
                if isinstance(p, S.PDot) and part is e.right:
                    items.extend(p.items)
                else:
                    items.append(p)
            return S.PDot(e.line, e.col, tuple(items), **pos)
        if isinstance(e, S.SeqLit):
            return S.PSeq(e.line, e.col, tuple(self.to_pat(i) for i in e.items), **pos)
        if isinstance(e, S.BinOp) and e.op == "^":
            return S.PConcat(e.line, e.col, self.to_pat(e.left), self.to_pat(e.right), **pos)
        if isinstance(e, S.SetLit) and len(e.items) <= 1:
            return S.PSet(e.line, e.col, tuple(self.to_pat(i) for i in e.items), **pos)
        if isinstance(e, S.DoublePatE):
            return S.PDouble(e.line, e.col, self.to_pat(e.left), self.to_pat(e.right), **pos)
        raise CspmSyntaxError("expected a pattern", self.file, e.line, e.col)


def _check_annotations(decls: list[S.Decl], file: str) -> None:
    """Each annotated name is annotated once and defined (as a value) in the same scope."""
    defined: set[str] = set()
    channels: set[str] = set()
    for d in decls:
        if isinstance(d, S.FunDecl | S.NameTypeDecl):
            defined.add(d.name)
        elif isinstance(d, S.PatDecl):
            stack: list[S.Pat] = [d.pat]
            while stack:
                p = stack.pop()
                if isinstance(p, S.PVar):
                    defined.add(p.name)
                elif isinstance(p, S.PTuple | S.PDot | S.PSeq | S.PSet):
                    stack.extend(p.items)
                elif isinstance(p, S.PConcat | S.PDouble):
                    stack.extend((p.left, p.right))
        elif isinstance(d, S.ChannelDecl):
            channels.update(d.names)
            defined.update(d.names)
        elif isinstance(d, S.DataTypeDecl):
            defined.update(c.name for c in d.clauses)
    seen: dict[str, S.AnnotDecl] = {}
    for d in decls:
        if isinstance(d, S.AnnotDecl):
            for n in d.names:
                if n in seen:
                    raise CspmSyntaxError(f"'{n}' has more than one type annotation", file, d.line, d.col)
                seen[n] = d
                if n not in defined:
                    raise CspmSyntaxError(
                        f"type annotation for '{n}' without a matching definition", file, d.line, d.col
                    )
    for d in decls:
        if isinstance(d, S.ChannelDecl) and len(d.names) > 1:
            owners = {id(seen[n]) for n in d.names if n in seen}
            if len(owners) > 1:
                raise CspmSyntaxError(
                    "channels declared together must be annotated together", file, d.line, d.col
                )


def _combine(decls: list[S.Decl]) -> list[S.Decl]:
    """Merge consecutive clauses of the same function into one FunDecl."""
    out: list[S.Decl] = []
    for d in decls:
        if (
            isinstance(d, S.FunDecl)
            and out
            and isinstance(out[-1], S.FunDecl)
            and out[-1].name == d.name
            and out[-1].clauses[0].groups
            and d.clauses[0].groups
        ):
            prev = out[-1]
            out[-1] = S.FunDecl(
                prev.line,
                prev.col,
                prev.name,
                prev.clauses + d.clauses,
                end_line=d.end_line,
                end_col=d.end_col,
            )
        else:
            out.append(d)
    return out


_LEVEL_FUNCS = (
    Parser.lvl_hide,
    Parser.lvl_interleave,
    Parser.lvl_par,
    Parser.lvl_intchoice,
    Parser.lvl_extchoice,
    Parser.lvl_interrupt,
    Parser.lvl_sliding,
    Parser.lvl_seq,
    Parser.lvl_prefix,
    Parser.lvl_dot,
    Parser.lvl_or,
    Parser.lvl_and,
    Parser.lvl_not,
    Parser.lvl_cmp,
    Parser.lvl_add,
    Parser.lvl_mul,
)
_DOT = 9
_NOT = 12
_REPL_BODY = 8  # replicated-operator bodies: a prefix-level expression
_MAX_BINARY = len(_LEVEL_FUNCS) - 1


def _check_no_patterns(node: object, file: str) -> None:
    """``_`` and ``@@`` may only appear in patterns."""
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, S.Wildcard | S.DoublePatE):
            what = "'_'" if isinstance(n, S.Wildcard) else "'@@'"
            raise CspmSyntaxError(f"{what} may only be used in a pattern", file, n.line, n.col)
        if isinstance(n, tuple):
            stack.extend(n)
        elif isinstance(n, S.Node) and not isinstance(n, S.Pat):
            stack.extend(v for k, v in vars(n).items() if isinstance(v, S.Node | tuple))


def parse(src: str, file: str = "<string>") -> S.ModuleFile:
    """Parse a CSPm script."""
    mf = Parser(src, file).parse_file()
    _check_no_patterns(mf.decls, file)
    if "Timed" in src:
        mf = dataclasses.replace(mf, decls=timed.expand(mf.decls))
    return mf


def parse_expression(src: str, file: str = "<expression>") -> S.Expr:
    p = Parser(src, file)
    p.layout = [0]
    e = p.parse_expr()
    t = p.peek()
    if t.kind != "eof":
        raise p.err("end of expression", t)
    _check_no_patterns(e, file)
    return e
