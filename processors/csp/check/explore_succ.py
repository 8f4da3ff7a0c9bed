"""Vectorised successor generation for a flattened network.

Each rule is compiled against the state encoding into numpy lookup tables,
one per moving leaf: ``enabled[s]`` and, for deterministic moves, the code
delta ``(target - s) << shift``; for nondeterministic moves (several targets
for one label) a CSR list of deltas. One leaf per rule is the *pivot*: the
participant enabled in the fewest of its local states. The frontier is
bucketed by each pivot's local state once per level, so a rule only touches
the states where its pivot is enabled, then filters by the other
participants, and adds deltas to the gathered codes. Everything here is a
pure function of the frontier.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from processors.csp.check.explore_encoding import Encoding, Words
from processors.csp.check.explore_rules import Flat
from processors.csp.semantics.lts import LTS, TAU_NAME, TICK, TICK_NAME, IntArray

BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Move:
    """One leaf's part in a rule: a table indexed by the leaf's local state."""

    leaf: int
    word: int
    shift: int
    mask: int
    enabled: BoolArray
    deterministic: bool
    delta: IntArray  # deterministic: code delta per local state (0 if disabled)
    counts: IntArray  # nondeterministic: number of targets per local state
    starts: IntArray  # nondeterministic: offset into ``deltas``
    deltas: IntArray
    # Fast paths (common in practice): the move is enabled in exactly one
    # local state (test the field by equality) / in every local state (no
    # test), and / or deterministic with the same code delta everywhere.
    single: int  # the only enabled local state, or -1
    everywhere: bool
    const_delta: int | None

    @property
    def field(self) -> int:
        return self.mask << self.shift


@dataclass(frozen=True)
class CompiledRule:
    label: int
    pivot: Move
    # (local state, code deltas) of the pivot; empty for a rule whose pivot is
    # enabled in many local states: it scans the whole batch instead, with the
    # pivot among ``others``.
    pivot_states: tuple[tuple[int, tuple[int, ...]], ...]
    others: tuple[Move, ...]


MAX_BUCKETS = 4  # a pivot enabled in more local states than this scans instead


@dataclass(frozen=True)
class Compiled:
    encoding: Encoding
    events: tuple[str, ...]
    rules: tuple[CompiledRule, ...]
    final: tuple[BoolArray, ...]  # per leaf: local state reached by ✓
    initial: tuple[int, ...]


@dataclass(frozen=True)
class Chunk:
    rule: int
    src: IntArray  # positions in the frontier
    succ: Words


def _sources(lts: LTS) -> IntArray:
    return np.repeat(np.arange(lts.num_states, dtype=np.int64), np.diff(lts.offsets))


def _move(lts: LTS, src: IntArray, leaf: int, label: int, enc: Encoding) -> Move:
    f = enc.fields[leaf]
    n = lts.num_states
    sel = lts.labels == label
    pairs = np.unique(np.stack([src[sel], lts.targets[sel]], axis=1), axis=0)
    s, t = pairs[:, 0], pairs[:, 1]
    counts = np.bincount(s, minlength=n).astype(np.int64)
    starts = np.zeros(n, dtype=np.int64)
    np.cumsum(counts[:-1], out=starts[1:])
    deltas = (t << f.shift) - (s << f.shift)
    delta = np.zeros(n, dtype=np.int64)
    deterministic = bool(counts.max(initial=0) <= 1)
    if deterministic:
        delta[s] = deltas
    enabled = counts > 0
    on = np.flatnonzero(enabled)
    single = int(on[0]) if len(on) == 1 else -1
    const = int(deltas[0]) if deterministic and len(deltas) and bool((deltas == deltas[0]).all()) else None
    return Move(
        leaf, f.word, f.shift, f.mask, enabled, deterministic, delta, counts, starts, deltas,
        single, bool(enabled.all()), const,
    )  # fmt: skip


def compile_rules(flat: Flat, enc: Encoding) -> Compiled:
    events = _event_table(flat)
    index = {e: i for i, e in enumerate(events)}
    sources = [_sources(lts) for lts in flat.leaves]
    cache: dict[tuple[int, int], Move] = {}
    rules = []
    for rule in flat.rules:
        moves = []
        for leaf, label in rule.participants:
            if (leaf, label) not in cache:
                cache[leaf, label] = _move(flat.leaves[leaf], sources[leaf], leaf, label, enc)
            moves.append(cache[leaf, label])
        if any(not m.enabled.any() for m in moves):
            continue
        pivot = min(moves, key=lambda m: (float(m.enabled.mean()), -len(m.enabled), m.leaf))
        states = np.flatnonzero(pivot.enabled)
        if len(states) > MAX_BUCKETS:
            rules.append(CompiledRule(index[rule.label], pivot, (), tuple(moves)))
            continue
        entries = tuple(
            (int(s), tuple(int(d) for d in pivot.deltas[pivot.starts[s] : pivot.starts[s] + pivot.counts[s]]))
            for s in states
        )
        others = tuple(m for m in moves if m is not pivot)
        rules.append(CompiledRule(index[rule.label], pivot, entries, others))
    final = tuple(_final_states(lts) for lts in flat.leaves)
    initial = tuple(lts.initial for lts in flat.leaves)
    return Compiled(enc, events, tuple(rules), final, initial)


def _event_table(flat: Flat) -> tuple[str, ...]:
    visible = sorted({r.label for r in flat.rules} - {TAU_NAME, TICK_NAME})
    return (TAU_NAME, TICK_NAME, *visible)


def _final_states(lts: LTS) -> BoolArray:
    out = np.zeros(lts.num_states, dtype=np.bool_)
    out[lts.targets[lts.labels == TICK]] = True
    return out


def _small(d: IntArray, n: int) -> npt.NDArray[np.integer]:
    if n <= 256:
        return d.astype(np.uint8)
    if n <= 65536:
        return d.astype(np.uint16)
    return d


def successors(comp: Compiled, words: Words, rule_subset: Sequence[int] | None = None) -> list[Chunk]:
    """All transitions of the frontier ``words``, grouped by rule."""
    enc = comp.encoding
    digits: dict[int, npt.NDArray[np.integer]] = {}
    buckets: dict[tuple[int, int], IntArray] = {}
    chunks: list[Chunk] = []
    order = range(len(comp.rules)) if rule_subset is None else rule_subset
    everything: IntArray | None = None
    for r in order:
        rule = comp.rules[r]
        if not rule.pivot_states:  # scan: the pivot is checked like the other moves
            if everything is None:
                everything = np.arange(len(words[0]), dtype=np.int64)
            chunks.extend(_fire(r, rule, (0,), everything, words, pivot_word=0))
            continue
        p = rule.pivot
        if p.leaf not in digits:
            digits[p.leaf] = _small(enc.digit(words, p.leaf), len(p.enabled))
        for s, pdeltas in rule.pivot_states:
            key = (p.leaf, s)
            idx = buckets.get(key)
            if idx is None:
                idx = np.flatnonzero(digits[p.leaf] == s)
                buckets[key] = idx
            if idx.size:
                chunks.extend(_fire(r, rule, pdeltas, idx, words, p.word))
    return chunks


def _fire(
    r: int, rule: CompiledRule, pdeltas: tuple[int, ...], idx: IntArray, words: Words, pivot_word: int
) -> list[Chunk]:
    cur = [w[idx] for w in words]
    ds: list[IntArray | None] = []
    for m in rule.others:
        d: IntArray | None = None
        if m.single >= 0:
            ok = (cur[m.word] & m.field) == (m.single << m.shift)
        elif m.everywhere:
            ok = None
        else:
            d = (cur[m.word] >> m.shift) & m.mask
            ok = m.enabled[d]
        if ok is not None and not ok.all():
            keep = np.flatnonzero(ok)
            if not keep.size:
                return []
            idx = idx[keep]
            cur = [c[keep] for c in cur]
            ds = [None if x is None else x[keep] for x in ds]
            d = None if d is None else d[keep]
        ds.append(d)
    const = [0] * len(words)
    for i, m in enumerate(rule.others):
        if m.const_delta is not None:
            const[m.word] += m.const_delta
            continue
        d = ds[i]
        if d is None:
            d = (cur[m.word] >> m.shift) & m.mask
        if m.deterministic:
            cur[m.word] += m.delta[d]
            continue
        c = m.counts[d]
        total = int(c.sum())
        rep = np.repeat(np.arange(len(c), dtype=np.int64), c)
        first = np.cumsum(c) - c
        local = np.arange(total, dtype=np.int64) - np.repeat(first, c)
        off = m.starts[d][rep] + local
        idx = idx[rep]
        cur = [x[rep] for x in cur]
        ds = [None if x is None else x[rep] for x in ds]
        cur[m.word] += m.deltas[off]
    for w, add in enumerate(const):
        if add and w != pivot_word:
            cur[w] += add
    pw = pivot_word
    out = []
    for k, pd in enumerate(pdeltas):
        succ = list(cur) if k == len(pdeltas) - 1 else [x.copy() for x in cur]
        succ[pw] += pd + const[pw]
        out.append(Chunk(r, idx, tuple(succ)))
    return out


def terminated(comp: Compiled, words: Words) -> BoolArray:
    """Whether every leaf sits in a state reached by ✓."""
    out = np.ones(len(words[0]), dtype=np.bool_)
    for leaf, fin in enumerate(comp.final):
        out &= fin[comp.encoding.digit(words, leaf)]
    return out
