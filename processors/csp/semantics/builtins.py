"""CSPm builtins: set / sequence / relation functions, processes and type names.

Pure functions over :mod:`processors.csp.semantics.values`; the few that need the
module's channels (``extensions``, ``productions``) use the evaluator passed to
:func:`make_builtins`. Compression functions are the identity on the semantics
(``normal``, ``sbisim``...); builtins outside the supported subset
(``failure_watchdog``, ``WEAK_BUFFER``, ``SIGNAL_BUFFER``, the timed names outside a
timed section) raise :class:`CspmUnsupported`. ``prioritise``, ``chase``, ``deter`` and
``trace_watchdog`` build the process terms of :mod:`processors.csp.semantics.procs`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from processors.csp.language.errors import CspmEvalError, CspmUnsupported
from processors.csp.semantics import procs as P
from processors.csp.semantics.values import (
    FALSE,
    TRUE,
    Value,
    VChar,
    VDot,
    VFunc,
    VInf,
    VLazySeq,
    VMap,
    VSeq,
    VSet,
    VTuple,
    atoms_to_value,
    force_seq,
    render,
    sort_key,
    sorted_values,
    vbool,
    vmap,
)

if TYPE_CHECKING:
    from processors.csp.language import syntax as S


class EvaluatorView(Protocol):
    """What the builtins need from the evaluator (no import of :mod:`evaluator`: no import cycle)."""

    file: str

    def production(self, v: Value, node: S.Node | None) -> list[Value]: ...


COMPRESSIONS = frozenset(
    {
        "transpose",
        "relational_image",
        "relational_inverse_image",
        "mtransclose",
        "normal",
        "normalise",
        "normalize",
        "sbisim",
        "tau_loop_factor",
        "diamond",
        "model_compress",
        "explicate",
        "dbisim",
        "wbisim",
        "lazyenumerate",
        "lazynorm",
        "loop",
    }
)

# compression functions proper (the identity on the semantics)
PROC_COMPRESSIONS = COMPRESSIONS - {
    "transpose",
    "relational_image",
    "relational_inverse_image",
    "mtransclose",
    "loop",
}


def _spread(fn: Callable[..., Value]) -> Callable[[tuple[Value, ...]], Value]:
    def apply(args: tuple[Value, ...]) -> Value:
        return fn(*args)

    return apply


def _const(p: P.Proc) -> Callable[[str], P.Proc]:
    def get(_e: str) -> P.Proc:
        return p

    return get


def make_builtins(ev: EvaluatorView) -> dict[str, Value]:
    """The builtin functions, processes and types, bound to evaluator ``ev``."""

    def err(msg: str) -> CspmEvalError:
        return CspmEvalError(msg, ev.file, 0, 0)

    def s(v: Value) -> frozenset[Value]:
        if isinstance(v, VSet):
            return v.items
        if isinstance(v, VInf):
            raise CspmUnsupported("infinite set", ev.file, 0, 0)
        raise err(f"expected a set, found {render(v)}")

    def q(v: Value) -> tuple[Value, ...]:
        if isinstance(v, VLazySeq):
            try:
                v = force_seq(v)
            except ValueError as exc:
                raise err(str(exc)) from None
        if isinstance(v, VSeq):
            return v.items
        raise err(f"expected a sequence, found {render(v)}")

    def union(a: Value, b: Value) -> Value:
        if isinstance(a, VInf) and isinstance(b, VInf) and a.name == b.name == "Int":
            if a.lo is None or b.lo is None:
                return VInf(None)
            return VInf(min(a.lo, b.lo))
        if isinstance(a, VInf) and isinstance(b, VSet) and all(a.contains(x) for x in b.items):
            return a
        if isinstance(b, VInf) and isinstance(a, VSet) and all(b.contains(x) for x in a.items):
            return b
        return VSet(s(a) | s(b))

    def inter(a: Value, b: Value) -> Value:
        if isinstance(a, VInf) and isinstance(b, VInf) and a.name == b.name == "Int":
            if a.lo is None:
                return b
            if b.lo is None:
                return a
            return VInf(max(a.lo, b.lo))
        if isinstance(a, VInf) and isinstance(b, VSet):
            return VSet(frozenset(x for x in b.items if a.contains(x)))
        if isinstance(b, VInf) and isinstance(a, VSet):
            return VSet(frozenset(x for x in a.items if b.contains(x)))
        return VSet(s(a) & s(b))

    def diff(a: Value, b: Value) -> Value:
        if isinstance(a, VSet) and isinstance(b, VInf):
            return VSet(frozenset(x for x in a.items if not b.contains(x)))
        if (
            isinstance(a, VInf)
            and isinstance(b, VInf)
            and a.name == b.name == "Int"
            and (b.lo is None or (a.lo is not None and a.lo >= b.lo))
        ):
            return VSet(frozenset())
        if isinstance(a, VInf) and a.lo is not None and isinstance(b, VSet):
            lo = a.lo
            while lo in b.items:
                lo += 1
            if all(not isinstance(x, int) or x < lo for x in b.items):
                return VInf(lo)
        return VSet(s(a) - s(b))

    def member(x: Value, a: Value) -> Value:
        if isinstance(a, VInf):
            return vbool(a.contains(x))
        return vbool(x in s(a))

    def Union(a: Value) -> Value:
        out: frozenset[Value] = frozenset()
        for x in s(a):
            out = out | s(x)
        return VSet(out)

    def Inter(a: Value) -> Value:
        items = [s(x) for x in s(a)]
        if not items:
            raise err("Inter of an empty set")
        out = items[0]
        for x in items[1:]:
            out = out & x
        return VSet(out)

    def powerset(a: Value) -> Value:
        items = sorted_values(s(a))
        if len(items) > 16:
            raise CspmUnsupported("Set(A) of a large set", ev.file, 0, 0)
        out = set()
        for r in range(len(items) + 1):
            for c in itertools.combinations(items, r):
                out.add(VSet(frozenset(c)))
        return VSet(frozenset(out))

    def head(a: Value) -> Value:
        if isinstance(a, VLazySeq):
            if a.empty():
                raise err("head of an empty sequence")
            return a.head()
        items = q(a)
        if not items:
            raise err("head of an empty sequence")
        return items[0]

    def tail(a: Value) -> Value:
        if isinstance(a, VLazySeq):
            if a.empty():
                raise err("tail of an empty sequence")
            return a.drop(1)
        items = q(a)
        if not items:
            raise err("tail of an empty sequence")
        return VSeq(items[1:])

    def concat(a: Value) -> Value:
        out: tuple[Value, ...] = ()
        for x in q(a):
            out = out + q(x)
        return VSeq(out)

    def error_(msg: Value) -> Value:
        raise err("error: " + "".join(c.c for c in q(msg) if isinstance(c, VChar)))

    def show(v: Value) -> Value:
        return VSeq(tuple(VChar(c) for c in render(v)))

    def chaos(a: Value) -> Value:
        return P.Chaos(frozenset(render(x) for x in s(a)))

    def run(a: Value) -> Value:
        return P.Run(frozenset(render(x) for x in s(a)))

    def loop(p: Value) -> Value:
        """``loop(P) = P ; loop(P)``."""
        if not isinstance(p, P.Proc):
            raise err("loop expects a process")
        proc: P.Proc = p

        def again() -> P.Proc:
            return P.SeqComp(proc, P.Call(("loop", proc), "loop", again))

        return P.Call(("loop", proc), "loop", again)

    def ident(p: Value) -> Value:
        if not isinstance(p, P.Proc):
            raise err("compression functions expect a process")
        return p

    def proc_arg(name: str, p: Value) -> P.Proc:
        if not isinstance(p, P.Proc):
            raise err(f"{name} expects a process, found {render(p)}")
        return p

    def events(v: Value) -> frozenset[str]:
        return frozenset(render(x) for x in s(v))

    def prioritise(p: Value, sets: Value) -> Value:
        levels = tuple(events(a) for a in q(sets))
        if not levels:
            raise err("prioritise: the list of event sets must not be empty")
        return P.Prioritise(proc_arg("prioritise", p), levels)

    def prioritisepo(p: Value, evs: Value, order: Value, maximal: Value) -> Value:
        """``prioritisepo(P, E, O, M)``: ``(a, b)`` in ``O`` gives ``a`` priority over
        ``b``; τ and ✓ are above every event outside ``M`` (libcspm's checks: the
        order is acyclic, mentions only events of ``E``, and nothing is above ``M``)."""
        universe = events(evs)
        top = events(maximal)
        edges = {(render(a), render(b)) for a, b in pairs(order)}
        mentioned = {e for pair in edges for e in pair} | top
        missing = sorted(mentioned - universe)
        if missing:
            raise err(f"prioritisepo: events {', '.join(missing)} are not in the prioritised set")
        tau, tick = "τ", "✓"
        for e in universe - top:
            edges |= {(tau, e), (tick, e)}
        above: dict[str, set[str]] = {}
        for a, b in edges:
            above.setdefault(a, set()).add(b)
        closed: set[tuple[str, str]] = set()
        for a in list(above):
            todo, seen = list(above[a]), set()
            while todo:
                b = todo.pop()
                if b in seen:
                    continue
                if b == a:
                    raise err(f"prioritisepo: the order has a cycle through {a}")
                seen.add(b)
                todo.extend(above.get(b, ()))
            closed |= {(a, b) for b in seen}
        bad = sorted(b for _, b in closed if b in top)
        if bad:
            raise err(f"prioritisepo: {bad[0]} is given a lower priority but is maximal")
        return P.Prioritise(proc_arg("prioritisepo", p), (), frozenset(closed))

    def trace_watchdog(p: Value, a: Value, bark: Value) -> Value:
        return P.Determinise(frozenset({proc_arg("trace_watchdog", p)}), (events(a), render(bark)))

    def tstop(tock: Value) -> Value:
        """``TSTOP`` of a timed section: lets time pass for ever."""
        t = render(tock)
        key = ("TSTOP", t)

        def body() -> P.Proc:
            return P.Prefix(key, (t,), lambda _e: me)

        me = P.Call(key, "TSTOP", body)
        return me

    def tskip(tock: Value) -> Value:
        """``TSKIP``: terminates, or lets time pass first."""
        t = render(tock)
        key = ("TSKIP", t)

        def body() -> P.Proc:
            return P.ExtChoice((P.Prefix(key, (t,), lambda _e: me), P.Skip()))

        me = P.Call(key, "TSKIP", body)
        return me

    def wait(tock: Value) -> Value:
        t = render(tock)
        done = tskip(tock)
        assert isinstance(done, P.Proc)

        def after(n: Value) -> Value:
            if not isinstance(n, int) or isinstance(n, bool) or n < 0:
                raise err(f"WAIT expects a natural number of time units, found {render(n)}")
            proc: P.Proc = done
            for i in range(n):
                proc = P.Prefix(("WAIT", t, i + 1), (t,), _const(proc))
            return proc

        return VFunc(("timed WAIT", t), "WAIT", 1, _spread(after))

    def timed_priority(tock: Value) -> Value:
        t = render(tock)

        def prio(p: Value) -> Value:
            return P.Prioritise(proc_arg("timed_priority", p), (frozenset(), frozenset({t})))

        return VFunc(("timed timed_priority", t), "timed_priority", 1, _spread(prio))

    def as_map(m: Value) -> dict[Value, Value]:
        if not isinstance(m, VMap):
            raise err(f"expected a map, found {render(m)}")
        return m.as_dict()

    def pair_list(xs: Value) -> list[tuple[Value, Value]]:
        out = []
        for x in q(xs):
            if not (isinstance(x, VTuple) and len(x.items) == 2):
                raise err(f"expected a sequence of pairs, found {render(xs)}")
            out.append((x.items[0], x.items[1]))
        return out

    def map_lookup(m: Value, k: Value) -> Value:
        d = as_map(m)
        if k not in d:
            raise err(f"mapLookup: {render(k)} is not a key of {render(m)}")
        return d[k]

    def map_to_list(m: Value) -> Value:
        return VSeq(tuple(VTuple((k, v)) for k, v in sorted(as_map(m).items(), key=lambda kv: sort_key(kv[0]))))

    def all_maps(keys: Value, vals: Value) -> Value:
        """``Map(K, V)``: every finite map from a subset of ``K`` to ``V``."""
        ks, vs = sorted_values(s(keys)), sorted_values(s(vals))
        total = (len(vs) + 1) ** len(ks)
        if total > 1 << 16:
            raise CspmUnsupported(f"Map(K, V) with {total} maps", ev.file, 0, 0)
        out: set[Value] = set()
        for choice in itertools.product((None, *vs), repeat=len(ks)):
            out.add(vmap({k: v for k, v in zip(ks, choice, strict=True) if v is not None}))
        return VSet(frozenset(out))

    def buffer(n: Value, r: Value) -> Value:
        """FDR's ``BUFFER(N, {(in, out)})``: a FIFO buffer of capacity ``N`` that
        accepts any ``in`` event while it holds fewer than ``N`` items and offers
        the ``out`` event paired with its oldest item."""
        if not isinstance(n, int) or isinstance(n, bool):
            raise err(f"BUFFER: expected an integer capacity, found {render(n)}")
        if n <= 0:
            raise err(f"BUFFER: the capacity must be at least 1, found {n}")
        ps = sorted(((render(a), render(b)) for a, b in pairs(r)))
        seen: set[str] = set()
        for ev_ in (x for p in ps for x in p):
            if ev_ in seen:
                raise err(f"BUFFER: event {ev_} occurs more than once in the buffer events")
            seen.add(ev_)
        ins = tuple(a for a, _ in ps)
        index = {a: i for i, a in enumerate(ins)}
        outs = {b for _, b in ps}
        cap = n
        ident_ = ("BUFFER", cap, tuple(ps))

        def state(q: tuple[int, ...]) -> P.Proc:
            offered = (ins if len(q) < cap else ()) + ((ps[q[0]][1],) if q else ())

            def cont(e: str) -> P.Proc:
                if e in outs:
                    return state(q[1:])
                return state(q + (index[e],))

            return P.Prefix(ident_ + (q,), offered, cont)

        first = state(())
        return P.Call(ident_, f"BUFFER({cap}, {render(r)})", lambda: first)

    def unsupported(name: str) -> Callable[..., Value]:
        def f(*_: Value) -> Value:
            raise CspmUnsupported(f"builtin {name}", ev.file, 0, 0)

        return f

    def pairs(r: Value) -> list[tuple[Value, Value]]:
        out = []
        for x in s(r):
            if not (isinstance(x, VTuple) and len(x.items) == 2):
                raise err(f"expected a set of pairs, found {render(r)}")
            out.append((x.items[0], x.items[1]))
        return out

    def transpose(r: Value) -> Value:
        return VSet(frozenset(VTuple((b, a)) for a, b in pairs(r)))

    def image(r: Value, inverse: bool) -> Value:
        table: dict[Value, set[Value]] = {}
        for a, b in pairs(r):
            k, v = (b, a) if inverse else (a, b)
            table.setdefault(k, set()).add(v)

        def look(args: tuple[Value, ...]) -> Value:
            return VSet(frozenset(table.get(args[0], ())))

        name = "relational_inverse_image" if inverse else "relational_image"
        return VFunc((name, r), name, 1, look)

    def rel_image(r: Value) -> Value:
        return image(r, False)

    def rel_inverse_image(r: Value) -> Value:
        return image(r, True)

    def mtransclose(r: Value, dom: Value) -> Value:
        """Equivalence classes of the closure of ``r`` over ``dom``: pairs (representative, member)."""
        items = sorted_values(s(dom))
        parent: dict[Value, Value] = {x: x for x in items}

        def find(x: Value) -> Value:
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        for a, b in pairs(r):
            if a in parent and b in parent:
                ra, rb = find(a), find(b)
                if ra != rb:
                    if sort_key(ra) < sort_key(rb):
                        parent[rb] = ra
                    else:
                        parent[ra] = rb
        return VSet(frozenset(VTuple((find(x), x)) for x in items if find(x) != x))

    def extensions(v: Value) -> Value:
        n = len(v.atoms) if isinstance(v, VDot) else 1
        out = set()
        for x in ev.production(v, None):
            xat = x.atoms if isinstance(x, VDot) else (x,)
            out.add(atoms_to_value(xat[n:]) if len(xat) > n else _UNIT)
        return VSet(frozenset(out))

    table: dict[str, tuple[int, Callable[..., Value]]] = {
        "extensions": (1, extensions),
        "productions": (1, lambda v: VSet(frozenset(ev.production(v, None)))),
        "union": (2, union),
        "inter": (2, inter),
        "diff": (2, diff),
        "member": (2, member),
        "Union": (1, Union),
        "Inter": (1, Inter),
        "card": (1, lambda a: len(s(a))),
        "empty": (1, lambda a: vbool(isinstance(a, VSet) and not a.items)),
        "Set": (1, powerset),
        "seq": (1, lambda a: VSeq(tuple(sorted_values(s(a))))),
        "set": (1, lambda a: VSet(frozenset(q(a)))),
        "head": (1, head),
        "tail": (1, tail),
        "concat": (1, concat),
        "elem": (2, lambda x, a: vbool(x in q(a))),
        "null": (1, lambda a: vbool(a.empty() if isinstance(a, VLazySeq) else not q(a))),
        "length": (1, lambda a: len(q(a))),
        "error": (1, error_),
        "show": (1, show),
        "CHAOS": (1, chaos),
        "RUN": (1, run),
        "Seq": (1, lambda a: VInf(None, "Seq", a)),
        "transpose": (1, transpose),
        "relational_image": (1, rel_image),
        "relational_inverse_image": (1, rel_inverse_image),
        "mtransclose": (2, mtransclose),
        "prioritise": (2, prioritise),
        "prioritise_nocache": (2, prioritise),
        "prioritisepo": (4, prioritisepo),
        "chase": (1, lambda p: P.Chase(proc_arg("chase", p))),
        "chase_nocache": (1, lambda p: P.Chase(proc_arg("chase_nocache", p))),
        "trace_watchdog": (3, trace_watchdog),
        "loop": (1, loop),
        "BUFFER": (2, buffer),
        "WEAK_BUFFER": (3, unsupported("WEAK_BUFFER")),
        "SIGNAL_BUFFER": (4, unsupported("SIGNAL_BUFFER")),
        "failure_watchdog": (3, unsupported("failure_watchdog")),
        "deter": (1, lambda p: P.Determinise(frozenset({proc_arg("deter", p)}))),
        "WAIT": (1, unsupported("WAIT outside a timed section")),
        "TSTOP": (0, unsupported("TSTOP outside a timed section")),
        "TSKIP": (0, unsupported("TSKIP outside a timed section")),
        "timed STOP": (1, tstop),
        "timed SKIP": (1, tskip),
        "timed WAIT": (1, wait),
        "timed timed_priority": (1, timed_priority),
        "timed_priority": (1, unsupported("timed_priority outside a timed section")),
        "mapFromList": (1, lambda xs: vmap(dict(pair_list(xs)))),
        "mapLookup": (2, map_lookup),
        "mapMember": (2, lambda m, k: vbool(k in as_map(m))),
        "mapToList": (1, map_to_list),
        "mapUpdate": (3, lambda m, k, v: vmap({**as_map(m), k: v})),
        "mapUpdateMultiple": (2, lambda m, xs: vmap({**as_map(m), **dict(pair_list(xs))})),
        "mapDelete": (2, lambda m, k: vmap({x: v for x, v in as_map(m).items() if x != k})),
        "Map": (2, all_maps),
        "sbisim": (1, ident),
        "normal": (1, ident),
        "diamond": (1, ident),
        "explicate": (1, ident),
        "wbisim": (1, ident),
        "dbisim": (1, ident),
        "tau_loop_factor": (1, ident),
        "model_compress": (1, ident),
        "lazyenumerate": (1, ident),
        "lazynorm": (1, ident),
    }
    out: dict[str, Value] = {}
    for name, (arity, fn) in table.items():
        out[name] = VFunc(("builtin", name), name, arity, _spread(fn))
    out["emptyMap"] = vmap({})
    out["STOP"] = P.Stop()
    out["SKIP"] = P.Skip()
    out["DIV"] = P.Div()
    out["true"] = TRUE
    out["false"] = FALSE
    out["Bool"] = VSet(frozenset({TRUE, FALSE}))
    out["Int"] = VInf(None)
    out["Char"] = VInf(None, "Char")
    out["Proc"] = VInf(None, "Proc")
    out["Events"] = LazyEvents()
    return out


_UNIT = VTuple(())


class LazyEvents:
    """Placeholder for ``Events``, resolved by :meth:`Evaluator.lookup`."""


# process functions a script may declare ``external`` / ``transparent`` besides the compressions
PROCESS_FUNCTIONS = frozenset(
    {"prioritise", "prioritise_nocache", "prioritisepo", "chase", "chase_nocache", "deter", "trace_watchdog"}
)

# in scope only where a script declares them ``external`` (as in libcspm)
EXTERNAL_ONLY = PROCESS_FUNCTIONS - {"chase", "chase_nocache"} | {"failure_watchdog"}

UNSUPPORTED_BUILTINS = frozenset(
    {
        "failure_watchdog",
        "WEAK_BUFFER",
        "SIGNAL_BUFFER",
        "WAIT",
        "TSTOP",
        "TSKIP",
        "timed_priority",
    }
)


def builtin_names() -> frozenset[str]:
    """Names predefined by the evaluator (builtin functions, processes, types)."""
    return frozenset(make_builtins(None)) | frozenset({"Events"})  # type: ignore[arg-type]


__all__ = [
    "COMPRESSIONS",
    "PROC_COMPRESSIONS",
    "EXTERNAL_ONLY",
    "PROCESS_FUNCTIONS",
    "UNSUPPORTED_BUILTINS",
    "LazyEvents",
    "builtin_names",
    "make_builtins",
]
