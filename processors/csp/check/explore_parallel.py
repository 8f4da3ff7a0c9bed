"""Both cores for the on-the-fly check: the frontier partitioned by state hash (as FDR does).

:func:`handoff` plugs into :func:`processors.csp.check.explore_check.refine`: once a
BFS level is large, the search forks ``workers`` processes. Worker ``k`` owns
the product states whose mixed code has top bits ``k``: its part of the
frontier, and the visited set of its states (its part of the sequential
phase's, inherited by fork, in a table of its own). Per level each worker
expands and checks its frontier chunk by chunk as the sequential search does,
removes each chunk's duplicate candidates, keeps those it owns and writes the rest
for their owners to files in memory (``/dev/shm``; the parent only sequences the
levels, no candidate passes through it); then each merges what it kept with what
it received into one sorted batch without duplicates, inserts it in one sweep of
its table (as the sequential search inserts a level) and reports its new
frontier's size. Per candidate a worker does the sequential search's work plus
one binary search per chunk and a copy out and in of the candidates it does not
own. Measured (bench/check.py prints each side's CPU): the two workers together
use about 7% more CPU than the sequential search when they share one core, and
15-30% more when both run at once.

A violation anywhere ends the parallel search and the caller re-runs the
sequential search for the counterexample (so it is the one a sequential run
reports). Any failure of the machinery (no ``fork``, a worker dying) also falls
back to the sequential search. Linux/POSIX only (``fork``); elsewhere the search
stays sequential.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import shutil
import tempfile
from collections.abc import Callable
from multiprocessing.connection import Connection

import numpy as np

from processors.csp.check.explore_check import (
    CHUNK,
    Limit,
    Progress,
    Result,
    _Checker,
    insert_level,
)
from processors.csp.check.explore_hash import (
    MIXED_EMPTY,
    CodeSet,
    Scratch,
    UintArray,
    distinct_sorted,
    mix,
    unique_sorted,
    unmix,
)
from processors.csp.semantics.lts import IntArray


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def default_workers(cap: int = 2) -> int:
    """The usable cores that are free, rounded down to a power of two, at most ``cap``.

    A core counts as free when the 1-minute load average leaves it idle: on a
    machine already busy with other work a second worker only competes for the
    same core (and memory bandwidth), and the partitioned search is then slower
    than one process (bench/check.py measures both)."""
    cores = usable_cores()
    try:
        busy = os.getloadavg()[0]
    except OSError:  # pragma: no cover - no load average on this platform
        busy = 0.0
    n = max(1, min(cap, cores, int(cores - busy + 0.5)))
    return 1 << (n.bit_length() - 1)


def owner_bounds(parts: int) -> UintArray:
    """Worker ``k`` owns the mixed codes whose top ``log2(parts)`` bits are ``k``: a sorted
    batch splits into the owners' pieces at these bounds (a binary search, no copy).

    Not the low bits: the mix is a multiplication by an odd constant, so a product's low bits
    are the code's low bits, which the packing leaves biased (measured: one worker got two
    thirds of the states). The top bits are the best mixed; each worker's visited set takes
    its home slots from the bits below them (``CodeSet(skip_bits=...)``)."""
    b = parts.bit_length() - 1
    return np.array([k << (64 - b) for k in range(1, parts)], dtype=np.uint64)


def _split(u: UintArray, parts: int) -> list[UintArray]:
    """``u`` (sorted mixed codes) split by owner; each piece is a sorted view of ``u``."""
    return np.split(u, np.searchsorted(u, owner_bounds(parts)))


def _piece(exchange: str, level: int, src: int, dst: int) -> str:
    return os.path.join(exchange, f"L{level}-{src}-{dst}")


def _own_visited(visited: CodeSet, me: int, parts: int) -> CodeSet:
    """Worker ``me``'s visited set: the inherited keys it owns, in a table of its own."""
    keys = visited.keys[visited.keys != np.uint64(MIXED_EMPTY)]
    keys.sort()
    mine = _split(keys, parts)[me]
    own = CodeSet(log2_capacity=max(12, visited.log2 - (parts.bit_length() - 1)), skip_bits=parts.bit_length() - 1)
    own.insert(mine)
    return own


def _worker(
    conn: Connection, me: int, parts: int, ck: _Checker, visited: CodeSet, frontier: IntArray, exchange: str
) -> None:
    """Per level: expand the frontier chunk by chunk, as the sequential search does; keep the
    candidates this worker owns, write the others' (sorted runs) for them; then insert its
    own and the ones the others wrote for it, merged, in one sweep."""
    frontier = unmix(_split(np.sort(mix(frontier.copy())), parts)[me])
    visited = _own_visited(visited, me, parts)
    scratch = Scratch()
    mine: list[UintArray] = []
    level = 0
    try:
        while True:
            cmd = conn.recv()
            if cmd == "stop":
                return
            if cmd == "nbytes":
                conn.send(visited.nbytes)
                continue
            if cmd == "expand":
                viol, count = -1, 0
                out: list[list[UintArray]] = [[] for _ in range(parts)]
                for lo in range(0, len(frontier), CHUNK):
                    groups, v = ck.successors(frontier[lo : lo + CHUNK], want_edges=False)
                    if v is not None:
                        viol = lo + v.pos
                        break
                    n = sum(len(g.src) for g in groups)
                    count += n
                    if n:
                        tgt = np.concatenate([g.tgt for g in groups]) if len(groups) > 1 else groups[0].tgt.copy()
                        for k, piece in enumerate(_split(distinct_sorted(mix(tgt, in_place=True), scratch), parts)):
                            if len(piece):
                                out[k].append(piece)
                if viol < 0:
                    # the other owners' pieces go straight to them through files in memory
                    # (/dev/shm): one copy out, one copy in, nothing through the parent
                    for k in range(parts):
                        if k != me:
                            base = _piece(exchange, level, me, k)
                            (np.concatenate(out[k]) if out[k] else np.zeros(0, dtype=np.uint64)).tofile(base + ".u64")
                    mine = out[me]
                conn.send(("ok", viol, count))
                continue
            if cmd == "insert":
                # this level's candidates owned here (own chunks' and the others'): sorted runs,
                # merged into one batch without duplicates, inserted in one sweep of the table
                runs = list(mine)
                for k in range(parts):
                    if k == me:
                        continue
                    base = _piece(exchange, level, k, me)
                    got = np.fromfile(base + ".u64", dtype=np.uint64)  # the sender's chunks' runs, end to end
                    os.unlink(base + ".u64")
                    if len(got):
                        got.sort(kind="stable")  # a merge of sorted runs
                        runs.append(unique_sorted(got))
                mine = []
                frontier = insert_level(visited, runs)
                level += 1
                conn.send(len(frontier))
    except (EOFError, OSError):
        return
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which falls back to one core
        conn.send(("error", repr(exc), 0))


def make_handoff(
    workers: int, max_states: int | None = None, on_level: Callable[[int, int], None] | None = None
) -> Callable[[_Checker, CodeSet, IntArray, Progress], Result | None]:
    """A handoff for :func:`explore_check.refine` running ``workers`` processes (a power of two)."""
    if workers < 2 or workers & (workers - 1):
        raise ValueError("workers must be a power of two >= 2")

    def run(ck: _Checker, visited: CodeSet, frontier: IntArray, progress: Progress) -> Result | None:
        try:
            ctx = multiprocessing.get_context("fork")
        except ValueError:  # pragma: no cover - no fork on this platform
            return None
        progress.kept.clear()  # the counterexample is rebuilt by a sequential re-run
        conns: list[Connection] = []
        procs = []
        shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
        exchange = tempfile.mkdtemp(prefix="csp-check-", dir=shm)
        try:
            for k in range(workers):
                here, there = ctx.Pipe()
                p = ctx.Process(target=_worker, args=(there, k, workers, ck, visited, frontier, exchange),
                                daemon=True)  # fmt: skip
                p.start()
                there.close()
                conns.append(here)
                procs.append(p)
            return _coordinate(conns, progress, max_states, on_level)
        except (EOFError, OSError, _Fallback):
            return None
        finally:
            for c in conns:  # a forked worker holds the other pipe ends too: tell it to stop
                with contextlib.suppress(OSError):
                    c.send("stop")
                c.close()
            for p in procs:
                p.join(timeout=5)
                if p.is_alive():
                    p.kill()
                    p.join()
            shutil.rmtree(exchange, ignore_errors=True)

    return run


class _Fallback(Exception):
    pass


def _coordinate(
    conns: list[Connection], progress: Progress, max_states: int | None, on_level: Callable[[int, int], None] | None
) -> Result | None:
    states, transitions, levels = progress.states, progress.transitions, progress.levels
    while True:
        for c in conns:
            c.send("expand")
        violation = False
        for c in conns:
            tag, viol, count = c.recv()
            if tag != "ok":
                raise _Fallback(viol)
            transitions += count
            violation = violation or viol >= 0
        if violation:
            return None
        for c in conns:  # every piece is written: each worker reads its inbound ones
            c.send("insert")
        new = 0
        for c in conns:
            got = c.recv()
            if not isinstance(got, int):
                raise _Fallback(got)
            new += got
        if new == 0:
            break
        states += new
        levels += 1
        if max_states is not None and states > max_states:
            raise Limit(max_states)
        if on_level is not None:
            on_level(states, 0)
    store = 0
    for c in conns:
        c.send("nbytes")
        store += int(c.recv())
    return Result(True, None, states, transitions, levels, store)
