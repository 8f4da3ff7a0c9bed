"""CSPm lexer: source text -> tokens with positions.

Comments (``--`` to end of line, nested ``{- -}``) are dropped. Each token
records whether it is the first token on its line (``bol``); the parser uses
that together with the column for CSPm's layout rule (a declaration ends
where a new line starts at or left of the declaration block's column).
"""

from __future__ import annotations

from dataclasses import dataclass

from processors.csp.language.errors import CspmSyntaxError

KEYWORDS = frozenset(
    {
        "channel",
        "datatype",
        "nametype",
        "subtype",
        "assert",
        "not",
        "and",
        "or",
        "if",
        "then",
        "else",
        "let",
        "within",
        "include",
        "transparent",
        "external",
        "true",
        "false",
        "module",
        "exports",
        "endmodule",
        "instance",
        "timed",
        "print",
        "Timed",
    }
)

# Longest first.
OPERATORS = (
    "[FD=",
    "[VD=",
    "[RD=",
    "[F=",
    "[T=",
    "[R=",
    "[V=",
    "[M=",
    "|~|",
    "|||",
    "<->",
    "[|>",
    "[+",
    "+]",
    "/+",
    "+\\",
    "[|",
    "|]",
    "[[",
    "]]",
    "[]",
    "[>",
    "|>",
    "||",
    "{|",
    "|}",
    "(|",
    "|)",
    "|\\",
    "->",
    "<-",
    "<=",
    ">=",
    "==",
    "!=",
    "..",
    "/\\",
    "\\\\",
    "@@",
    "::",
    "=>",
    "[",
    "]",
    "(",
    ")",
    "{",
    "}",
    "<",
    ">",
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
    "_",
    "~",
)

# Python converts at most 4300 digits (sys.get_int_max_str_digits); longer literals are refused here.
MAX_INT_DIGITS = 4300

IDENT_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
IDENT_CHARS = IDENT_START | frozenset("0123456789'")


@dataclass(frozen=True)
class Token:
    kind: str  # "int" | "ident" | "kw" | "op" | "char" | "string" | "eof"
    text: str
    line: int
    col: int
    bol: bool  # first token on its line
    end_line: int
    end_col: int

    def describe(self) -> str:
        if self.kind == "eof":
            return "end of file"
        return repr(self.text)


def _skip_block_comment(src: str, i: int, line: int, col: int, file: str) -> tuple[int, int, int]:
    depth = 0
    start = (line, col)
    n = len(src)
    while i < n:
        if src.startswith("{-", i):
            depth += 1
            i += 2
            col += 2
        elif src.startswith("-}", i):
            depth -= 1
            i += 2
            col += 2
            if depth == 0:
                return i, line, col
        elif src[i] == "\n":
            i += 1
            line += 1
            col = 1
        else:
            i += 1
            col += 1
    raise CspmSyntaxError("unterminated comment '{-'", file, start[0], start[1])


def tokenize(src: str, file: str = "<string>") -> list[Token]:
    toks: list[Token] = []
    i, line, col = 0, 1, 1
    n = len(src)
    bol = True
    while i < n:
        ch = src[i]
        if ch == "\n":
            i += 1
            line += 1
            col = 1
            bol = True
            continue
        if ch in " \t\r\f":
            i += 1
            col += 8 - ((col - 1) % 8) if ch == "\t" else 1
            continue
        if src.startswith("--", i):
            while i < n and src[i] != "\n":
                i += 1
            continue
        if src.startswith("{-", i):
            i, line, col = _skip_block_comment(src, i, line, col, file)
            continue
        sl, sc = line, col
        if ch.isdigit():
            j = i
            while j < n and src[j].isdigit():
                j += 1
            text = src[i:j]
            kind = "int"
            if j - i > MAX_INT_DIGITS:
                raise CspmSyntaxError(
                    f"integer literal of {j - i} digits is too long (at most {MAX_INT_DIGITS})", file, sl, sc
                )
        elif ch in IDENT_START and not (ch == "_" and (i + 1 >= n or src[i + 1] not in IDENT_CHARS)):
            j = i
            while j < n and src[j] in IDENT_CHARS:
                j += 1
            text = src[i:j]
            kind = "kw" if text in KEYWORDS else "ident"
        elif ch == '"':
            j = i + 1
            buf: list[str] = []
            while j < n and src[j] != '"':
                if src[j] == "\n":
                    raise CspmSyntaxError("unterminated string literal", file, sl, sc)
                if src[j] == "\\" and j + 1 < n:
                    buf.append({"n": "\n", "t": "\t"}.get(src[j + 1], src[j + 1]))
                    j += 2
                    continue
                buf.append(src[j])
                j += 1
            if j >= n:
                raise CspmSyntaxError("unterminated string literal", file, sl, sc)
            j += 1
            toks.append(Token("string", "".join(buf), sl, sc, bol, sl, sc + (j - i)))
            col += j - i
            i = j
            bol = False
            continue
        elif (
            ch == "'"
            and i + 2 < n
            and (src[i + 2] == "'" or (src[i + 1] == "\\" and i + 3 < n and src[i + 3] == "'"))
        ):
            if src[i + 1] == "\\":
                c = {"n": "\n", "t": "\t"}.get(src[i + 2], src[i + 2])
                j = i + 4
            else:
                c = src[i + 1]
                j = i + 3
            toks.append(Token("char", c, sl, sc, bol, sl, sc + (j - i)))
            col += j - i
            i = j
            bol = False
            continue
        else:
            for op in OPERATORS:
                if op == "(|" and i + 2 < n and src[i + 2] in "|~":
                    # "(|||", "(||", "(|~|": a parenthesised replicated operator, not the map bracket
                    continue
                if src.startswith(op, i):
                    text = op
                    j = i + len(op)
                    kind = "op"
                    break
            else:
                raise CspmSyntaxError(f"unexpected character {ch!r}", file, sl, sc)
        toks.append(Token(kind, text, sl, sc, bol, sl, sc + (j - i)))
        col += j - i
        i = j
        bol = False
    toks.append(Token("eof", "", line, col, True, line, col))
    return toks
