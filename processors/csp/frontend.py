"""CSPm front end: load a script (parse, includes, type check) into a :class:`Module`.

Only :func:`load_file` touches the file system (reading the script and its
``include`` files); everything else is pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from processors.csp import procs, syntax
from processors.csp.errors import CspmError, CspmEvalError
from processors.csp.values import Value

AssertKind = Literal["refines", "deadlock free", "divergence free", "deterministic", "has trace"]
Model = Literal["T", "F", "FD"]


@dataclass(frozen=True)
class Assertion:
    text: str
    kind: AssertKind
    model: Model | None
    negated: bool
    left: syntax.Expr
    right: syntax.Expr | None
    trace: syntax.Expr | None
    span: procs.Span


class Module:
    """A loaded CSPm script.

    ``channels`` maps each channel name to its payload field types, each a
    ``frozenset`` of values (see :mod:`processors.csp.values`); an untyped
    channel maps to ``()``.
    """

    def __init__(self) -> None:
        self.assertions: list[Assertion] = []
        self.channels: dict[str, tuple[frozenset[Value], ...]] = {}

    def eval_process(self, expr: syntax.Expr | str) -> procs.Proc:
        raise CspmEvalError("not implemented yet")

    def eval_value(self, expr: syntax.Expr | str) -> Value:
        raise CspmEvalError("not implemented yet")

    def process(self, name: str) -> procs.Proc:
        raise CspmEvalError("not implemented yet")

    def all_events(self) -> frozenset[str]:
        return frozenset()

    def event_values(self, event: str) -> tuple[str, tuple[Value, ...]]:
        raise CspmEvalError(f"not an event: {event}")

    def has_name(self, name: str) -> bool:
        return False


def load_source(text: str, filename: str = "<string>") -> Module:
    raise CspmError("not implemented yet", filename, 0, 0)


def load_file(path: str | Path) -> Module:
    p = Path(path)
    return load_source(p.read_text(encoding="utf-8"), str(p))
