"""A vectorised open-addressing hash set of state codes (numpy only).

Keys are K-word non-negative int64 codes (``K == 1`` for most systems); an
empty slot holds ``-1`` in word 0. Batches are inserted with linear probing,
all keys of a batch advancing together: gather the slots, resolve hits, claim
empty slots by scattering and re-reading (the last writer wins, the others
probe on). Batches must not contain duplicate keys (callers ``np.unique``
first). The table doubles to stay at most half full. Optionally each slot
carries an int64 value (the state number, for building the full LTS).

The table is an object owned by one exploration; nothing here is global.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from processors.csp.check.explore_encoding import Words
from processors.csp.semantics.lts import IntArray

EMPTY = -1
_MULT = (0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93)
_MAX_LOAD = 0.5
_MAX_LOAD_SORTED = 0.75  # sorted batches probe adjacent slots: a fuller table costs little


class StateTable:
    def __init__(self, num_words: int, with_values: bool = False, log2_capacity: int = 12) -> None:
        self.num_words = num_words
        self.with_values = with_values
        self.size = 0
        self._alloc(log2_capacity)

    def _alloc(self, log2_capacity: int) -> None:
        self.log2 = log2_capacity
        cap = 1 << log2_capacity
        self.keys: list[IntArray] = [np.full(cap, EMPTY, dtype=np.int64) for _ in range(self.num_words)]
        self.values: IntArray = np.zeros(cap if self.with_values else 0, dtype=np.int64)

    @property
    def capacity(self) -> int:
        return 1 << self.log2

    @property
    def nbytes(self) -> int:
        return sum(k.nbytes for k in self.keys) + self.values.nbytes

    def _hash(self, keys: Words) -> IntArray:
        h = keys[0].view(np.uint64) * np.uint64(_MULT[0])
        for w in range(1, len(keys)):
            h ^= keys[w].view(np.uint64) * np.uint64(_MULT[w % len(_MULT)])
            h ^= h >> np.uint64(31)
            h *= np.uint64(_MULT[(w + 1) % len(_MULT)])
        out: IntArray = (h >> np.uint64(64 - self.log2)).view(np.int64)
        return out

    def _grow(self, needed: int) -> None:
        log2 = self.log2
        while (1 << log2) * _MAX_LOAD < needed:
            log2 += 1
        if log2 == self.log2:
            return
        occupied = self.keys[0] != EMPTY
        old_keys = tuple(k[occupied] for k in self.keys)
        old_values = self.values[occupied] if self.with_values else self.values
        self._alloc(log2)
        self.size = 0
        _, slots = self.insert(old_keys)
        if self.with_values:
            self.values[slots] = old_values

    def insert(self, keys: Words) -> tuple[npt.NDArray[np.bool_], IntArray]:
        """Insert distinct keys; return (newly inserted?, slot of each key)."""
        n = len(keys[0])
        self._grow(self.size + n)
        is_new = np.zeros(n, dtype=np.bool_)
        slot = np.empty(n, dtype=np.int64)
        ids = np.arange(n, dtype=np.int64)
        k = list(keys)
        pos = self._hash(keys)
        wrap = self.capacity - 1
        tables = self.keys
        while ids.size:
            t0 = tables[0][pos]
            hit = t0 == k[0]
            for w in range(1, len(k)):
                hit &= tables[w][pos] == k[w]
            empty = t0 == EMPTY
            slot[ids[hit]] = pos[hit]
            done = hit
            if empty.any():
                e = np.flatnonzero(empty)
                pe = pos[e]
                for w in range(len(k)):
                    tables[w][pe] = k[w][e]
                won = tables[0][pe] == k[0][e]
                for w in range(1, len(k)):
                    won &= tables[w][pe] == k[w][e]
                we = e[won]
                is_new[ids[we]] = True
                slot[ids[we]] = pos[we]
                done = hit.copy()
                done[we] = True
            rest = np.flatnonzero(~done)
            if not rest.size:
                break
            advance = ~empty[rest]
            pos = pos[rest]
            pos[advance] = (pos[advance] + 1) & wrap
            ids = ids[rest]
            k = [x[rest] for x in k]
        self.size += int(np.count_nonzero(is_new))
        return is_new, slot


# ---------------------------------------------------------------- single-word fast path

_MIX = 0x9E3779B97F4A7C15
_UNMIX = pow(_MIX, -1, 1 << 64)
MIXED_EMPTY = 1 << 63  # mix(1 << 63): never the image of a code (codes use 63 bits)

UintArray = npt.NDArray[np.uint64]


def mix(codes: IntArray, in_place: bool = False) -> UintArray:
    """A bijection of 64-bit words whose top bits are well spread (Fibonacci hashing)."""
    u = codes.view(np.uint64)
    if in_place:
        u *= np.uint64(_MIX)
        return u
    out: UintArray = u * np.uint64(_MIX)
    return out


def unmix(mixed: UintArray) -> IntArray:
    out: IntArray = (mixed * np.uint64(_UNMIX)).view(np.int64)
    return out


class CodeSet:
    """Linear-probing hash set of mixed single-word codes.

    The home slot of a key is its top bits, so a *sorted* batch of keys visits
    the table in increasing slot order: gathers and scatters stream through
    memory instead of missing the cache (and TLB) on every key, and keys
    racing for the same empty slot are adjacent in the batch, so the winner
    (the first) is found without re-reading the table.
    """

    def __init__(self, with_values: bool = False, log2_capacity: int = 12, skip_bits: int = 0) -> None:
        self.with_values = with_values
        self.size = 0
        # The home slot is taken from the bits below the top ``skip_bits``: a parallel
        # worker's keys all share their top bits (its owner number), which would leave
        # most of the table unused (see explore_parallel.owner_bounds).
        self.skip = np.uint64(skip_bits)
        self._alloc(log2_capacity)

    def _home(self, keys: UintArray) -> IntArray:
        shift = np.uint64(64 - self.log2)
        if self.skip:
            out: IntArray = ((keys << self.skip) >> shift).view(np.int64)
            return out
        out = (keys >> shift).view(np.int64)
        return out

    def _alloc(self, log2_capacity: int) -> None:
        self.log2 = log2_capacity
        cap = 1 << log2_capacity
        self.keys: UintArray = np.full(cap, MIXED_EMPTY, dtype=np.uint64)
        self.values: IntArray = np.zeros(cap if self.with_values else 0, dtype=np.int64)

    @property
    def nbytes(self) -> int:
        return int(self.keys.nbytes + self.values.nbytes)

    def growth_bytes(self, more: int) -> int:
        """Bytes the table would allocate to take ``more`` keys (0 if it need not grow)."""
        if (self.size + more) <= (1 << self.log2) * _MAX_LOAD_SORTED:
            return 0
        return 2 * self.nbytes

    def _grow(self, needed: int) -> None:
        log2 = self.log2
        while (1 << log2) * _MAX_LOAD_SORTED < needed:
            log2 += 1
        if log2 == self.log2:
            return
        occupied = self.keys != MIXED_EMPTY
        old_keys = self.keys[occupied]
        old_values = self.values[occupied] if self.with_values else self.values
        del occupied
        if self.with_values:
            order = np.argsort(old_keys, kind="stable")
            old_keys, old_values = old_keys[order], old_values[order]
            del order
        else:
            old_keys.sort(kind="stable")  # table order is nearly sorted: timsort is fast here
        # Grow the arrays in place (realloc keeps the pages already touched:
        # first-touch page faults are what growing costs most) and refill.
        self.log2 = log2
        self.keys.resize(1 << log2, refcheck=False)
        self.keys.fill(MIXED_EMPTY)
        if self.with_values:
            self.values.resize(1 << log2, refcheck=False)
        slots = self._place(old_keys)
        if self.with_values:
            self.values[slots] = old_values

    def _place(self, keys: UintArray, chunk: int = 1 << 20) -> IntArray:
        """Insert sorted distinct keys into the empty table without probing
        rounds: in sorted order, linear probing puts key ``i`` at
        ``max(pos[i], slot[i-1] + 1)``, a running maximum (done in chunks so
        the temporaries stay small and are recycled)."""
        n = len(keys)
        cap = 1 << self.log2
        shift = np.uint64(64 - self.log2)
        slots = np.empty(n, dtype=np.int64)
        steps = np.arange(min(n, chunk), dtype=np.int64)
        carry = -1  # slot of the previous key
        for lo in range(0, n, chunk):
            x = slots[lo : lo + chunk]
            if self.skip:
                np.left_shift(keys[lo : lo + chunk], self.skip, out=x.view(np.uint64))
                np.right_shift(x.view(np.uint64), shift, out=x.view(np.uint64))
            else:
                np.right_shift(keys[lo : lo + chunk], shift, out=x.view(np.uint64))
            x -= steps[: len(x)]
            x[0] = max(int(x[0]), carry + 1)
            np.maximum.accumulate(x, out=x)
            x += steps[: len(x)]
            carry = int(x[-1])
        fit = int(np.searchsorted(slots, cap))  # slots increase: the ones past the end are a tail
        self.keys[slots[:fit]] = keys[:fit]
        self.size = fit
        if fit < n:  # the tail wraps around to the start of the table
            _, slots[fit:] = self.insert(keys[fit:], want_slots=True)
        return slots

    def insert(self, keys: UintArray, want_slots: bool = False) -> tuple[npt.NDArray[np.bool_], IntArray]:
        """Insert sorted distinct mixed keys; return (newly inserted?, slot of
        each key -- only computed with ``want_slots`` or a table with values)."""
        n = len(keys)
        self._grow(self.size + n)
        slots = want_slots or self.with_values
        is_new = np.zeros(n, dtype=np.bool_)
        slot = np.empty(n if slots else 0, dtype=np.int64)
        ids: IntArray | None = None  # None: the identity (first round)
        k = keys
        pos = self._home(keys)
        wrap = (1 << self.log2) - 1
        table = self.keys
        ordered = True  # pos is non-decreasing: sorted keys, and probing keeps it so until it wraps
        while True:
            t = table[pos]
            done = t == k
            if slots:
                slot[done if ids is None else ids[done]] = pos[done]
            empty = t == MIXED_EMPTY
            del t
            e = np.flatnonzero(empty)
            if e.size:
                pe = pos[e]
                if ordered or len(pe) < 2 or bool((pe[1:] >= pe[:-1]).all()):
                    first = np.ones(len(e), dtype=np.bool_)
                    np.not_equal(pe[1:], pe[:-1], out=first[1:])
                    we = e[first]
                    table[pe[first]] = k[we]
                else:  # wrapped around: claim by scatter and re-read
                    table[pe] = k[e]
                    we = e[table[pe] == k[e]]
                wid = we if ids is None else ids[we]
                is_new[wid] = True
                if slots:
                    slot[wid] = pos[we]
                done[we] = True
            np.logical_not(done, out=done)
            rest = np.flatnonzero(done)
            if not rest.size:
                break
            advance = np.flatnonzero(~empty[rest])
            pos = pos[rest]
            moved = pos[advance]
            if ordered and moved.size and moved[-1] == wrap:
                ordered = False
            pos[advance] = (moved + 1) & wrap
            ids = rest if ids is None else ids[rest]
            k = k[rest]
        self.size += int(np.count_nonzero(is_new))
        return is_new, slot


# ---------------------------------------------------------------- deduplicating a batch


class Scratch:
    """A reusable scratch table for :func:`distinct_sorted` (reused: first-touch page faults cost most)."""

    def __init__(self) -> None:
        self.table: UintArray = np.empty(0, dtype=np.uint64)
        self.distinct = 1.0  # distinct keys per candidate in the last batch (sizes the table)

    def get(self, log2: int) -> UintArray:
        if len(self.table) < 1 << log2:
            self.table = np.empty(1 << log2, dtype=np.uint64)
        table = self.table[: 1 << log2]
        table.fill(MIXED_EMPTY)
        return table


def distinct_sorted(m: UintArray, scratch: Scratch) -> UintArray:
    """The distinct keys of ``m`` (mixed codes), sorted.

    Most candidates of a BFS level are duplicates (many paths reach a state). The keys
    are scattered into an empty scratch table at their top bits (the last writer wins
    a slot); reading the table in slot order gives one copy of every key that won, already
    sorted (a slot holds one key and slots follow the top bits). Only the few keys that
    lost their slot to another key are sorted and merged in."""
    n = len(m)
    if n < 1 << 14:
        m.sort()
        return unique_sorted(m)
    # about 2 slots per distinct key, going by the last batch: a small table stays in cache
    log2 = max(12, (int(2 * n * min(1.0, 1.5 * scratch.distinct)) - 1).bit_length())
    slot = (m >> np.uint64(64 - log2)).view(np.int64)
    table = scratch.get(log2)
    table[slot] = m
    lost = m[table[slot] != m]
    del slot
    winners: UintArray = table[table != np.uint64(MIXED_EMPTY)]
    if len(lost):
        lost.sort()
        winners = np.concatenate([winners, unique_sorted(lost)])
        winners.sort(kind="stable")  # two sorted runs: timsort merges them
    scratch.distinct = len(winners) / n
    return winners


def unique_sorted(a: UintArray) -> UintArray:
    if len(a) < 2:
        return a
    keep = np.empty(len(a), dtype=np.bool_)
    keep[0] = True
    np.not_equal(a[1:], a[:-1], out=keep[1:])
    out: UintArray = a[keep]
    return out
