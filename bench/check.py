"""Deadlock-check benchmark: dining philosophers with forks (deadlocks) and with
a butler (deadlock-free), N = n_min..n_max.

Per run it prints N, system, states, transitions, seconds (all state-space
work: network -> rule tables -> BFS -> deadlock verdict and trace), states/s,
bytes per state (state store: hash table + per-level codes, over states) and
the verdict; the time to parse the CSPm model and compile its components to
a network is reported separately (``front s``). The last line is
``RESULT states_per_s=... n=...`` for the largest butler run.

Models: ``bench/models/dining_{forks,butler}.csp`` (``N = ...`` substituted)
through the CSPm front end (``load_source(text).process("SYSTEM")``) and
``compile.to_network``.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from processors.csp import network as N  # noqa: E402
from processors.csp.explore import compile_network, find_deadlock_compiled  # noqa: E402

MODELS = ROOT / "bench" / "models"
SYSTEMS = ("forks", "butler")
DEFAULT_N_MAX = 9


# ----------------------------------------------------------------- CSPm networks


def cspm_network(system: str, n: int) -> N.Node:
    from processors.csp.compile import to_network
    from processors.csp.frontend import load_source

    text = (MODELS / f"dining_{system}.csp").read_text(encoding="utf-8")
    text = re.sub(r"(?m)^N = \d+$", f"N = {n}", text)
    proc = load_source(text, f"dining_{system}.csp").process("SYSTEM")
    node = to_network(proc, 10_000_000)
    if node is None:
        raise RuntimeError("to_network returned no network for SYSTEM")
    return node


# ----------------------------------------------------------------- runs


def run(system: str, n: int, max_states: int, trace_memory: bool) -> dict[str, object]:
    t0 = time.perf_counter()
    node = cspm_network(system, n)
    front = time.perf_counter() - t0
    if trace_memory:
        tracemalloc.start()
    t1 = time.perf_counter()
    comp = compile_network(node)
    result = find_deadlock_compiled(comp, max_states)
    seconds = time.perf_counter() - t1
    peak = 0
    if trace_memory:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return {
        "n": n,
        "system": system,
        "states": result.states,
        "transitions": result.transitions,
        "front": front,
        "seconds": seconds,
        "rate": result.states / seconds,
        "bps": result.store_bytes / result.states,
        "peak_bps": peak / result.states if trace_memory else None,
        "verdict": "deadlock " + " ".join(result.trace or []) if result.deadlock else "deadlock-free",
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-min", type=int, default=3)
    ap.add_argument(
        "--n-max",
        type=int,
        default=DEFAULT_N_MAX,
        help="default 9: N=10 has ~3.3e8 butler states (>10 GB, >5 min), too big for a routine run",
    )
    ap.add_argument("--systems", default="forks,butler")
    ap.add_argument("--max-states", type=int, default=400_000_000)
    ap.add_argument("--tracemalloc", action="store_true", help="also report traced peak bytes per state")
    args = ap.parse_args(argv)
    systems = [s for s in args.systems.split(",") if s]
    if args.n_max == DEFAULT_N_MAX:
        print("# N capped at 9 by default: N=10 is ~3.3e8 states, >10 GB and >5 min here (use --n-max 10)")
    print("# models: CSPm bench/models/*.csp via frontend + to_network")
    header = f"{'N':>3} {'system':<7} {'states':>12} {'transitions':>13} {'front s':>8} {'seconds':>8} {'states/s':>12} {'B/state':>8}"
    if args.tracemalloc:
        header += f" {'peakB/st':>8}"
    print(header + "  verdict")
    best: dict[str, object] | None = None
    for n in range(args.n_min, args.n_max + 1):
        for system in systems:
            row = run(system, n, args.max_states, args.tracemalloc)
            line = (
                f"{n:>3} {system:<7} {row['states']:>12,} {row['transitions']:>13,} {row['front']:>8.3f} "
                f"{row['seconds']:>8.3f} {row['rate']:>12,.0f} {row['bps']:>8.1f}"
            )
            if args.tracemalloc:
                line += f" {row['peak_bps']:>8.1f}"
            print(line + f"  {row['verdict']}", flush=True)
            if system == "butler" and row["verdict"] == "deadlock-free":
                best = row
    if best is not None:
        print(f"RESULT states_per_s={best['rate']:.0f} n={best['n']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
