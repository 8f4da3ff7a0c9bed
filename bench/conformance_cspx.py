"""Run the cspx problem suite against our CLI (``cspx`` replaced by ``csp``).

Each problem folder under ``../shared/conformance/cspx/problems/`` has a
``problem.yaml`` (the command) and an ``expect.yaml`` (constraints on exit
code, status and the ``checks`` of the Result JSON). The constraint language
is cspx's own (``scripts/run-problems``): ``eq``/``in``/``min``/``max``/
``contains``/``regex``; every expected check must match *some* actual check;
``trace_len`` is the length of ``counterexample.events``.

Overrides (documented in docs/conformance.md):

* P004 expects datatypes to be unsupported; they are supported here, so the
  problem must type-check (exit 0, status pass).
* P906 expects unsupported/error (cspx could not run it); its notes say the
  right verdict is ``fail`` (the implementation diverges), which we require.

Usage: ``python bench/conformance_cspx.py [--only P101] [--timeout-scale X] [--in-process]``.
By default each problem runs ``.venv/bin/csp`` as a subprocess (the real edge,
interpreter start-up included); ``--in-process`` invokes the Typer app in this
interpreter with the file arguments made absolute (what the test suite does).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
# the corpora live in ../shared/conformance; CSP_CONFORMANCE_DIR names another place (e.g. from a git worktree)
CONFORMANCE = Path(os.environ.get("CSP_CONFORMANCE_DIR") or ROOT.parent / "shared" / "conformance")
PROBLEMS = (CONFORMANCE / "cspx" / "problems").resolve()

OVERRIDES: dict[str, dict[str, Any]] = {
    "P004": {
        "exit_code": 0,
        "status": "pass",
        "checks": [{"name": "typecheck", "status": "pass"}],
    },
    "P906": {
        "exit_code": 1,
        "status": "fail",
        "checks": [
            {
                "name": {"eq": "refine"},
                "model": {"eq": "FD"},
                "status": {"eq": "fail"},
                "counterexample": {
                    "present": True,
                    "trace_len": {"eq": 1},
                    "tags": {"contains": ["refinement", "model:FD", "divergence_mismatch", "divergence"]},
                },
            }
        ],
    },
}
IGNORED_FIELDS = ("started_at", "finished_at", "duration_ms", "tool.git_sha")


@dataclass
class Outcome:
    problem: str
    suite: str
    ok: bool
    errors: list[str] = field(default_factory=list)
    exit_codes: list[int] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    seconds: float = 0.0
    overridden: bool = False


# --------------------------------------------------------------------------
# constraint matching (a port of cspx's scripts/run-problems)
# --------------------------------------------------------------------------


def match_int(actual: int, expect: Any) -> bool:
    if isinstance(expect, bool):
        return False
    if isinstance(expect, int):
        return actual == expect
    if not isinstance(expect, dict):
        return False
    if "eq" in expect and actual != expect["eq"]:
        return False
    if "min" in expect and actual < expect["min"]:
        return False
    if "max" in expect and actual > expect["max"]:
        return False
    return not ("in" in expect and actual not in expect["in"])


def match_string(actual: str, expect: Any) -> bool:
    if isinstance(expect, str):
        return actual == expect
    if not isinstance(expect, dict):
        return False
    if "eq" in expect and actual != expect["eq"]:
        return False
    if "contains" in expect and expect["contains"] not in actual:
        return False
    if "regex" in expect and not re.search(expect["regex"], actual):
        return False
    return not ("in" in expect and actual not in expect["in"])


def _str_field(obj: dict[str, Any], key: str) -> str:
    v = obj.get(key)
    return v if isinstance(v, str) else ""


def _int_field(obj: dict[str, Any], key: str) -> int:
    v = obj.get(key)
    return v if isinstance(v, int) and not isinstance(v, bool) else -1


def counterexample_matches(expect: dict[str, Any], actual: Any) -> bool:
    is_null = actual is None
    present = expect.get("present")
    if present is True and is_null:
        return False
    if present is False and not is_null:
        return False
    if not any(k in expect for k in ("trace_len", "tags", "is_minimized", "source_spans")):
        return True
    if not isinstance(actual, dict):
        return False
    if "trace_len" in expect:
        events = actual.get("events")
        n = len(events) if isinstance(events, list) else -1
        if n < 0 or not match_int(n, expect["trace_len"]):
            return False
    if "tags" in expect:
        tags = [t for t in actual.get("tags") or [] if isinstance(t, str)]
        want = expect["tags"]
        if "contains" in want and not all(t in tags for t in want["contains"]):
            return False
        if "equals" in want and sorted(tags) != sorted(want["equals"]):
            return False
    if "is_minimized" in expect:
        got = bool(actual.get("is_minimized", False))
        want_m = expect["is_minimized"]
        if isinstance(want_m, bool) and got != want_m:
            return False
        if isinstance(want_m, dict) and "eq" in want_m and got != want_m["eq"]:
            return False
    if "source_spans" in expect:
        spans = actual.get("source_spans")
        if not isinstance(spans, list):
            return False
        anys = expect["source_spans"].get("any") or []
        if not any(_span_matches(c, s) for c in anys for s in spans):
            return False
    return True


def _span_matches(expect: dict[str, Any], span: Any) -> bool:
    if not isinstance(span, dict):
        return False
    if "path" in expect:
        p = _str_field(span, "path")
        if not p or not match_string(p, expect["path"]):
            return False
    for key in ("start_line", "start_col", "end_line", "end_col"):
        if key in expect:
            v = _int_field(span, key)
            if v < 0 or not match_int(v, expect[key]):
                return False
    return True


def check_matches(expect: dict[str, Any], actual: Any) -> bool:
    if not isinstance(actual, dict):
        return False
    for key in ("name", "target", "model", "status"):
        if key in expect:
            v = _str_field(actual, key)
            if not v or not match_string(v, expect[key]):
                return False
    if "reason" in expect:
        reason = actual.get("reason")
        if not isinstance(reason, dict):
            return False
        for key in ("kind", "message"):
            if key in expect["reason"]:
                v = _str_field(reason, key)
                if not v or not match_string(v, expect["reason"][key]):
                    return False
    if "counterexample" in expect and not counterexample_matches(expect["counterexample"], actual.get("counterexample")):
        return False
    if "stats" in expect:
        stats = actual.get("stats")
        if not isinstance(stats, dict):
            return False
        for key in ("states", "transitions"):
            if key in expect["stats"]:
                n = _int_field(stats, key)
                if n < 0 or not match_int(n, expect["stats"][key]):
                    return False
    return True


def evaluate_run(expect: dict[str, Any], exit_code: int, result: Any) -> list[str]:
    errors: list[str] = []
    if "exit_code" in expect and not match_int(exit_code, expect["exit_code"]):
        errors.append(f"exit_code mismatch (actual {exit_code})")
    if result is None:
        if "status" in expect or "checks" in expect:
            errors.append("result JSON missing")
        return errors
    if "status" in expect:
        status = _str_field(result, "status") if isinstance(result, dict) else ""
        if not status or not match_string(status, expect["status"]):
            errors.append(f"status mismatch (actual {status or '-'})")
    if "checks" in expect:
        checks = result.get("checks") if isinstance(result, dict) else None
        if not isinstance(checks, list):
            errors.append("checks missing")
        else:
            for i, ce in enumerate(expect["checks"]):
                if not any(check_matches(ce, ca) for ca in checks):
                    errors.append(f"checks[{i}] not matched (expect {json.dumps(ce, ensure_ascii=False)})")
    return errors


def normalize(value: Any, ignore: list[str]) -> Any:
    """Drop volatile fields (at any depth, like cspx's runner)."""
    paths = [p.split(".") for p in (*IGNORED_FIELDS, *ignore)]

    def walk(v: Any) -> Any:
        if isinstance(v, dict):
            out = {}
            for k, child in v.items():
                if any(len(p) == 1 and p[0] == k for p in paths):
                    continue
                out[k] = walk(child)
            for p in paths:
                if len(p) > 1 and p[0] in out:
                    out[p[0]] = _drop(out[p[0]], p[1:])
            return out
        if isinstance(v, list):
            return [walk(x) for x in v]
        return v

    return walk(value)


def _drop(v: Any, path: list[str]) -> Any:
    if not isinstance(v, dict):
        return v
    if len(path) == 1:
        return {k: x for k, x in v.items() if k != path[0]}
    return {k: (_drop(x, path[1:]) if k == path[0] else x) for k, x in v.items()}


# --------------------------------------------------------------------------
# running
# --------------------------------------------------------------------------


def csp_executable() -> str:
    cand = Path(sys.executable).parent / "csp"
    return str(cand) if cand.exists() else "csp"


def problem_dirs(root: Path = PROBLEMS) -> list[Path]:
    return sorted(p for p in root.iterdir() if (p / "problem.yaml").exists())


def _invoke_in_process(cmd: list[str], cwd: Path, timeout: float) -> tuple[int, bytes]:
    """Run ``csp ARGS`` inside this interpreter (file arguments made absolute; no chdir).

    A run slower than ``timeout`` counts as killed (exit 124), like the subprocess path.
    """
    from typer.testing import CliRunner

    from gateway.cli import app

    args = [str(cwd / a) if (cwd / a).is_file() else a for a in cmd[1:]]
    t0 = time.perf_counter()
    res = CliRunner().invoke(app, args)
    if time.perf_counter() - t0 > timeout:
        return 124, b""
    return res.exit_code, res.stdout_bytes


def run_problem(pdir: Path, exe: str | None = None, timeout_scale: float = 1.0, in_process: bool = False) -> Outcome:
    spec = yaml.safe_load((pdir / "problem.yaml").read_text(encoding="utf-8"))
    expect = yaml.safe_load((pdir / "expect.yaml").read_text(encoding="utf-8"))
    pid = str(spec["id"])
    overridden = pid in OVERRIDES
    if overridden:
        expect = {**expect, **OVERRIDES[pid]}
    run = spec["run"]
    cmd = list(run["cmd"])
    if cmd and cmd[0] == "cspx":
        cmd[0] = exe or csp_executable()
    cwd = pdir / run["cwd"] if run.get("cwd") else pdir
    env = {**os.environ, **{str(k): str(v) for k, v in (run.get("env") or {}).items()}}
    timeout_ms = run.get("timeout_ms") or spec.get("timeout_ms")
    timeout = timeout_ms / 1000 * timeout_scale if timeout_ms else 120.0
    repeat = int(expect.get("repeat") or run.get("repeat") or 1)
    suite = str(spec.get("suite") or ("bench" if "bench" in (spec.get("tags") or []) else "fast"))

    errors: list[str] = []
    results: list[Any] = []
    out = Outcome(pid, suite, False, overridden=overridden)
    t0 = time.perf_counter()
    for i in range(1, repeat + 1):
        if in_process:
            code, stdout = _invoke_in_process(cmd, cwd, timeout)
        else:
            try:
                proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, timeout=timeout, check=False)
                code, stdout = proc.returncode, proc.stdout
            except subprocess.TimeoutExpired:
                code, stdout = 124, b""
        try:
            result: Any = json.loads(stdout)
        except ValueError:
            result = None
        out.exit_codes.append(code)
        out.statuses.append(str(result.get("status")) if isinstance(result, dict) else "-")
        errors += [f"run {i}: {e}" for e in evaluate_run(expect, code, result)]
        results.append(result)
    compare = expect.get("compare")
    if compare:
        if compare.get("kind") != "normalized_json_equal":
            errors.append(f"compare: unsupported kind {compare.get('kind')}")
        elif len(results) < 2 or any(r is None for r in results):
            errors.append("compare: needs >= 2 runs with result JSON")
        else:
            ignore = list(compare.get("ignore_fields") or [])
            first = normalize(results[0], ignore)
            if any(normalize(r, ignore) != first for r in results[1:]):
                errors.append("compare: normalized_json_equal mismatch")
    out.seconds = time.perf_counter() - t0
    out.errors = errors
    out.ok = not errors
    return out


def run_all(
    only: list[str] | None = None, timeout_scale: float = 1.0, root: Path = PROBLEMS, in_process: bool = False
) -> list[Outcome]:
    exe = csp_executable()
    outcomes = []
    for pdir in problem_dirs(root):
        if only and not any(pdir.name.startswith(o) for o in only):
            continue
        outcomes.append(run_problem(pdir, exe, timeout_scale, in_process))
    return outcomes


def summary(outcomes: list[Outcome]) -> dict[str, Any]:
    by_suite: dict[str, dict[str, int]] = {}
    for o in outcomes:
        s = by_suite.setdefault(o.suite, {"matched": 0, "total": 0})
        s["total"] += 1
        s["matched"] += int(o.ok)
    return {
        "matched": sum(o.ok for o in outcomes),
        "total": len(outcomes),
        "by_suite": by_suite,
        "failed": [o.problem for o in outcomes if not o.ok],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", action="append", help="problem id prefix (repeatable)")
    ap.add_argument("--timeout-scale", type=float, default=1.0, help="multiply every run.timeout_ms")
    ap.add_argument("--json", action="store_true", help="print the summary as JSON")
    ap.add_argument("--in-process", action="store_true", help="invoke the CLI in this interpreter (fast)")
    args = ap.parse_args(argv)
    outcomes = run_all(args.only, args.timeout_scale, in_process=args.in_process)
    for o in outcomes:
        mark = "PASS" if o.ok else "FAIL"
        extra = " (override)" if o.overridden else ""
        print(f"{mark} {o.problem} [{o.suite}] exit={o.exit_codes} status={o.statuses} {o.seconds:.2f}s{extra}")
        for e in o.errors:
            print(f"     {e}")
    s = summary(outcomes)
    if args.json:
        print(json.dumps(s, indent=2))
    else:
        print(f"cspx: {s['matched']}/{s['total']} problems match expect.yaml")
    return 0 if s["matched"] == s["total"] else 1


if __name__ == "__main__":
    sys.exit(main())
