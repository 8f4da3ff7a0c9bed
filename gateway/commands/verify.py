"""``csp typecheck`` / ``check`` / ``refine`` / ``explore``: the FDR-style verifier at the edge.

Exit codes: 0 all assertions pass, 1 some assertion fails, 2 input error
(file, syntax, type, evaluation, state-space limit), 3 unsupported construct.
The JSON output (``--format json``) is documented in ``docs/cli-json.md``.
Heavy modules are imported inside the commands so that ``csp`` starts fast.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from processors.csp.check.verify import AssertionResult
    from processors.csp.semantics.frontend import Module
    from processors.csp.semantics.limits import Guard

SCHEMA_VERSION = "1.0"
EXIT_PASS, EXIT_FAIL, EXIT_INPUT, EXIT_UNSUPPORTED = 0, 1, 2, 3
# `csp explore` prints every state: a smaller default bound than for checks.
EXPLORE_MAX_STATES = 10_000


class Format(StrEnum):
    text = "text"
    json = "json"


class SemModel(StrEnum):
    T = "T"
    F = "F"
    FD = "FD"


class _InputError(Exception):
    """Bad input detected at the edge (file missing, bad option value)."""


# --------------------------------------------------------------------------
# run + report
# --------------------------------------------------------------------------


class _Run:
    """One CLI invocation: collects results and prints them in the chosen format."""

    def __init__(self, command: str, args: list[str], fmt: Format, inputs: list[Path]) -> None:
        self.guard: Guard | None = None
        self.command = command
        self.args = args
        self.fmt = fmt
        self.inputs = inputs
        self.started = datetime.now(UTC)
        self.t0 = time.perf_counter()

    def finish(
        self,
        results: list[AssertionResult],
        checks: list[dict[str, Any]] | None = None,
        error: dict[str, Any] | None = None,
        status_override: tuple[str, int] | None = None,
    ) -> None:
        from processors.csp.check.verify import check_json, result_json

        self.stop_limits()
        status, code = status_override or _overall(results)
        if self.fmt is Format.json:
            doc = {
                "schema_version": SCHEMA_VERSION,
                "tool": {"name": "csp", "version": _version()},
                "invocation": {"command": self.command, "args": self.args, "format": "json"},
                "inputs": [_input_json(p) for p in self.inputs],
                "status": status,
                "exit_code": code,
                "started_at": self.started.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "finished_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "duration_ms": int((time.perf_counter() - self.t0) * 1000),
                "error": error,
                "assertions": [result_json(r) for r in results],
                "checks": checks if checks is not None else [check_json(r) for r in results],
            }
            sys.stdout.write(json.dumps(doc, ensure_ascii=False, indent=2) + "\n")
        else:
            _print_human(results, error, status)
        raise typer.Exit(code)

    def start_limits(self, max_memory: str | None, timeout: float | None) -> None:
        """Enforce --max-memory / --timeout on the rest of the command (stopped by ``finish``)."""
        self.guard = _guard(max_memory, timeout).start()

    def stop_limits(self) -> None:
        if self.guard is not None:
            self.guard.stop()

    def fail_input(self, exc: BaseException, name: str) -> None:
        """Report an error that stopped the run before any assertion was checked."""
        from processors.csp.language.errors import CspmError, CspmSyntaxError, CspmTypeError, CspmUnsupported
        from processors.csp.semantics.limits import ResourceLimitExceeded

        self.stop_limits()
        if isinstance(exc, MemoryError) and self.guard is not None:
            exc = self.guard.memory_error()

        unsupported = isinstance(exc, CspmUnsupported)
        status, code = ("unsupported", EXIT_UNSUPPORTED) if unsupported else ("error", EXIT_INPUT)
        if isinstance(exc, CspmError):
            kind = (
                "unsupported"
                if unsupported
                else "syntax"
                if isinstance(exc, CspmSyntaxError)
                else "type"
                if isinstance(exc, CspmTypeError)
                else "limit"
                if isinstance(exc, ResourceLimitExceeded)
                else "evaluation"
            )
            where = exc.file if exc.file and not exc.file.startswith("<") else ""
            message = str(exc) if exc.line else (f"{where}: {exc.message}" if where else exc.message)
            err = {"kind": kind, "message": message, "file": exc.file, "line": exc.line, "col": exc.col}
        elif isinstance(exc, _InputError | OSError | UnicodeDecodeError):
            err = {"kind": "input", "message": _plain(exc), "file": None, "line": None, "col": None}
        elif isinstance(exc, RecursionError):
            err = {"kind": "evaluation", "message": "evaluation recursed too deeply", "file": None, "line": None, "col": None}
        else:
            err = {"kind": "internal", "message": f"{type(exc).__name__}: {exc}", "file": None, "line": None, "col": None}
        check = {
            "name": name,
            "model": None,
            "target": None,
            "status": status,
            "reason": {"kind": "unsupported_syntax" if unsupported else "invalid_input", "message": err["message"]},
            "counterexample": None,
            "stats": {"states": None, "transitions": None},
        }
        self.finish([], [check], err, (status, code))


def _overall(results: list[AssertionResult]) -> tuple[str, int]:
    statuses = {r.status for r in results}
    if "error" in statuses:
        return "error", EXIT_INPUT
    if "unsupported" in statuses:
        return "unsupported", EXIT_UNSUPPORTED
    if "fail" in statuses:
        return "fail", EXIT_FAIL
    return "pass", EXIT_PASS


def _plain(exc: BaseException) -> str:
    if isinstance(exc, FileNotFoundError):
        return f"{exc.filename}: no such file"
    if isinstance(exc, IsADirectoryError):
        return f"{exc.filename}: is a directory"
    if isinstance(exc, OSError):
        return f"{exc.filename}: {exc.strerror}"
    if isinstance(exc, UnicodeDecodeError):
        return "input is not UTF-8 text"
    return str(exc)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("enhanced-csp")
    except PackageNotFoundError:
        return "0"


def _input_json(p: Path) -> dict[str, Any]:
    try:
        digest: str | None = hashlib.sha256(p.read_bytes()).hexdigest()
    except OSError:
        digest = None
    return {"path": str(p), "sha256": digest}


def _guard(max_memory: str | None, timeout: float | None) -> Guard:
    from processors.csp.semantics.limits import Guard, Limits, default_max_memory, parse_size

    try:
        budget = parse_size(max_memory) if max_memory is not None else default_max_memory()
    except ValueError as exc:
        raise _InputError(f"--max-memory: {exc}") from None
    return Guard(Limits(budget, timeout if timeout else None))


def _load(path: Path, allow_include_outside: bool = False) -> Module:
    from processors.csp.semantics.frontend import load_file

    if not path.exists():
        raise _InputError(f"{path}: no such file")
    if path.is_dir():
        raise _InputError(f"{path}: is a directory")
    try:
        return load_file(path, allow_include_outside)
    except UnicodeDecodeError as exc:
        raise _InputError(f"{path}: not UTF-8 text (byte {exc.start})") from None


# --------------------------------------------------------------------------
# human output
# --------------------------------------------------------------------------


def _print_human(results: list[AssertionResult], error: dict[str, Any] | None, status: str) -> None:
    from rich.console import Console
    from rich.markup import escape

    out = Console(highlight=False, soft_wrap=True)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    if error is not None:
        label = "unsupported" if error["kind"] == "unsupported" else "error"
        err.print(f"[bold red]{label}:[/] {escape(error['message'])}")
        return
    style = {"pass": "green", "fail": "red", "error": "yellow", "unsupported": "magenta"}
    mark = {"pass": "✔", "fail": "✘", "error": "!", "unsupported": "?"}
    for r in results:
        stats = ""
        if r.states is not None:
            stats = f" [dim]({r.states} states, {r.transitions} transitions, {r.seconds:.2f}s)[/]"
        out.print(f"[{style[r.status]}]{mark[r.status]} {r.status:<4}[/] {escape(r.text)}{stats}")
        if r.message and r.status != "pass":
            out.print(f"    {escape(r.message)}")
    for r in results:
        f = r.failure
        if f is None:
            continue
        out.print()
        out.print(f"[bold]Counterexample[/] for [bold]{escape(r.text)}[/] ({f.kind.replace('_', ' ')}):")
        trace = ", ".join(f.trace)
        out.print(f"  trace:      <{escape(trace)}>")
        if f.kind == "trace" and f.event is not None:
            out.print(f"  the implementation can do [bold]{escape(f.event)}[/] where the specification cannot")
        if f.kind == "missing_trace" and f.event is not None:
            out.print(f"  [bold]{escape(f.event)}[/] cannot follow this trace")
        if f.divergence:
            out.print("  then:       diverges (performs τ forever)")
            if f.loop:
                out.print(f"  τ-loop:     {escape(' -τ-> '.join((*f.loop, f.loop[0])))}")
        if f.refusal is not None and not f.divergence:
            out.print(f"  refuses:    {{{escape(', '.join(f.refusal))}}}")
        if f.accepted is not None and f.kind in ("refusal", "nondeterminism", "deadlock"):
            out.print(f"  accepts:    {{{escape(', '.join(f.accepted))}}}")
        if f.spec_acceptances:
            accs = " or ".join("{" + ", ".join(a) + "}" for a in f.spec_acceptances)
            out.print(f"  spec must accept one of: {escape(accs)}")
        if f.state is not None:
            out.print(f"  state:      {escape(f.state)}")
        for s in f.spans:
            out.print(f"  at {escape(str(s))}")
    if len(results) > 1:
        counts = {k: sum(r.status == k for r in results) for k in ("pass", "fail", "error", "unsupported")}
        parts = [f"{v} {k}" for k, v in counts.items() if v]
        out.print(f"\n[bold {style.get(status, 'white')}]{len(results)} assertions: {', '.join(parts)}[/]")


# --------------------------------------------------------------------------
# commands
# --------------------------------------------------------------------------


def register(app: typer.Typer) -> None:
    app.command("typecheck")(typecheck)
    app.command("check")(check)
    app.command("refine")(refine)
    app.command("explore")(explore)


FormatOpt = Annotated[Format, typer.Option("--format", help="Output format: text or json (docs/cli-json.md).")]
MaxStatesOpt = Annotated[
    int | None, typer.Option("--max-states", help="Stop with an error past this many states (default: no limit; a search stops with an error before memory runs out).", min=1)
]
FileArg = Annotated[Path, typer.Argument(help="CSPm script")]
MaxMemoryOpt = Annotated[
    str | None,
    typer.Option(
        "--max-memory",
        help="Stop with an error when the process uses more memory than this (e.g. 512M, 4G; "
        "default: 75% of the machine's memory).",
    ),
]
TimeoutOpt = Annotated[
    float | None,
    typer.Option("--timeout", help="Stop with an error after this many seconds (default: no limit).", min=0.0),
]
IncludeOutsideOpt = Annotated[
    bool,
    typer.Option(
        "--allow-include-outside",
        help="Allow `include` of files outside the including file's folder (refused by default).",
    ),
]


def _power_of_two(value: int | None) -> int | None:
    if value is not None and (value < 1 or value & (value - 1)):
        raise typer.BadParameter(f"must be a power of two (1, 2, 4, ...), not {value}")
    return value


WorkersOpt = Annotated[
    int | None,
    typer.Option(
        "--workers",
        help="Processes for the on-the-fly refinement checks, a power of two; the frontier is partitioned "
        "by state hash (default: the usable cores that the 1-minute load average leaves free, at most 2).",
        callback=_power_of_two,
    ),
]


def typecheck(
    file: FileArg,
    fmt: FormatOpt = Format.text,
    max_memory: MaxMemoryOpt = None,
    timeout: TimeoutOpt = None,
    allow_include_outside: IncludeOutsideOpt = False,
) -> None:
    """Parse and type-check a CSPm script."""
    run = _Run("typecheck", [str(file)], fmt, [file])
    try:
        run.start_limits(max_memory, timeout)
        module = _load(file, allow_include_outside)
    except Exception as exc:  # noqa: BLE001 - every failure becomes a clear report, never a traceback
        run.fail_input(exc, "typecheck")
        return
    run.stop_limits()
    if fmt is Format.text:
        from rich.console import Console
        from rich.markup import escape

        n = len(module.assertions)
        Console(highlight=False).print(
            f"[green]✔[/] {escape(str(file))}: parsed and type-checked ({n} assertion{'s' if n != 1 else ''})"
        )
        raise typer.Exit(EXIT_PASS)
    check = {
        "name": "typecheck",
        "model": None,
        "target": None,
        "status": "pass",
        "counterexample": None,
        "stats": {"states": None, "transitions": None},
    }
    run.finish([], [check])


def check(
    file: FileArg,
    assert_: Annotated[
        str | None,
        typer.Option(
            "--assert", help='"deadlock free", "divergence free" or "deterministic" (optionally with " [F]"/" [FD]")'
        ),
    ] = None,
    all_assertions: Annotated[
        bool, typer.Option("--all-assertions", help="Check every assert in the file (the default).")
    ] = False,
    process: Annotated[str | None, typer.Option("--process", help="Process (name or expression) to check.")] = None,
    model: Annotated[SemModel | None, typer.Option("--model", help="Semantic model for --assert or --process: F or FD (default: FD).")] = None,  # fmt: skip
    fmt: FormatOpt = Format.text,
    max_states: MaxStatesOpt = None,
    max_memory: MaxMemoryOpt = None,
    timeout: TimeoutOpt = None,
    allow_include_outside: IncludeOutsideOpt = False,
    workers: WorkersOpt = None,
) -> None:
    """Check assertions: every `assert` in FILE (default), one property with --assert,
    or all three properties of --process P."""
    args = [str(file)] + (["--assert", assert_] if assert_ else []) + (["--process", process] if process else [])
    run = _Run("check", args, fmt, [file])
    try:
        run.start_limits(max_memory, timeout)
        from processors.csp.check.compile import DEFAULT_MAX_STATES
        from processors.csp.check.verify import check_property, run_module

        limit = max_states or DEFAULT_MAX_STATES
        if model is not None and model.value == "T" and (assert_ is not None or process is not None):
            raise _InputError(
                "--model T applies to refinement only; deadlock freedom and determinism are checked in F or FD"
            )
        module = _load(file, allow_include_outside)
        if assert_ is not None:
            kind, m = _parse_property(assert_)
            results = [check_property(module, kind, process, (model.value if model else None) or m, limit, workers)]
        elif process is not None and not all_assertions:
            m = model.value if model else None
            kinds = ("deadlock free", "divergence free", "deterministic")
            results = [check_property(module, k, process, m, limit, workers) for k in kinds]
        else:  # every assertion of the file (the default, and --all-assertions)
            results = run_module(module, limit, workers)
            if not module.assertions:
                raise _InputError(f"{file}: no assertions to check (use --assert with --process)")
    except Exception as exc:  # noqa: BLE001
        run.fail_input(exc, "check")
        return
    run.finish(results)


def _parse_property(text: str) -> tuple[str, str | None]:
    words = " ".join(text.replace("[", " [").split())
    model = None
    for m in ("FD", "F"):
        if words.endswith(f"[{m}]"):
            model = m
            words = words[: -len(m) - 2].strip()
            break
    if words not in ("deadlock free", "divergence free", "deterministic"):
        raise _InputError(f'--assert must be "deadlock free", "divergence free" or "deterministic", not {text!r}')
    return words, model


def refine(
    spec_file: Annotated[Path, typer.Argument(help="CSPm script defining the specification")],
    impl_file: Annotated[Path, typer.Argument(help="CSPm script defining the implementation")],
    model: Annotated[SemModel, typer.Option("--model", help="T, F or FD")],
    spec: Annotated[str, typer.Option("--spec", help="Specification process in SPEC_FILE.")] = "SPEC",
    impl: Annotated[str, typer.Option("--impl", help="Implementation process in IMPL_FILE.")] = "IMPL",
    fmt: FormatOpt = Format.text,
    max_states: MaxStatesOpt = None,
    max_memory: MaxMemoryOpt = None,
    timeout: TimeoutOpt = None,
    allow_include_outside: IncludeOutsideOpt = False,
    workers: WorkersOpt = None,
) -> None:
    """Check SPEC [M= IMPL with SPEC from SPEC_FILE and IMPL from IMPL_FILE."""
    run = _Run("refine", ["--model", model.value, str(spec_file), str(impl_file)], fmt, [spec_file, impl_file])
    try:
        run.start_limits(max_memory, timeout)
        from processors.csp.check.compile import DEFAULT_MAX_STATES
        from processors.csp.check.verify import check_refinement

        spec_module = _load(spec_file, allow_include_outside)
        impl_module = _load(impl_file, allow_include_outside)
        result = check_refinement(
            spec_module, impl_module, model.value, spec, impl, max_states or DEFAULT_MAX_STATES, workers
        )
    except Exception as exc:  # noqa: BLE001
        run.fail_input(exc, "refine")
        return
    run.finish([result])


def _dot_str(text: str) -> str:
    """A DOT quoted string: UTF-8 kept as is (Graphviz has no \\u escapes), quotes and backslashes escaped."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def explore(
    file: FileArg,
    proc: Annotated[str, typer.Argument(help="Process name or expression")],
    dot: Annotated[bool, typer.Option("--dot", help="Print the LTS as Graphviz DOT.")] = False,
    max_states: MaxStatesOpt = None,
    max_memory: MaxMemoryOpt = None,
    timeout: TimeoutOpt = None,
    allow_include_outside: IncludeOutsideOpt = False,
    out_fmt: Annotated[str, typer.Option(
        "--format", help="text | json | csv (csv: a header row, then one row per state, its transitions "
        "JSON-encoded); not with --dot")] = "text",
) -> None:
    """Print the states and transitions of a process (optionally as DOT)."""
    from rich.console import Console
    from rich.markup import escape

    from gateway.commands.output import emit, fmt_of

    out_fmt = fmt_of(out_fmt)
    err = Console(stderr=True, highlight=False)
    if dot and out_fmt != "text":
        err.print(f"[bold red]error:[/] --dot and --format {out_fmt}: use one of them")
        raise typer.Exit(EXIT_INPUT)
    guard: Guard | None = None
    try:
        guard = _guard(max_memory, timeout).start()
        from processors.csp.check.compile import explore_terms
        from processors.csp.check.verify import named_process

        module = _load(file, allow_include_outside)
        named = named_process(module, proc)
        lts = explore_terms(named.proc, max_states or EXPLORE_MAX_STATES).lts
        guard.stop()
    except Exception as exc:  # noqa: BLE001
        from processors.csp.language.errors import CspmUnsupported

        if guard is not None:
            guard.stop()
            if isinstance(exc, MemoryError):
                exc = guard.memory_error()

        err.print(f"[bold red]error:[/] {escape(_plain(exc) if isinstance(exc, OSError) else str(exc))}")
        raise typer.Exit(EXIT_UNSUPPORTED if isinstance(exc, CspmUnsupported) else EXIT_INPUT) from None
    names = lts.state_names or tuple(str(i) for i in range(lts.num_states))
    if dot:
        lines = [f"digraph {_dot_str(proc)} {{", "  rankdir=LR;", '  init [shape=point];', "  init -> s0;"]
        for s in range(lts.num_states):
            lines.append(f"  s{s} [label={_dot_str(names[s])}];")
        for s in range(lts.num_states):
            for lab, t in lts.successors(s):
                lines.append(f"  s{s} -> s{t} [label={_dot_str(lts.events[lab])}];")
        lines.append("}")
        sys.stdout.write("\n".join(lines) + "\n")
        return
    if out_fmt != "text":
        rows = [{"state": f"s{s}", "name": names[s],
                 "transitions": [{"event": lts.events[lab], "target": f"s{t}"} for lab, t in lts.successors(s)]}
                for s in range(lts.num_states)]  # fmt: skip
        if out_fmt == "csv":
            emit(out_fmt, rows)
        else:
            emit(out_fmt, {"process": proc, "states": lts.num_states, "transitions": lts.num_transitions,
                           "lts": rows})  # fmt: skip
        return
    out = Console(highlight=False, soft_wrap=True)
    out.print(f"[bold]{escape(proc)}[/]: {lts.num_states} states, {lts.num_transitions} transitions")
    for s in range(lts.num_states):
        out.print(f"s{s}: {escape(names[s])}")
        for lab, t in lts.successors(s):
            out.print(f"    --{escape(lts.events[lab])}--> s{t}")
