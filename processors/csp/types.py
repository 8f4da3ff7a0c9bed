"""Type inference for CSPm (placeholder: filled in by the type checker)."""

from __future__ import annotations

from processors.csp import syntax as S


def infer_module(decls: tuple[S.Decl, ...], file: str) -> None:
    return None
