"""CSPm front end: load a script (parse, includes, type check) into a :class:`Module`.

Only :func:`load_file` touches the file system (reading the script and its
``include`` files, relative to the including file); everything else is pure.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

from processors.csp.language import syntax
from processors.csp.language.errors import CspmError, CspmEvalError, CspmSyntaxError
from processors.csp.language.modules import flatten_modules
from processors.csp.language.parser import parse, parse_expression
from processors.csp.semantics import procs
from processors.csp.semantics.evaluator import Evaluator
from processors.csp.semantics.typecheck import check_module
from processors.csp.semantics.values import Value, VDot, VName, render

AssertKind = Literal["refines", "deadlock free", "divergence free", "deterministic", "has trace"]
Model = Literal["T", "F", "FD"]

_RECURSION_LIMIT = 60000


@dataclass(frozen=True)
class Assertion:
    """One ``assert`` of the script.

    ``text`` is the assertion's source without ``assert`` (and without ``not``:
    see ``negated``), whitespace-normalised, e.g. ``"SPEC [T= IMPL"``. ``model``
    is ``None`` when the script gives none (FDR's default is FD for deadlock
    freedom and determinism). ``left`` is the spec of a refinement or the
    process of a property; ``right`` the implementation; ``trace`` the sequence
    of ``:[has trace]``.
    """

    text: str
    kind: AssertKind
    model: Model | None
    negated: bool
    left: syntax.Expr
    right: syntax.Expr | None
    trace: syntax.Expr | None
    span: procs.Span


def _guard(fn: Callable[[], object], file: str) -> object:
    """Run ``fn`` turning Python recursion overflow into a CspmEvalError."""
    if sys.getrecursionlimit() < _RECURSION_LIMIT:
        sys.setrecursionlimit(_RECURSION_LIMIT)
    try:
        return fn()
    except RecursionError:
        raise CspmEvalError("recursion too deep evaluating expression", file, 0, 0) from None


class Module:
    """A loaded CSPm script.

    ``channels`` maps each channel name to its payload field types: one
    ``frozenset`` of values per dotted field (see :mod:`processors.csp.semantics.values`;
    ints are ``int``, booleans ``VBool``, constructors ``VName``...). An
    untyped channel maps to ``()``. Channels whose field types are infinite
    (``Int``) are omitted.
    """

    def __init__(self, file: str, decls: tuple[syntax.Decl, ...]) -> None:
        self.file = file
        self.decls = decls
        self._ev = Evaluator(decls, file)
        self.assertions: list[Assertion] = []
        for d in decls:
            if isinstance(d, syntax.AssertDecl):
                span = procs.Span(d.file or file, d.line, d.col, d.end_line or d.line, d.end_col or d.col)
                self.assertions.append(
                    Assertion(
                        d.text,
                        cast(AssertKind, d.kind),
                        cast(Model | None, d.model),
                        d.negated,
                        d.left,
                        d.right,
                        d.trace,
                        span,
                    )
                )
        self._channels: dict[str, tuple[frozenset[Value], ...]] | None = None
        self._all_events: frozenset[str] | None = None
        self._event_values: dict[str, tuple[str, tuple[Value, ...]]] = {}
        self._parsed: dict[str, syntax.Expr] = {}
        self._keep: dict[int, syntax.Expr] = {}

    @property
    def channels(self) -> dict[str, tuple[frozenset[Value], ...]]:
        """Channel name -> field types (computed on first use: types may be large)."""
        if self._channels is None:
            chans: dict[str, tuple[frozenset[Value], ...]] = {}
            for c in self._ev.channels:
                try:
                    chans[c] = tuple(
                        self._ev.to_set(self._ev.eval_type(t, {}), t) for t in self._ev.field_types[c]
                    )
                except CspmError:
                    continue
            self._channels = chans
        return self._channels

    # ----------------------------------------------------------- evaluation
    def _expr(self, expr: syntax.Expr | str) -> syntax.Expr:
        if isinstance(expr, str):
            # Parsed expressions are kept: process terms are keyed by syntax node
            # identity, so a node must outlive the terms built from it.
            cached = self._parsed.get(expr)
            if cached is None:
                cached = parse_expression(expr, "<expression>")
                self._parsed[expr] = cached
            return cached
        self._keep.setdefault(id(expr), expr)
        return expr

    def eval_value(self, expr: syntax.Expr | str) -> Value:
        e = self._expr(expr)
        return _guard(lambda: self._ev.ev(e, {}), self.file)

    def eval_process(self, expr: syntax.Expr | str) -> procs.Proc:
        e = self._expr(expr)
        v = self.eval_value(e)
        if not isinstance(v, procs.Proc):
            raise CspmEvalError(f"expected a process, found {render(v)}", self.file, e.line, e.col)
        return v

    def process(self, name: str) -> procs.Proc:
        if not self.has_name(name):
            raise CspmEvalError(f"undefined process '{name}'", self.file, 0, 0)
        return self.eval_process(name)

    def has_name(self, name: str) -> bool:
        return name in self._ev.globals

    def definition_span(self, name: str) -> procs.Span | None:
        """Where the top-level ``name`` is defined (first clause to last), if it is."""
        for d in self.decls:
            if isinstance(d, syntax.FunDecl | syntax.NameTypeDecl) and d.name == name:
                return procs.Span(
                    d.file or self.file, d.line, d.col, d.end_line or d.line, d.end_col or d.col
                )
            if isinstance(d, syntax.ChannelDecl) and name in d.names:
                return procs.Span(
                    d.file or self.file, d.line, d.col, d.end_line or d.line, d.end_col or d.col
                )
        return None

    def all_events(self) -> frozenset[str]:
        """The ``Events`` set as canonical event strings (all channels must be finite)."""
        if self._all_events is None:
            evs = _guard(self._ev.all_events, self.file)
            assert isinstance(evs, list)
            self._all_events = frozenset(render(v) for v in evs)
        return self._all_events

    def event_values(self, event: str) -> tuple[str, tuple[Value, ...]]:
        """``"c.1.true"`` -> ``("c", (1, TRUE))``: the channel and its field values."""
        got = self._event_values.get(event)
        if got is not None:
            return got
        bad = CspmEvalError(f"'{event}' is not an event of this script", self.file, 0, 0)
        try:
            v = self.eval_value(self._expr(event))
        except CspmError:
            raise bad from None
        atoms = v.atoms if isinstance(v, VDot) else (v,)
        head = atoms[0]
        if not (isinstance(head, VName) and head.name in self._ev.channels):
            raise bad
        try:
            ok = self._ev.valid_event(head.name, v)
        except CspmError:
            ok = False
        if not ok:
            raise bad
        fields: list[Value] = []
        i = 1
        for desc in self._ev.field_descs(head.name):
            j = self._ev.check_value(desc, atoms, i)
            if j < 0:
                raise bad
            fields.append(atoms[i] if j == i + 1 else VDot(atoms[i:j]))
            i = j
        got = (head.name, tuple(fields))
        self._event_values[event] = got
        return got


MAX_SCRIPT_BYTES = 64 << 20


def read_script(path: str | Path) -> str:
    """The text of a script file: regular files only (not a device, FIFO or directory), at most 64 MiB.

    The file is opened non-blocking, so a FIFO is refused instead of waiting for a writer.
    """
    p = str(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    fd = os.open(p, flags)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise CspmError("not a regular file (scripts and includes must be regular files)", p, 0, 0)
        if st.st_size > MAX_SCRIPT_BYTES:
            raise CspmError(f"file too large ({st.st_size} bytes; at most {MAX_SCRIPT_BYTES})", p, 0, 0)
        with os.fdopen(fd, "rb", closefd=True) as f:
            fd = -1
            data = f.read(MAX_SCRIPT_BYTES + 1)
    finally:
        if fd >= 0:
            os.close(fd)
    if len(data) > MAX_SCRIPT_BYTES:
        raise CspmError(f"file too large (more than {MAX_SCRIPT_BYTES} bytes)", p, 0, 0)
    return data.decode("utf-8")


def _expand_includes(
    file: str,
    decls: tuple[syntax.Decl, ...],
    read: Callable[[str], str] | None,
    seen: tuple[str, ...],
    allow_outside: bool = False,
) -> tuple[syntax.Decl, ...]:
    out: list[syntax.Decl] = []
    for d in decls:
        if isinstance(d, syntax.IncludeDecl):
            if read is None:
                raise CspmSyntaxError("include is only available when loading a file", file, d.line, d.col)
            folder = Path(file).parent
            target = str(folder / d.path)
            if target in seen:
                raise CspmSyntaxError(f"include cycle through {d.path}", file, d.line, d.col)
            if not allow_outside and not Path(target).resolve().is_relative_to(folder.resolve()):
                raise CspmSyntaxError(
                    f"cannot include {d.path}: outside the folder of {Path(file).name} "
                    "(allow it with --allow-include-outside)",
                    file,
                    d.line,
                    d.col,
                )
            try:
                text = read(target)
            except OSError as exc:
                raise CspmSyntaxError(
                    f"cannot include {d.path}: {exc.strerror}", file, d.line, d.col
                ) from None
            except CspmError as exc:
                raise CspmSyntaxError(
                    f"cannot include {d.path}: {exc.message}", file, d.line, d.col
                ) from None
            sub = parse(text, target)
            out.extend(_expand_includes(target, sub.decls, read, seen + (target,), allow_outside))
        else:
            out.append(d)
    return tuple(out)


def _load(text: str, filename: str, read: Callable[[str], str] | None, allow_outside: bool = False) -> Module:
    def go() -> Module:
        mf = parse(text, filename)
        decls = _expand_includes(filename, mf.decls, read, (filename,), allow_outside)
        decls = flatten_modules(decls, filename)
        check_module(decls, filename)
        return Module(filename, decls)

    if sys.getrecursionlimit() < _RECURSION_LIMIT:
        sys.setrecursionlimit(_RECURSION_LIMIT)
    try:
        return go()
    except RecursionError:
        raise CspmSyntaxError("script is nested too deeply", filename, 0, 0) from None


def load_source(text: str, filename: str = "<string>") -> Module:
    """Parse and type check CSPm source text (``include`` is not available)."""
    return _load(text, filename, None)


def load_file(path: str | Path, allow_include_outside: bool = False) -> Module:
    """Read, parse (with includes) and type check a CSPm script.

    The script and its includes must be regular files; an include must lie
    under the including file's folder unless ``allow_include_outside``.
    """
    p = Path(path)
    try:
        text = read_script(p)
    except OSError as exc:
        raise CspmError(f"cannot read file: {exc.strerror}", str(p), 0, 0) from None
    return _load(text, str(p), read_script, allow_include_outside)
