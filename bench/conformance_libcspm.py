"""libcspm conformance: how much of libcspm's own test corpus the front end handles.

``run_libcspm(root)`` walks ``root/{parser,typechecker,evaluator}/{should_pass,should_fail}``
(``root`` is ``.../conformance/libcspm/tests``) and returns per-folder counts:

* ``should_pass``: ``accepted`` / ``total``, and ``unsupported``: how many of the
  rejected files were rejected with an explicit "unsupported" error.
* ``should_fail``: ``rejected`` / ``total`` (``rejected_unsupported`` of them
  with an "unsupported" error).

Acceptance: ``parser`` -> the file parses; ``typechecker`` -> it loads (parse,
includes, type check); ``evaluator`` -> it loads and every top-level name
starting with ``test`` evaluates to ``true``; ``procTest*`` processes are
evaluated and their first states unfolded (errors count as rejection).

Run as a script to print the counts: ``python bench/conformance_libcspm.py [root]``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

from processors.csp.language import syntax as S
from processors.csp.language.errors import CspmError, CspmUnsupported
from processors.csp.language.parser import parse
from processors.csp.semantics import procs as P
from processors.csp.semantics.frontend import Module, load_file
from processors.csp.semantics.values import TRUE

DEFAULT_ROOT = (
    Path(os.environ.get("CSP_CONFORMANCE_DIR") or Path(__file__).resolve().parents[1] / ".." / "shared" / "conformance")
    / "libcspm"
    / "tests"
)
FOLDERS = ("parser", "typechecker", "evaluator")
FILE_BUDGET_S = 10.0


class _Timeout(Exception):
    pass


def _top_names(mod: Module) -> list[str]:
    names = []
    for d in mod.decls:
        if isinstance(d, S.FunDecl) and not d.clauses[0].groups:
            names.append(d.name)
    return names


def _check_evaluator(path: Path) -> None:
    mod = load_file(path, allow_include_outside=True)
    for name in _top_names(mod):
        if name.startswith("test"):
            v = mod.eval_value(S.Var(0, 0, name))
            if v != TRUE:
                raise CspmError(f"{name} evaluated to {v!r}, not true", str(path), 0, 0)
        elif name.startswith("procTest"):
            P.unfold(mod.eval_process(S.Var(0, 0, name)), 300)


def _attempt(folder: str, path: Path) -> tuple[bool, bool]:
    """(accepted, rejected-with-unsupported)."""
    try:
        if folder == "parser":
            parse(path.read_text(encoding="utf-8", errors="replace"), str(path))
        elif folder == "typechecker":
            load_file(path, allow_include_outside=True)
        else:
            _check_evaluator(path)
        return True, False
    except CspmUnsupported:
        return False, True
    except (CspmError, _Timeout, UnicodeDecodeError):
        return False, False


def _with_budget(folder: str, path: Path) -> tuple[bool, bool]:
    use_alarm = hasattr(signal, "setitimer") and _is_main_thread()
    if not use_alarm:
        return _attempt(folder, path)

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        raise _Timeout()

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, FILE_BUDGET_S)
    try:
        return _attempt(folder, path)
    except _Timeout:
        return False, False
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _is_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def run_libcspm(root: Path, details: bool = False) -> dict[str, Any]:
    """Per-folder counts over the libcspm test corpus rooted at ``root``."""
    out: dict[str, Any] = {}
    for folder in FOLDERS:
        for kind in ("should_pass", "should_fail"):
            d = root / folder / kind
            files = sorted(d.glob("*.csp")) if d.is_dir() else []
            acc = uns = 0
            failed: list[str] = []
            for f in files:
                ok, unsupported = _with_budget(folder, f)
                acc += ok
                uns += unsupported
                if (kind == "should_pass") != ok:
                    failed.append(f.name)
            key = f"{folder}/{kind}"
            if kind == "should_pass":
                out[key] = {"accepted": acc, "total": len(files), "unsupported": uns}
            else:
                out[key] = {"rejected": len(files) - acc, "total": len(files), "rejected_unsupported": uns}
            if details:
                out[key]["mismatches"] = failed
    return out


def main(argv: list[str]) -> int:
    """``conformance_libcspm.py [ROOT] [--details]``: print the counts as JSON."""
    details = "--details" in argv
    args = [a for a in argv[1:] if a != "--details"]
    root = Path(args[0]) if args else DEFAULT_ROOT
    res = run_libcspm(root.resolve(), details=details)
    print(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
