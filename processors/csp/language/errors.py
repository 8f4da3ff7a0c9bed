"""Errors raised by the CSPm front end.

Every error carries a position; ``str(e)`` is ``"file:line:col: message"``.
"""

from __future__ import annotations


class CspmError(Exception):
    """Base class of CSPm front-end errors."""

    def __init__(self, message: str, file: str = "<string>", line: int = 0, col: int = 0) -> None:
        self.file = file
        self.line = line
        self.col = col
        self.message = message
        super().__init__(f"{file}:{line}:{col}: {message}")

    def __str__(self) -> str:
        if self.line <= 0:  # not tied to a source position (e.g. a process name given on the command line)
            return f"{self.file}: {self.message}"
        return f"{self.file}:{self.line}:{self.col}: {self.message}"


class CspmSyntaxError(CspmError):
    """Lexical or syntax error ("expected X, found Y")."""


class CspmTypeError(CspmError):
    """Static (type / scope / channel payload) error."""


class CspmEvalError(CspmError):
    """Runtime evaluation error, including runaway recursion."""


class CspmSelfDependency(CspmEvalError):
    """A value that depends on itself with no guard in between (``P = P``)."""


class CspmUnsupported(CspmError):
    """A construct outside the supported CSPm subset."""

    def __init__(self, construct: str, file: str = "<string>", line: int = 0, col: int = 0) -> None:
        self.construct = construct
        super().__init__(f"unsupported: {construct} at {line}:{col}", file, line, col)
