"""explore_network / find_deadlock against a plain reference BFS over the network tree."""

from __future__ import annotations

import random
from collections import deque
from typing import Any

import numpy as np
import pytest

from processors.csp.check.explore import (
    StateSpaceLimit,
    compile_network,
    explore_network,
    find_deadlock,
    find_deadlock_compiled,
)
from processors.csp.semantics import network as N
from processors.csp.semantics.lts import LTS, TAU, TAU_NAME, TICK, TICK_NAME, from_edges

VISIBLE = ("a", "b", "c", "d")

# ---------------------------------------------------------------- reference semantics


def ref_init(node: N.Node) -> Any:
    if isinstance(node, N.Leaf):
        return node.lts.initial
    if isinstance(node, N.Parallel):
        return (ref_init(node.left), ref_init(node.right))
    if isinstance(node, N.AlphaParallel):
        return tuple(ref_init(c) for c, _ in node.components)
    return ref_init(node.child)


WAITING = -1  # a leaf inside a parallel that has done its ✓ (as a τ) and waits for the common ✓


def ref_moves(node: N.Node, st: Any, in_parallel: bool = False) -> set[tuple[str, Any]]:
    if isinstance(node, N.Leaf):
        lts = node.lts
        if not in_parallel:
            return {(lts.events[a], t) for a, t in lts.successors(st)}
        if st == WAITING:  # distributed termination: the ✓ of a component is a τ, then all ✓ together
            return {(TICK_NAME, int(t)) for t in np.unique(lts.targets[lts.labels == TICK])}
        return {(TAU_NAME, WAITING) if a == TICK else (lts.events[a], t) for a, t in lts.successors(st)}
    if isinstance(node, N.Parallel):
        lm, rm = ref_moves(node.left, st[0], True), ref_moves(node.right, st[1], True)
        out: set[tuple[str, Any]] = {(e, (x, st[1])) for e, x in lm if e == TAU_NAME or (e not in node.sync and e != TICK_NAME)}
        out |= {(e, (st[0], y)) for e, y in rm if e == TAU_NAME or (e not in node.sync and e != TICK_NAME)}
        out |= {(e, (x, y)) for e, x in lm for f, y in rm if e == f and (e in node.sync or e == TICK_NAME)}
        return out
    if isinstance(node, N.AlphaParallel):
        moves = [ref_moves(c, s, True) for (c, _), s in zip(node.components, st, strict=True)]
        out = set()
        for i, m in enumerate(moves):
            out |= {(e, st[:i] + (x,) + st[i + 1 :]) for e, x in m if e == TAU_NAME}
        events = {e for m in moves for e, _ in m} - {TAU_NAME}
        for e in events:
            who = [i for i, (_, a) in enumerate(node.components) if e == TICK_NAME or e in a]
            if not who:
                continue
            options: list[list[Any]] = [[x for f, x in moves[i] if f == e] for i in who]
            if not all(options):
                continue
            combos: list[tuple[Any, ...]] = [tuple(st)]
            for i, opts in zip(who, options, strict=True):
                combos = [c[:i] + (x,) + c[i + 1 :] for c in combos for x in opts]
            out |= {(e, c) for c in combos}
        return out
    if isinstance(node, N.Hide):
        return {(TAU_NAME if e in node.hidden else e, x) for e, x in ref_moves(node.child, st, in_parallel)}
    assert isinstance(node, N.Rename)
    out = set()
    for e, x in ref_moves(node.child, st, in_parallel):
        images = [new for old, new in node.pairs if old == e]
        out |= {(img, x) for img in images} if images else {(e, x)}
    return out


def ref_terminated(node: N.Node, st: Any) -> bool:
    if isinstance(node, N.Leaf):
        lts = node.lts
        return st != WAITING and bool(np.any((lts.labels == TICK) & (lts.targets == st)))
    if isinstance(node, N.Parallel):
        return ref_terminated(node.left, st[0]) and ref_terminated(node.right, st[1])
    if isinstance(node, N.AlphaParallel):
        return all(ref_terminated(c, s) for (c, _), s in zip(node.components, st, strict=True))
    return ref_terminated(node.child, st)


def ref_bfs(node: N.Node) -> tuple[dict[Any, int], dict[Any, set[tuple[str, Any]]]]:
    init = ref_init(node)
    dist = {init: 0}
    succ: dict[Any, set[tuple[str, Any]]] = {}
    queue = deque([init])
    while queue:
        s = queue.popleft()
        succ[s] = ref_moves(node, s)
        for _, t in succ[s]:
            if t not in dist:
                dist[t] = dist[s] + 1
                queue.append(t)
    return dist, succ


# ---------------------------------------------------------------- random networks


def random_leaf(rng: random.Random) -> N.Leaf:
    n = rng.randint(1, 5)
    events = (TAU_NAME, TICK_NAME, *VISIBLE)
    edges = set()
    for s in range(n):
        for _ in range(rng.randint(0 if s else 1, 3)):
            edges.add((s, rng.choice([TAU, 2, 3, 4, 5, 2, 3]), rng.randrange(n)))
    num = n
    if rng.random() < 0.3:  # a ✓ into a fresh terminal state Ω
        edges.add((rng.randrange(n), TICK, n))
        num = n + 1
    return N.Leaf(from_edges(events, 0, num, sorted(edges)))


def random_node(rng: random.Random, depth: int) -> N.Node:
    if depth == 0 or rng.random() < 0.15:
        return random_leaf(rng)
    kind = rng.choice(["par", "par", "alpha", "hide", "rename"])
    if kind == "par":
        sync = frozenset(e for e in VISIBLE if rng.random() < 0.5)
        return N.Parallel(random_node(rng, depth - 1), random_node(rng, depth - 1), sync)
    if kind == "alpha":
        comps = tuple(
            (random_node(rng, depth - 1), frozenset(e for e in VISIBLE if rng.random() < 0.6))
            for _ in range(rng.randint(2, 3))
        )
        return N.AlphaParallel(comps)
    if kind == "hide":
        return N.Hide(random_node(rng, depth - 1), frozenset(e for e in VISIBLE if rng.random() < 0.4))
    pairs = frozenset((rng.choice(VISIBLE), rng.choice(VISIBLE)) for _ in range(rng.randint(1, 3)))
    return N.Rename(random_node(rng, depth - 1), pairs)


def level_sizes(lts: LTS) -> list[int]:
    dist = {0: 0}
    queue = deque([0])
    while queue:
        s = queue.popleft()
        for _, t in lts.successors(s):
            if t not in dist:
                dist[t] = dist[s] + 1
                queue.append(t)
    return sorted(dist.values())


SEEDS = list(range(150))


@pytest.mark.parametrize("seed", SEEDS)
def test_matches_reference(seed: int) -> None:
    rng = random.Random(seed)
    node = random_node(rng, 3)
    dist, succ = ref_bfs(node)
    ref_transitions = sum(len(m) for m in succ.values())
    lts = explore_network(node)
    assert lts.num_states == len(dist)
    assert lts.num_transitions == ref_transitions
    assert lts.initial == 0
    # BFS numbering: distances never decrease with the state number
    assert level_sizes(lts) == sorted(dist.values())
    ref_labels = sorted(e for m in succ.values() for e, _ in m)
    assert sorted(lts.events[a] for a in lts.labels) == ref_labels

    result = find_deadlock(node)
    assert result.states == len(dist)
    assert result.transitions == ref_transitions
    dead = [s for s, m in succ.items() if not m and not ref_terminated(node, s)]
    assert result.deadlock == bool(dead)
    if dead:
        assert result.path is not None and result.trace is not None
        assert len(result.path) == min(dist[s] for s in dead)
        assert result.trace == [e for e in result.path if e != TAU_NAME]
        assert replays_to_deadlock(node, succ, result.path)
    # tiny batches: duplicates across batches, deadlock positions offset by the batch
    small = find_deadlock_compiled(compile_network(node), chunk=2)
    assert (small.states, small.transitions, small.deadlock) == (
        result.states,
        result.transitions,
        result.deadlock,
    )
    if small.path is not None:
        assert len(small.path) == len(result.path or [])
        assert replays_to_deadlock(node, succ, small.path)


def replays_to_deadlock(node: N.Node, succ: dict[Any, set[tuple[str, Any]]], path: list[str]) -> bool:
    current = {ref_init(node)}
    for e in path:
        current = {t for s in current for f, t in succ[s] if f == e}
    return any(not succ[s] and not ref_terminated(node, s) for s in current)


# ---------------------------------------------------------------- hand-built cases


def chain(events: tuple[str, ...], n: int, label: int, loop: bool = False) -> N.Leaf:
    edges = [(i, label, i + 1) for i in range(n - 1)]
    if loop:
        edges.append((n - 1, label, 0))
    return N.Leaf(from_edges(events, 0, n, edges))


EV = (TAU_NAME, TICK_NAME, "a", "b")


def test_interleaving_product_and_limit() -> None:
    node = N.Parallel(chain(EV, 10, 2, loop=True), chain(EV, 10, 3, loop=True), frozenset())
    lts = explore_network(node)
    assert lts.num_states == 100
    assert lts.num_transitions == 200
    assert find_deadlock(node).deadlock is False
    with pytest.raises(StateSpaceLimit, match="max_states=50"):
        explore_network(node, max_states=50)
    with pytest.raises(StateSpaceLimit, match="max_states=50"):
        find_deadlock(node, max_states=50)


def test_sync_mismatch_deadlocks_with_shortest_trace() -> None:
    # left: a -> a -> b -> STOP ; right: a -> b -> ... ; sync {a, b}
    left = N.Leaf(from_edges(EV, 0, 4, [(0, 2, 1), (1, 2, 2), (2, 3, 3)]))
    right = N.Leaf(from_edges(EV, 0, 3, [(0, 2, 1), (1, 3, 2), (2, 2, 0)]))
    result = find_deadlock(N.Parallel(left, right, frozenset({"a", "b"})))
    assert result.deadlock
    assert result.trace == ["a"]
    assert result.states == 2


def test_termination_is_not_deadlock() -> None:
    skip = N.Leaf(from_edges(EV, 0, 2, [(0, TICK, 1)]))
    both = N.Parallel(skip, skip, frozenset())
    result = find_deadlock(both)
    assert result.deadlock is False
    # each side's ✓ is a τ to "waiting" (distributed termination), then one common ✓
    assert result.states == 5
    assert result.transitions == 5
    # one side cannot terminate: the system deadlocks after nothing
    stop = N.Leaf(from_edges(EV, 0, 1, []))
    assert find_deadlock(N.Parallel(skip, stop, frozenset())).trace == []


def test_hidden_path_reports_tau() -> None:
    leaf = N.Leaf(from_edges(EV, 0, 3, [(0, 2, 1), (1, 3, 2)]))
    result = find_deadlock(N.Hide(leaf, frozenset({"a"})))
    assert result.path == [TAU_NAME, "b"]
    assert result.trace == ["b"]


def test_wide_state_uses_several_code_words() -> None:
    # 70 leaves of 4 states need 140 bits: the multi-word fallback
    leaves = [chain(EV, 4, 2, loop=True) for _ in range(70)]
    node: N.Node = leaves[0]
    for leaf in leaves[1:]:
        node = N.Parallel(node, leaf, frozenset({"a"}))
    lts = explore_network(node)
    assert lts.num_states == 4
    assert lts.num_transitions == 4
    stuck = N.Parallel(node, N.Leaf(from_edges(EV, 0, 3, [(0, 2, 1), (1, 2, 2)])), frozenset({"a"}))
    result = find_deadlock(stuck)
    assert result.trace == ["a", "a"]


# ---------------------------------------------------------------- visited sets


@pytest.mark.parametrize("seed", range(4))
def test_code_set_matches_python_set(seed: int) -> None:
    from processors.csp.check.explore_hash import CodeSet, StateTable, mix

    rng = np.random.default_rng(seed)
    # repeats across batches; clusters at both ends of the table make probing
    # (and the rehash when growing) wrap around to slot 0
    top = np.uint64(0xFFFF_FFFF_FFFF_FF00)
    fast, with_values, general = CodeSet(), CodeSet(with_values=True), StateTable(2)
    seen: set[int] = set()
    for _ in range(30):
        spread = mix(rng.integers(0, 40_000, size=rng.integers(1, 2000)))
        bottom = rng.integers(0, 60, size=20).astype(np.uint64)  # home slot 0
        high = top + rng.integers(0, 60, size=20).astype(np.uint64)  # home slot: the last
        keys = np.unique(np.concatenate([spread, bottom, high]))
        expect = np.array([int(x) not in seen for x in keys])
        is_new, _ = fast.insert(keys)
        assert (is_new == expect).all()
        is_new, slot = with_values.insert(keys)
        assert (is_new == expect).all()
        assert (with_values.keys[slot] == keys).all()
        signed = keys.view(np.int64)
        is_new, _ = general.insert((signed & 0x7FFF_FFFF, signed >> 31 & 0x7FFF_FFFF_FFFF))
        assert (is_new == expect).all()
        seen.update(int(x) for x in keys)
    assert fast.size == with_values.size == general.size == len(seen)


@pytest.mark.parametrize("seed", SEEDS[:60])
def test_scanning_rules_match_reference(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rules whose pivot is enabled in many local states scan the whole batch."""
    from processors.csp.check import explore_succ

    monkeypatch.setattr(explore_succ, "MAX_BUCKETS", 0)
    node = random_node(random.Random(seed), 3)
    assert all(not r.pivot_states for r in compile_network(node).rules)
    dist, succ = ref_bfs(node)
    lts = explore_network(node)
    assert (lts.num_states, lts.num_transitions) == (len(dist), sum(len(m) for m in succ.values()))
    result = find_deadlock(node)
    dead = [s for s, m in succ.items() if not m and not ref_terminated(node, s)]
    assert result.deadlock == bool(dead)
    if dead:
        assert result.path is not None
        assert len(result.path) == min(dist[s] for s in dead)
        assert replays_to_deadlock(node, succ, result.path)


def test_multi_word_codes_grow_the_table() -> None:
    # 12 toggling leaves (2^12 states) plus 20 idle 16-state leaves: 92 bits, two words
    toggle = N.Leaf(from_edges(EV, 0, 2, [(0, 2, 1), (1, 3, 0)]))
    idle = N.Leaf(from_edges(EV, 0, 16, []))
    node: N.Node = idle
    for leaf in [toggle] * 12 + [idle] * 19:
        node = N.Parallel(node, leaf, frozenset())
    lts = explore_network(node)
    assert lts.num_states == 4096
    assert lts.num_transitions == 12 * 4096
    result = find_deadlock(node)
    assert (result.states, result.transitions, result.deadlock) == (4096, 12 * 4096, False)
