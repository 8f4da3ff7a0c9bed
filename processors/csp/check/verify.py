"""Run CSPm assertions: evaluate, compile, check, and produce result records.

The records are plain data (:class:`AssertionResult`); :func:`result_json`
renders one in the stable JSON schema of ``docs/cli-json.md``. No file I/O:
callers load modules with the front end and pass them in.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from processors.csp.check import checker
from processors.csp.check import compile as C
from processors.csp.check.budget import MemoryBudget, MemoryExhausted
from processors.csp.check.compile import DEFAULT_MAX_STATES, StateSpaceLimit, compile_process
from processors.csp.language.errors import CspmError, CspmEvalError, CspmUnsupported
from processors.csp.semantics import procs as P
from processors.csp.semantics.frontend import Assertion, Module
from processors.csp.semantics.lts import LTS, TAU_NAME
from processors.csp.semantics.operational import fire, normalise, spans

Status = Literal["pass", "fail", "error", "unsupported"]
PROPERTY_KINDS = ("deadlock free", "divergence free", "deterministic")
# Semantic model FDR uses when an assertion does not name one.
DEFAULT_PROPERTY_MODEL = "FD"


@dataclass(frozen=True)
class SourceSpan:
    path: str
    start_line: int
    start_col: int
    end_line: int
    end_col: int

    @staticmethod
    def of(span: P.Span) -> SourceSpan:
        return SourceSpan(span.file, span.line, span.col, span.end_line, span.end_col)

    def __str__(self) -> str:
        return f"{self.path}:{self.start_line}:{self.start_col}"


@dataclass(frozen=True)
class Failure:
    """A counterexample in terms of the CSPm source."""

    kind: checker.Kind
    trace: tuple[str, ...]
    refusal: tuple[str, ...] | None
    divergence: bool
    event: str | None
    accepted: tuple[str, ...] | None
    spec_acceptances: tuple[tuple[str, ...], ...]
    spans: tuple[SourceSpan, ...]
    model: str | None
    state: str | None = None  # description of the (implementation) state where it shows
    loop: tuple[str, ...] = ()  # for divergences: the states of a τ-cycle (descriptions, when known)

    def tags(self) -> list[str]:
        """cspx-style classification tags."""
        tags: list[str] = []
        if self.kind == "deadlock":
            tags += ["deadlock", "kind:deadlock"]
        elif self.kind == "divergence":
            tags += ["divergence", "kind:divergence"]
        elif self.kind == "nondeterminism":
            tags += ["nondeterminism", "kind:nondeterminism"]
        elif self.kind == "missing_trace":
            tags += ["missing_trace", "kind:missing_trace"]
        else:
            tags += ["refinement"]
            if self.model:
                tags.append(f"model:{self.model}")
            if self.kind == "trace":
                tags += ["trace_mismatch", "kind:trace"]
            elif self.kind == "refusal":
                tags += ["refusal_mismatch", "kind:refusal"]
            else:
                tags += ["divergence_mismatch", "divergence", "kind:divergence"]
        if self.refusal:
            tags += [f"refuse:{e}" for e in self.refusal]
        if self.event is not None and self.kind in ("trace", "missing_trace"):
            tags.append(f"event:{self.event}")
        if self.spans:
            tags.append("explained")
        return tags


@dataclass(frozen=True)
class AssertionResult:
    text: str  # the assertion, e.g. "System :[deadlock free [F]]"
    name: Literal["check", "refine"]
    kind: str  # deadlock free | divergence free | deterministic | refines | has trace
    model: str | None
    target: str
    status: Status
    failure: Failure | None = None
    message: str | None = None  # why the status is error / unsupported
    states: int | None = None
    transitions: int | None = None
    seconds: float = 0.0
    error_at: SourceSpan | None = None
    spec_states: int | None = None  # refinements: states of the specification LTS


# --------------------------------------------------------------------------
# entry points
# --------------------------------------------------------------------------


def run_module(
    module: Module, max_states: int = DEFAULT_MAX_STATES, workers: int | None = None
) -> list[AssertionResult]:
    """Every assertion of the module, in file order (each process is compiled once).
    ``workers``: processes for the on-the-fly checks (None: :func:`default_workers`)."""
    comp = Compiler(max_states, workers=workers)
    return [run_assertion(module, a, max_states, comp) for a in module.assertions]


def run_assertion(
    module: Module, a: Assertion, max_states: int = DEFAULT_MAX_STATES, compiler: Compiler | None = None
) -> AssertionResult:
    comp = compiler or Compiler(max_states)
    text = assertion_text(a.text)
    if a.negated and not text.startswith("not "):
        text = "not " + text
    name: Literal["check", "refine"] = "refine" if a.kind == "refines" else "check"
    target = text

    def work() -> tuple[checker.CheckResult, Failure | None]:
        left = named_process(module, a.left)
        if a.kind == "refines":
            if a.right is None:
                raise CspmEvalError("refinement assertion without a right-hand side")
            right = named_process(module, a.right)
            model = a.model or "FD"
            return _refine(left, right, model, comp)
        if a.kind == "has trace":
            if a.trace is None:
                raise CspmEvalError("has-trace assertion without a trace")
            return _has_trace(left, _trace_events(module, a.trace), comp)
        return _property(left, a.kind, a.model or DEFAULT_PROPERTY_MODEL, comp)

    res = _timed(text, name, a.kind, a.model if a.kind == "refines" else a.model, target, work)
    if a.negated and res.status in ("pass", "fail"):
        flipped: Status = "fail" if res.status == "pass" else "pass"
        return AssertionResult(
            res.text, res.name, res.kind, res.model, res.target, flipped, None,
            "negated assertion: the property holds" if flipped == "fail" else None,
            res.states, res.transitions, res.seconds,
        )  # fmt: skip
    return res


def check_property(
    module: Module,
    kind: str,
    process: str | None = None,
    model: str | None = None,
    max_states: int = DEFAULT_MAX_STATES,
    workers: int | None = None,
) -> AssertionResult:
    """``csp check --assert KIND [--process P]``.

    Without ``process`` the target of the last ``KIND`` assertion in the file is
    checked (in that assertion's model), as cspx does.
    """
    if kind not in PROPERTY_KINDS:
        raise CspmEvalError(f"unknown property {kind!r} (expected one of: {', '.join(PROPERTY_KINDS)})")
    chosen: Assertion | None = None
    if process is None:
        for a in reversed(module.assertions):
            if a.kind == kind and not a.negated:
                chosen = a
                break
        if chosen is None:
            raise CspmEvalError(
                f"no '{kind}' assertion in the file: name the process with --process",
                str(getattr(module, "file", "")),
            )
    m = model or (chosen.model if chosen is not None else None) or DEFAULT_PROPERTY_MODEL
    label = (
        process
        if process is not None
        else assertion_text(chosen.text).split(":[")[0].strip()
        if chosen
        else "?"
    )
    text = f"{label} :[{kind} [{m}]]"

    def work() -> tuple[checker.CheckResult, Failure | None]:
        if chosen is not None:
            proc = named_process(module, chosen.left)
        else:
            assert process is not None
            proc = named_process(module, process)
        return _property(proc, kind, m, Compiler(max_states, workers=workers))

    return _timed(text, "check", kind, m, kind, work)


def check_refinement(
    spec_module: Module,
    impl_module: Module,
    model: str,
    spec: str = "SPEC",
    impl: str = "IMPL",
    max_states: int = DEFAULT_MAX_STATES,
    workers: int | None = None,
) -> AssertionResult:
    """``csp refine --model M SPEC_FILE IMPL_FILE``: ``SPEC [M= IMPL`` across two modules."""
    if model not in ("T", "F", "FD"):
        raise CspmEvalError(f"unknown semantic model {model!r} (expected T, F or FD)")
    text = f"{spec} [{model}= {impl}"

    def work() -> tuple[checker.CheckResult, Failure | None]:
        left = named_process(spec_module, spec)
        right = named_process(impl_module, impl)
        return _refine(left, right, model, Compiler(max_states, workers=workers))

    return _timed(text, "refine", "refines", model, text, work)


def error_result(text: str, name: Literal["check", "refine"], kind: str, exc: Exception) -> AssertionResult:
    """A record for an assertion that could not be checked."""
    status: Status = "unsupported" if isinstance(exc, CspmUnsupported) else "error"
    at = None
    if isinstance(exc, CspmError) and exc.line:
        at = SourceSpan(exc.file, exc.line, exc.col, exc.line, exc.col)
    message = exc.message if isinstance(exc, CspmError) else str(exc)
    if isinstance(exc, CspmError) and exc.line:
        message = f"{exc.file}:{exc.line}:{exc.col}: {exc.message}"
    return AssertionResult(text, name, kind, None, text, status, None, message, error_at=at)


def assertion_text(text: str) -> str:
    """The assertion without ``assert`` and with whitespace collapsed."""
    t = " ".join(text.split())
    return t[len("assert ") :] if t.startswith("assert ") else t


# --------------------------------------------------------------------------
# the checks
# --------------------------------------------------------------------------

Work = Callable[[], tuple[checker.CheckResult, "Failure | None"]]


def _timed(
    text: str, name: Literal["check", "refine"], kind: str, model: str | None, target: str, work: Work
) -> AssertionResult:
    t0 = time.perf_counter()
    try:
        res, failure = work()
    except (CspmError, StateSpaceLimit, MemoryExhausted, RecursionError) as exc:
        if isinstance(exc, RecursionError):
            exc = CspmEvalError("evaluation recursed too deeply (unguarded or non-terminating recursion?)")
        r = error_result(text, name, kind, exc)
        return AssertionResult(
            r.text, r.name, r.kind, model, target, r.status, None, r.message,
            seconds=time.perf_counter() - t0, error_at=r.error_at,
        )  # fmt: skip
    return AssertionResult(
        text, name, kind, model, target, "pass" if res.passed else "fail", failure, None,
        res.states, res.transitions, time.perf_counter() - t0, spec_states=res.spec_states,
    )  # fmt: skip


class _Named:
    """A process together with the definition span of the name it came from."""

    def __init__(self, proc: P.Proc, name: str | None, span: P.Span | None) -> None:
        self.proc = proc
        self.name = name
        self.span = span


def named_process(module: Module, expr: Any) -> _Named:
    name = expr if isinstance(expr, str) else getattr(expr, "name", None)
    is_var = isinstance(expr, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_']*", expr) is not None
    if not isinstance(expr, str) and type(expr).__name__ == "Var":
        is_var = True
    if is_var and isinstance(name, str) and module.has_name(name):
        proc = module.process(name)
        return _Named(proc, name, _definition_span(module, name, proc))
    proc = module.eval_process(expr)
    return _Named(proc, None, None)


def _definition_span(module: Module, name: str, proc: P.Proc) -> P.Span | None:
    finder = getattr(module, "definition_span", None)
    if callable(finder):
        span = finder(name)
        if isinstance(span, P.Span):
            return span
    from processors.csp.language import syntax

    for d in getattr(module, "decls", ()):
        if isinstance(d, syntax.FunDecl) and d.name == name:
            file = str(
                getattr(module, "file", "")
                or (proc.span.file if isinstance(proc, P.Call) and proc.span else "")
            )
            return P.Span(file, d.line, d.col, d.end_line or d.line, d.end_col or d.col)
    if isinstance(proc, P.Call) and proc.name == name and proc.span is not None:
        return proc.span
    return None


class Compiler:
    """Compiles processes for one run, reusing the LTS of a process checked by several assertions.

    ``workers``: processes for the on-the-fly refinement checks, a power of two (default:
    :func:`explore_parallel.default_workers`, the usable cores the load average leaves free,
    at most 2; 1 keeps them in this process). ``fast_deadlock``: check ``deadlock free`` on a network with
    :func:`explore.find_deadlock` (no transitions stored) where that gives the
    same verdict, counterexample and statistics as the compiled LTS.
    """

    def __init__(
        self, max_states: int = DEFAULT_MAX_STATES, fast_deadlock: bool = True, workers: int | None = None
    ) -> None:
        from processors.csp.check.explore_parallel import default_workers

        self.max_states = max_states
        self.fast_deadlock = fast_deadlock
        self.workers = default_workers() if workers is None else workers
        self._cache: dict[P.Proc, LTS] = {}
        self._large: set[P.Proc] = set()  # outgrow the term-level probe (C.SMALL_STATES)
        self._nets: dict[P.Proc, Any] = {}  # proc -> its compiled network (explore_succ.Compiled) or None
        self._divergent: dict[P.Proc, Any] = {}  # proc -> sorted codes of its network's divergent states

    def __call__(self, proc: P.Proc) -> LTS:
        got = self._cache.get(proc)
        if got is None:
            got = compile_process(proc, self.max_states, probe=proc not in self._large)
            self._cache[proc] = got
        return got

    def is_large(self, proc: P.Proc) -> bool:
        """Whether ``proc`` outgrows the term-level search of ``compile_process`` (it is then
        checked on its network / vectorised LTS); small ones are compiled (and cached) here."""
        if self.max_states <= C.SMALL_STATES:
            return False
        if proc in self._cache:
            return self._cache[proc].num_states > C.SMALL_STATES
        if proc in self._large:
            return True
        if self._network_outgrows_probe(proc):
            self._large.add(proc)
            return True
        small = C.probe_small(proc)
        if small is not None:
            self._cache[proc] = small
            return False
        self._large.add(proc)
        return True

    def network(self, proc: P.Proc) -> Any:
        """The compiled network of ``proc`` (``explore_succ.Compiled``), or None (no network
        structure, or a component alone fails to compile); computed once."""
        if proc in self._nets:
            return self._nets[proc]
        from processors.csp.check import explore

        try:
            node = C.to_network(proc, self.max_states)
        except (CspmError, RecursionError):
            # a component alone may reach states (and errors) the whole process never does
            node = None
        net = explore.compile_network(node) if node is not None else None
        self._nets[proc] = net
        return net

    def _network_outgrows_probe(self, proc: P.Proc) -> bool:
        """Whether ``proc``'s network has more than ``SMALL_STATES + 1`` states (a vectorised
        count, stopped there): the term-level probe, which numbers at least the network's
        states less one, would then fail too (tests/csp/test_deadlock_fast.py checks that)."""
        from processors.csp.check import explore

        net = self.network(proc)
        if net is None:
            return False
        try:
            explore.explore_network_compiled(net, C.SMALL_STATES + 1)
        except explore.StateSpaceLimit:
            return True
        return False

    def deterministic(self, proc: P.Proc) -> checker.CheckResult | None:
        """``deterministic`` without building the LTS, for a large network that is plainly
        deterministic: no τ, no ✓, each event from one rule, every move of a leaf
        deterministic (then every reachable state has at most one transition per
        event, and the check is a count of the states). None otherwise."""
        from processors.csp.check import explore_check as X

        if proc in self._cache or not self.is_large(proc):
            return None
        net = self.network(proc)
        if net is None:
            return None
        labels = [r.label for r in net.rules]
        plain = (
            len(set(labels)) == len(labels)
            and all(lab > 1 for lab in labels)  # no τ (0), no ✓ (1)
            and all(len(d) <= 1 for r in net.rules for _, d in r.pivot_states)
            and all(m.deterministic for r in net.rules for m in (r.pivot, *r.others))
        )
        if not plain:
            return None
        return self.refine(None, proc, "FD", X.chaos, net)

    def _deadlock_fd(self, proc: P.Proc) -> checker.CheckResult | None:
        """``deadlock free [FD]`` on a network with τs: ``DF [FD= proc`` on the fly."""
        from processors.csp.check import explore_check as X

        res = self.refine(None, proc, "FD", X.deadlock_free)
        if res is None or res.counterexample is None:
            return res
        c = res.counterexample
        if c.kind == "divergence_mismatch":
            cex = checker.Counterexample("divergence", c.trace, c.state, accepted=c.accepted, cycle=c.cycle)
        else:
            cex = checker.Counterexample("deadlock", c.trace, c.state, accepted=frozenset())
        return checker.CheckResult(False, cex, res.states, res.transitions, res.explored)

    def divergence_free(self, proc: P.Proc) -> checker.CheckResult | None:
        """``divergence free`` on the fly for a large ``proc`` (``CHAOS [FD= proc``), or None."""
        from processors.csp.check import explore_check as X

        res = self.refine(None, proc, "FD", X.chaos)
        if res is None or res.counterexample is None:
            return res
        c = res.counterexample
        cex = checker.Counterexample("divergence", c.trace, c.state, cycle=c.cycle)
        return checker.CheckResult(False, cex, res.states, res.transitions, res.explored)

    def refine(
        self,
        spec: LTS | None,
        proc: P.Proc,
        model: checker.Model,
        make_spec: Callable[[tuple[str, ...]], Any] | None = None,
        compiled: Any = None,
    ) -> checker.CheckResult | None:
        """``spec [model= proc`` on the fly (:mod:`processors.csp.check.explore_check`), for a large ``proc``.

        The implementation's network is explored directly when it has one (and,
        in FD, no τ: divergence needs the whole LTS); otherwise its compiled
        LTS is. None when the product does not fit the vectorised checker.
        """
        from processors.csp.check import explore
        from processors.csp.check import explore_check as X
        from processors.csp.check import explore_parallel as XP

        if not self.is_large(proc):
            return None
        succ: X.NetworkSuccessors | X.LtsSuccessors | None = None
        if compiled is not None and compiled.encoding.num_words == 1:
            succ = X.NetworkSuccessors(compiled)
        elif proc not in self._cache:
            net = self.network(proc)
            if net is not None and net.encoding.num_words == 1:
                if model == "FD" and explore.has_tau(net):
                    # divergence: one pass keeping only the τ moves, no product LTS
                    limit = None if self.max_states >= C.NO_LIMIT else self.max_states
                    div = self._divergent.get(proc)
                    if div is None:
                        try:
                            div = self._divergent[proc] = explore.divergent_codes(net, limit or C.NO_LIMIT)
                        except explore.StateSpaceLimit as exc:
                            raise StateSpaceLimit(self.max_states) from exc
                    succ = X.NetworkSuccessors(net, div)
                else:
                    succ = X.NetworkSuccessors(net)
        try:
            if succ is None:
                succ = X.LtsSuccessors(self(proc), need_divergence=model == "FD")
            if spec is not None:
                normal = X.normalise(spec, succ.events, model)
            else:
                assert make_spec is not None
                normal = make_spec(succ.events)
            budget = MemoryBudget.default()
            limit = None if self.max_states >= C.NO_LIMIT else self.max_states
            handoff = XP.make_handoff(self.workers, limit, budget.check) if self.workers > 1 else None
            res = X.refine(normal, succ, model, limit, on_level=budget.check, handoff=handoff)
        except X.TooWide:
            return None
        except X.Limit as exc:
            raise StateSpaceLimit(self.max_states) from exc
        spec_states = spec.num_states if spec is not None else None
        return checker.CheckResult(res.passed, res.counterexample, res.states, res.transitions, res.states, spec_states)

    def deadlock(self, proc: P.Proc, model: str) -> checker.CheckResult | None:
        """``deadlock free`` by the network explorer on the fly, or None where the compiled LTS must decide.

        For a process that outgrows the term-level probe of
        :func:`compile.compile_process` (whose LTS is then the network's product
        LTS) and has network structure. The search stops at the first BFS level
        holding a deadlock (``states``/``transitions`` count what was explored)
        and its trace is FDR's: breadth first, τ counted as a step. In FD with
        τs divergence needs the whole LTS: the checker decides on it.
        """
        if not self.fast_deadlock or proc in self._cache or not self.is_large(proc):
            return None
        from processors.csp.check import explore

        net = self.network(proc)
        if net is None:
            return None
        taus = explore.has_tau(net)
        if model == "FD" and taus:
            return self._deadlock_fd(proc)
        try:
            res = explore.find_deadlock_compiled(net, self.max_states, stop_at_first=True)
        except explore.StateSpaceLimit as exc:
            raise StateSpaceLimit(self.max_states) from exc
        if res.trace is None:
            return checker.CheckResult(True, None, res.states, res.transitions, res.states)
        cex = checker.Counterexample(kind="deadlock", trace=tuple(res.trace), state=-1, accepted=frozenset())
        return checker.CheckResult(False, cex, res.states, res.transitions, res.states)


def _property(
    target: _Named, kind: str, model: str, comp: Compiler
) -> tuple[checker.CheckResult, Failure | None]:
    if kind == "deadlock free":
        fast = comp.deadlock(target.proc, "FD" if model == "FD" else "F")
        if fast is not None:
            return fast, _failure(fast, target, None, comp.max_states, None, None)
    if kind == "deterministic":
        fast = comp.deterministic(target.proc)
        if fast is not None:
            return fast, None
    if kind == "divergence free":
        fast = comp.divergence_free(target.proc)
        if fast is not None:
            return fast, _failure(fast, target, None, comp.max_states, None, None)
    lts = comp(target.proc)
    if kind == "deadlock free":
        res = checker.deadlock_free(lts, "FD" if model == "FD" else "F")
    elif kind == "divergence free":
        res = checker.divergence_free(lts)
    elif kind == "deterministic":
        res = checker.deterministic(lts, "F" if model == "F" else "FD")
    else:
        raise CspmEvalError(f"unknown property {kind!r}")
    return res, _failure(res, target, None, comp.max_states, None, lts)


def _refine(
    spec: _Named, impl: _Named, model: str, comp: Compiler
) -> tuple[checker.CheckResult, Failure | None]:
    if model not in ("T", "F", "FD"):
        raise CspmEvalError(f"unknown semantic model {model!r}")
    spec_lts = comp(spec.proc)
    m: checker.Model = "T" if model == "T" else "F" if model == "F" else "FD"
    fast = comp.refine(spec_lts, impl.proc, m)
    if fast is not None:
        return fast, _failure(fast, impl, spec, comp.max_states, model, None)
    impl_lts = comp(impl.proc)
    res = checker.refines(spec_lts, impl_lts, m)
    return res, _failure(res, impl, spec, comp.max_states, model, impl_lts)


def _has_trace(
    target: _Named, trace: tuple[str, ...], comp: Compiler
) -> tuple[checker.CheckResult, Failure | None]:
    lts = comp(target.proc)
    res = checker.has_trace(lts, trace)
    return res, _failure(res, target, None, comp.max_states, None, lts)


def _trace_events(module: Module, expr: Any) -> tuple[str, ...]:
    from processors.csp.semantics import values as V

    v = module.eval_value(expr)
    if not isinstance(v, V.VSeq):
        raise CspmEvalError("has trace: the trace must be a sequence of events")
    return tuple(V.render(x) for x in v.items)


def _failure(
    res: checker.CheckResult,
    impl: _Named,
    spec: _Named | None,
    max_states: int,
    model: str | None = None,
    lts: LTS | None = None,
) -> Failure | None:
    cex = res.counterexample
    if cex is None:
        return None
    found: list[SourceSpan] = []
    for named in (impl, spec):
        if named is not None and named.span is not None:
            found.append(SourceSpan.of(named.span))
    for s in _spans_after(impl.proc, cex, max_states):
        ss = SourceSpan.of(s)
        if ss not in found:
            found.append(ss)
    return Failure(
        kind=cex.kind,
        trace=cex.trace,
        refusal=tuple(sorted(cex.refusal)) if cex.refusal is not None else None,
        divergence=cex.divergence,
        event=cex.event,
        accepted=tuple(sorted(cex.accepted)) if cex.accepted is not None else None,
        spec_acceptances=tuple(tuple(sorted(a)) for a in cex.spec_acceptances),
        spans=tuple(found[:8]),
        model=model,
        state=lts.state_names[cex.state] if lts is not None and cex.state < len(lts.state_names) else None,
        loop=tuple(lts.state_names[c] if c < len(lts.state_names) else f"s{c}" for c in cex.cycle)
        if lts is not None
        else (),
    )


def _spans_after(proc: P.Proc, cex: checker.Counterexample, max_states: int) -> list[P.Span]:
    """Source spans of the process states reached by the counterexample trace (best effort)."""
    trace = cex.trace[:-1] if cex.kind == "trace" else cex.trace
    budget = min(max_states, 20_000)
    try:
        current = _tau_closure({normalise(proc)}, budget)
        for ev in trace:
            nxt = {q for p in current for e, q in fire(p) if e == ev}
            current = _tau_closure(nxt, budget)
    except (CspmError, RecursionError, _Budget):
        return []
    interesting = [p for p in current if _is_culprit(p, cex)] or sorted(current, key=str)[:4]
    out: list[P.Span] = []
    for p in interesting:
        for s in spans(p):
            if s not in out:
                out.append(s)
    return out


class _Budget(Exception):
    pass


def _tau_closure(states: set[P.Proc], budget: int) -> set[P.Proc]:
    seen = set(states)
    stack = list(states)
    while stack:
        p = stack.pop()
        for e, q in fire(p):
            if e == TAU_NAME and q not in seen:
                seen.add(q)
                stack.append(q)
                if len(seen) > budget:
                    raise _Budget
    return seen


def _is_culprit(p: P.Proc, cex: checker.Counterexample) -> bool:
    moves = fire(p)
    if cex.kind == "deadlock":
        return not moves and not isinstance(p, P.Omega)
    if cex.kind in ("refusal", "nondeterminism"):
        offered = {e for e, _ in moves}
        return TAU_NAME not in offered and cex.accepted is not None and offered == set(cex.accepted)
    if cex.kind == "trace":
        return any(e == cex.event for e, _ in moves)
    if cex.kind == "missing_trace":
        return True
    return any(e == TAU_NAME for e, _ in moves)


# --------------------------------------------------------------------------
# JSON
# --------------------------------------------------------------------------


def result_json(r: AssertionResult) -> dict[str, Any]:
    """One entry of the ``assertions`` list (see docs/cli-json.md)."""
    return {
        "text": r.text,
        "kind": r.kind,
        "model": r.model,
        "status": r.status,
        "message": r.message,
        "counterexample": _failure_json(r.failure),
        "stats": {
            "states": r.states,
            "transitions": r.transitions,
            "seconds": round(r.seconds, 6),
            **({"spec_states": r.spec_states} if r.spec_states is not None else {}),
        },
    }


def check_json(r: AssertionResult) -> dict[str, Any]:
    """The cspx-compatible view of a result (one entry of ``checks``)."""
    f = r.failure
    cex: dict[str, Any] | None = None
    if f is not None:
        events = [{"label": e} for e in f.trace]
        if f.divergence:
            events.append({"label": TAU_NAME})  # the divergence: an unbounded τ sequence
        cex = {
            "type": "trace",
            "events": events,
            "is_minimized": True,
            "tags": f.tags(),
            "source_spans": [_span_json(s) for s in f.spans],
        }
    out: dict[str, Any] = {
        "name": r.name,
        "model": r.model if r.name == "refine" else None,
        "target": r.target,
        "status": r.status,
        "counterexample": cex,
        "stats": {"states": r.states, "transitions": r.transitions},
    }
    if r.status in ("error", "unsupported"):
        out["reason"] = {
            "kind": "unsupported_syntax" if r.status == "unsupported" else "invalid_input",
            "message": r.message or "",
        }
    return out


def _failure_json(f: Failure | None) -> dict[str, Any] | None:
    if f is None:
        return None
    out: dict[str, Any] = {"kind": f.kind, "trace": list(f.trace)}
    if f.divergence:
        out["divergence"] = True
        if f.loop:
            out["loop"] = list(f.loop)
    else:
        out["refusal"] = list(f.refusal) if f.refusal is not None else None
    if f.event is not None:
        out["event"] = f.event
    if f.accepted is not None:
        out["accepted"] = list(f.accepted)
    if f.spec_acceptances:
        out["spec_acceptances"] = [list(a) for a in f.spec_acceptances]
    if f.state is not None:
        out["state"] = f.state
    out["spans"] = [_span_json(s) for s in f.spans]
    return out


def _span_json(s: SourceSpan) -> dict[str, Any]:
    return {
        "path": s.path,
        "start_line": s.start_line,
        "start_col": s.start_col,
        "end_line": s.end_line,
        "end_col": s.end_col,
    }
