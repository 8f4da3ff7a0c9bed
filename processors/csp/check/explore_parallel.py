"""Both cores for the on-the-fly check: the frontier partitioned by state hash (as FDR does).

:func:`handoff` plugs into :func:`processors.csp.check.explore_check.refine`: once a
BFS level is large, the search forks ``workers`` processes. Worker ``k`` owns
the product states whose mixed code has low bits ``k``: its part of the
frontier, and the visited set for its states (inherited from the sequential
phase by fork, copy-on-write). Per level each worker expands and checks its
frontier, removes duplicate candidates, keeps those it owns and hands the rest,
through the coordinating parent, to their owners; then each inserts what it
received and reports its new frontier's size.

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
from collections.abc import Callable
from multiprocessing.connection import Connection

import numpy as np

from processors.csp.check.explore_check import (
    CHUNK,
    Limit,
    Progress,
    Result,
    _Checker,
)
from processors.csp.check.explore_hash import (
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


def _split(u: UintArray, parts: int) -> list[UintArray]:
    """``u`` (sorted mixed codes) split by owner: the low bits of the mixed code (the top
    bits are the home slot in the visited set, which must stay spread over the table);
    each piece stays sorted."""
    owner = u & np.uint64(parts - 1)
    return [u[owner == k] for k in range(parts)]


def _worker(conn: Connection, me: int, parts: int, ck: _Checker, visited: CodeSet, frontier: IntArray) -> None:
    mine = _split(np.sort(mix(frontier.copy())), parts)[me]
    frontier = unmix(mine)
    scratch = Scratch()
    keep: UintArray = np.zeros(0, dtype=np.uint64)
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
                pieces: list[list[UintArray]] = [[] for _ in range(parts)]
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
                            pieces[k].append(piece)
                conn.send(("ok", viol, count))
                if viol >= 0:
                    continue
                for k in range(parts):
                    joined = np.concatenate(pieces[k]) if pieces[k] else np.zeros(0, dtype=np.uint64)
                    if k == me:
                        keep = joined
                    else:
                        conn.send_bytes(joined.tobytes())
                continue
            if cmd == "insert":
                inbound = [keep] + [np.frombuffer(conn.recv_bytes(), dtype=np.uint64) for _ in range(parts - 1)]
                cand = np.concatenate(inbound)
                cand.sort(kind="stable")  # sorted runs: timsort merges them
                u = unique_sorted(cand)
                is_new, _ = visited.insert(u)
                frontier = unmix(u[is_new])
                keep = np.zeros(0, dtype=np.uint64)
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
        try:
            for k in range(workers):
                here, there = ctx.Pipe()
                p = ctx.Process(target=_worker, args=(there, k, workers, ck, visited, frontier), daemon=True)
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

    return run


class _Fallback(Exception):
    pass


def _coordinate(
    conns: list[Connection], progress: Progress, max_states: int | None, on_level: Callable[[int, int], None] | None
) -> Result | None:
    states, transitions, levels = progress.states, progress.transitions, progress.levels
    parts = len(conns)
    while True:
        for c in conns:
            c.send("expand")
        inbound: list[list[bytes]] = [[] for _ in range(parts)]
        violation = False
        for k, c in enumerate(conns):
            tag, viol, count = c.recv()
            if tag != "ok":
                raise _Fallback(viol)
            transitions += count
            if viol >= 0:
                violation = True
                continue
            for d in range(parts):
                if d != k:
                    inbound[d].append(c.recv_bytes())
        if violation:
            return None
        for d, c in enumerate(conns):
            c.send("insert")
            for b in inbound[d]:
                c.send_bytes(b)
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
