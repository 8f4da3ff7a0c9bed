"""Checker benchmark: every kind of check, on the fly, against the explicit checker.

The suite (each row one assertion, run as a whole ``csp check FILE --format
json --workers 2`` command in a subprocess, otherwise default options: no state
limit). ``--workers 2`` because the default takes the cores the 1-minute load
average leaves free, and the bench's own previous rows raise that average. The
project's modules are byte-compiled first, as an installed package is (this
machine sets ``PYTHONDONTWRITEBYTECODE``, under which every command would compile
them again: about 0.1 s per command).

* ``bench/models/interleave.csp`` with N = 12 (13 interleaved cycles
  ``e.i -> f.i -> g.i``, 1,594,323 states): ``RUNALL [T= SYS``, ``ONE [F= SYS``,
  ``CHAOS(Events) [FD= SYS``, ``SYS :[divergence free]``,
  ``SYS :[deterministic [FD]]`` and ``ANY [FD= SYS``, which fails at depth 2
  (the first-counterexample case);
* the dining philosophers with a butler (``bench/models/dining_butler.csp``),
  ``deadlock free [F]`` at N = 8 and 9.

Columns: states, whole-command seconds (process start to exit), states per
second over the whole command, the check's own seconds (``stats.seconds``),
and the verdict. Then, measured in the same run:

* **baseline**: the explicit checker (whole LTS built, then
  ``checker.refines``) on ``CHAOS(Events) [FD= SYS`` at N = 9 (59,049 states),
  against the on-the-fly check of the same assertion: the ratio of rates;
* **bytes per state**: the on-the-fly store (visited hash set + per-level
  codes) of the sequential FD check at N = 12, over its states;
* **2 cores**: the FD check in-process with 1 worker and with 2, alternating,
  ``--repeat`` pairs: the median of the pairs' time(1) / time(2), and the CPU
  seconds of each side (the parent's and, for 2, its workers'). At N = 12 (the
  suite's model, 0.6 s of search) and at N = 13 (4,782,969 states);
  ``speedup_2_cores`` is N = 13's: scaling is a property of long searches, and
  in a 0.6 s search the forked workers' start (fresh heap pages, cold caches)
  weighs more;
* **the machine's ceiling**: two reference loops, each run alone and as two
  processes at once (alternating, ``--repeat`` pairs, median of
  2 x time(alone) / time(two)): a pure-Python compute loop, and random
  gathers and scatters in a 256 MB table (the memory access pattern of the
  search's visited set). The checker's speedup is printed as a share of each.

The last line is ``RESULT refine_states_per_s=... deadlock_states_per_s=...
bytes_per_state=... first_cex_ms=... speedup_2_cores=...``: the FD refinement
row's whole-command rate, the largest butler row's whole-command rate, the
store's bytes per state, the check time of ``ANY [FD= SYS`` in ms, and the
speedup. ``--quick`` runs N = 9 / butler 6..7 instead (a smoke run).
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from processors.csp.check import checker, explore  # noqa: E402
from processors.csp.check import compile as C  # noqa: E402
from processors.csp.check import explore_check as X  # noqa: E402
from processors.csp.check.verify import Compiler, named_process, run_assertion  # noqa: E402
from processors.csp.semantics.frontend import load_source  # noqa: E402

MODELS = ROOT / "bench" / "models"
INTERLEAVE = MODELS / "interleave.csp"
BUTLER = MODELS / "dining_butler.csp"


def with_n(path: Path, n: int) -> str:
    return re.sub(r"(?m)^N = \d+$", f"N = {n}", path.read_text(encoding="utf-8"))


def only_assertion(text: str, keep: str) -> str:
    """The model with every assert line dropped but ``keep``."""
    lines = [ln for ln in text.splitlines() if not ln.startswith("assert ")]
    return "\n".join([*lines, keep]) + "\n"


def whole_command(text: str, tmp: Path, name: str) -> tuple[float, dict[str, object]]:
    path = tmp / f"{name}.csp"
    path.write_text(text, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", "from gateway.cli import main; main()", "check", str(path), "--format", "json",
         "--workers", "2"],
        capture_output=True, text=True, env=env, cwd=ROOT, check=False,
    )  # fmt: skip
    wall = time.perf_counter() - t0
    doc = json.loads(out.stdout)
    entry: dict[str, object] = doc["assertions"][0]
    return wall, entry


def suite(n: int, butlers: tuple[int, ...], tmp: Path) -> dict[str, dict[str, object]]:
    rows: dict[str, dict[str, object]] = {}
    model = with_n(INTERLEAVE, n)
    asserts = [ln for ln in model.splitlines() if ln.startswith("assert ")]
    keys = ("T", "F", "FD", "divergence", "determinism", "first_cex")
    print(f"{'check':<40} {'states':>11} {'whole s':>8} {'states/s':>11} {'check s':>8}  verdict")
    jobs = [(k, f"interleave N={n}: {a[len('assert ') :]}", only_assertion(model, a)) for k, a in zip(keys, asserts, strict=True)]
    for b in butlers:
        text = with_n(BUTLER, b)
        jobs.append((f"butler{b}", f"butler N={b}: deadlock free [F]", text))
    # one untimed command first: the first process of a run reads the interpreter's and the
    # libraries' files from disk (the first row, RUNALL [T= SYS at N = 12, took 2.00 s in a
    # run and 1.09-1.15 s when repeated)
    whole_command(jobs[keys.index("first_cex")][2], tmp, "warm-up")
    for key, label, text in jobs:
        wall, entry = whole_command(text, tmp, key)
        stats = entry["stats"]
        assert isinstance(stats, dict)
        states = int(stats["states"] or 0)
        check_s = float(stats["seconds"])
        verdict = str(entry["status"])
        cex = entry.get("counterexample")
        if isinstance(cex, dict):
            verdict += " <" + ", ".join(cex["trace"]) + ">"
        rate = states / wall
        rows[key] = {"states": states, "wall": wall, "rate": rate, "check": check_s, "verdict": verdict}
        print(f"{label:<40} {states:>11,} {wall:>8.2f} {rate:>11,.0f} {check_s:>8.3f}  {verdict}", flush=True)
    return rows


def fd_parts(n: int) -> tuple[X.NormalSpec, X.NetworkSuccessors]:
    mod = load_source(with_n(INTERLEAVE, n), "interleave.csp")
    node = C.to_network(mod.process("SYS"))
    assert node is not None
    succ = X.NetworkSuccessors(explore.compile_network(node))
    spec = Compiler()(named_process(mod, mod.assertions[2].left).proc)
    return X.normalise(spec, succ.events, "FD"), succ


def baseline(n: int) -> tuple[float, float]:
    """(explicit checker states/s, on-the-fly states/s) on CHAOS(Events) [FD= SYS."""
    mod = load_source(with_n(INTERLEAVE, n), "interleave.csp")
    a = mod.assertions[2]
    t0 = time.perf_counter()
    spec = C.compile_process(named_process(mod, a.left).proc)
    impl = C.compile_process(named_process(mod, a.right).proc)
    old = checker.refines(spec, impl, "FD")
    t_old = time.perf_counter() - t0
    assert old.passed
    t1 = time.perf_counter()
    new = run_assertion(mod, a, compiler=Compiler(workers=1))
    t_new = time.perf_counter() - t1
    assert new.status == "pass" and new.states == old.states
    return old.states / t_old, old.states / t_new


def in_process_fd(n: int, workers: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process and its finished workers) of the FD check."""
    mod = load_source(with_n(INTERLEAVE, n), "interleave.csp")

    def cpu() -> float:
        me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime

    c0, t0 = cpu(), time.perf_counter()
    r = run_assertion(mod, mod.assertions[2], compiler=Compiler(workers=workers))
    wall, used = time.perf_counter() - t0, cpu() - c0
    assert r.status == "pass" and r.states == 3 ** (n + 1), r.message
    return wall, used


def speedup(n: int, repeat: int) -> float:
    """Median over alternating pairs of time(1 worker) / time(2 workers); prints the figures."""
    one: list[tuple[float, float]] = []
    two: list[tuple[float, float]] = []
    for _ in range(repeat):  # alternating, so that a change in the machine's speed hits both
        one.append(in_process_fd(n, 1))
        two.append(in_process_fd(n, 2))
    ratio = statistics.median(a[0] / b[0] for a, b in zip(one, two, strict=True))
    med = [statistics.median(x) for x in ((a[0] for a in one), (b[0] for b in two), (a[1] for a in one), (b[1] for b in two))]
    print(
        f"CHAOS(Events) [FD= SYS N={n} ({3 ** (n + 1):,} states) in-process, median of {repeat}: 1 worker "
        f"{med[0]:.2f} s ({med[2]:.2f} s CPU), 2 workers {med[1]:.2f} s ({med[3]:.2f} s CPU): speedup {ratio:.2f}"
    )
    return ratio


# Reference workloads for the machine's own 2-process scaling: each child prints the seconds
# its loop took. "compute" is a pure-Python loop; "memory" gathers and scatters at random in a
# 256 MB table, as the search's visited-set probes do.
REFERENCE = {
    "compute": "s = 0\nfor i in range(12_000_000):\n    s += i * i",
    "memory": (
        "import numpy as np\nrng = np.random.default_rng(1)\ntable = np.zeros(1 << 25, np.uint64)\n"
        "idx = rng.integers(0, 1 << 25, 1 << 22)\nt0 = time.perf_counter()\n"
        "for _ in range(12):\n    table[idx] = table[idx] + 1\n    idx = (idx * 5 + 3) & ((1 << 25) - 1)"
    ),
}


def _reference(kind: str, copies: int) -> float:
    """Seconds of the slowest of ``copies`` concurrent runs of a reference loop."""
    code = "import time\nt0 = time.perf_counter()\n" + REFERENCE[kind] + "\nprint(time.perf_counter() - t0)"
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(copies)]
    return max(float(p.communicate()[0]) for p in procs)


def machine_scaling(repeat: int) -> dict[str, float]:
    """This machine's ceiling for 2 processes: median over alternating pairs of
    2 x time(one copy alone) / time(two copies at once), per reference workload."""
    out: dict[str, float] = {}
    for kind in REFERENCE:
        ratios = []
        for _ in range(repeat):
            alone = _reference(kind, 1)
            ratios.append(2 * alone / _reference(kind, 2))
        out[kind] = statistics.median(ratios)
    print("machine, 2 processes at once vs one (median of "
          f"{repeat}): " + ", ".join(f"{k} loop {v:.2f}x" for k, v in out.items()))  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=12, help="interleaved cycles - 1 (default 12: 1,594,323 states)")
    ap.add_argument("--butlers", default="8,9", help="butler sizes (default 8,9; N=9 is ~47M states)")
    ap.add_argument("--repeat", type=int, default=5, help="alternating pairs of runs in the 2-core comparison")
    ap.add_argument("--quick", action="store_true", help="smoke run: N = 9, butlers 6,7")
    args = ap.parse_args(argv)
    n = 9 if args.quick else args.n
    butlers = (6, 7) if args.quick else tuple(int(x) for x in args.butlers.split(",") if x)
    print(f"# load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    for pkg in ("processors", "gateway", "streams", "schemas", "projections", "infra"):
        compileall.compile_dir(ROOT / pkg, quiet=1)
    with tempfile.TemporaryDirectory(prefix="csp-check-bench-") as tmp:
        rows = suite(n, butlers, Path(tmp))
    base_n = min(n, 9)
    old_rate, new_rate = baseline(base_n)
    print(
        f"baseline (explicit LTS + checker.refines) CHAOS(Events) [FD= SYS, N={base_n}: {old_rate:,.0f} states/s; "
        f"on the fly: {new_rate:,.0f} states/s; ratio {new_rate / old_rate:.1f}x"
    )
    spec, succ = fd_parts(n)
    res = X.refine(spec, succ, "FD")
    bps = res.store_bytes / res.states
    print(f"store: {res.store_bytes:,} bytes for {res.states:,} states = {bps:.1f} bytes/state (hash set + level codes)")
    speedup(n, args.repeat)
    big = speedup(n + 1, args.repeat)
    ceiling = machine_scaling(args.repeat)
    print(f"checker speedup {big:.2f} = {big / ceiling['compute']:.0%} of the machine's compute-loop scaling, "
          f"{big / ceiling['memory']:.0%} of its memory-loop scaling")  # fmt: skip
    print(f"# load average at end: {os.getloadavg()[0]:.2f}")
    deadlock = max((k for k in rows if k.startswith("butler")), key=lambda k: int(k[len("butler") :]))
    print(
        f"RESULT refine_states_per_s={rows['FD']['rate']:.0f} deadlock_states_per_s={rows[deadlock]['rate']:.0f} "
        f"bytes_per_state={bps:.1f} first_cex_ms={float(str(rows['first_cex']['check'])) * 1000:.0f} "
        f"speedup_2_cores={big:.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
