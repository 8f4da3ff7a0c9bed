"""Read benchmark: `csp instances`, `csp systems`, `csp tail -n 20` and `csp replay ID` on a stack
with 100k instances, as whole CLI commands (subprocesses), against the full-log reads.

It starts an ephemeral embedded stack with its projector (Tansu + chdb, as `csp up --ephemeral`),
deploys ``examples/buffer/buffer.csp``, runs one runtime worker (``csp worker``, a subprocess),
sends ``--instances`` START commands in bulk (``Platform.send_many``) plus one offer
(``left.1``: three events) to every ``--offer-every``-th instance, waits until the worker applied
them and the projection holds them, then times each command ``--repeat`` times (median):

* fast: the default (``--source auto``): the ClickHouse projection plus the Kafka records after its
  offsets; ``tail -n`` reads each partition backwards from its end;
* baseline: ``--source kafka``: the whole-log reads the commands always did (the old path; it
  shares the reader's shorter fetch waits of this branch);
* ``--old-checkout DIR``: also the same commands run from another checkout (e.g. the code before
  this change), without ``--source`` (its ``tail -o -20`` had another meaning, so only times);
* the floor: ``csp version``, Python and the CLI's imports, which every command pays.

It checks that fast and baseline print the same stdout. Usage:
python bench/reads.py [--instances 100000] [--offer-every 10] [--repeat 3] [--old-checkout DIR]
Last line: RESULT instances_s=… systems_s=… tail_s=… replay_s=… n_instances=…
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from gateway.reads import find_projection  # noqa: E402
from gateway.sdk import Platform  # noqa: E402
from infra.settings import Settings  # noqa: E402
from infra.stack import start_stack, stop_stack  # noqa: E402

CPU: list[float] = []  # CPU seconds (user + sys) of each command run, in order


def cli(env: dict[str, str], *args: str, cwd: Path = ROOT) -> tuple[float, str, str]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "gateway.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=1800)  # fmt: skip
    dt = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        raise SystemExit(f"csp {' '.join(args)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return dt, done.stdout, done.stderr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--instances", type=int, default=100_000)
    ap.add_argument("--offer-every", type=int, default=10, help="offer left.1 to every Nth instance")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--old-checkout", type=Path, help="also time the commands of this checkout (the old code)")
    args = ap.parse_args()
    n = args.instances

    with tempfile.TemporaryDirectory(prefix="csp-bench-reads-") as tmp:
        data = Path(tmp)
        settings = Settings(data_dir=data, kafka_bootstrap=None)
        env = {k: v for k, v in os.environ.items() if k not in ("CSP_KAFKA_BOOTSTRAP", "CSP_CLICKHOUSE_URL")}
        env.update(CSP_DATA_DIR=str(data), CSP_LOG_LEVEL="WARNING")
        t0 = time.perf_counter()
        endpoints = start_stack(settings, ephemeral=True, tie_to_parent=True, with_projector=True)
        worker: subprocess.Popen[bytes] | None = None
        try:
            bootstrap = endpoints.kafka_bootstrap
            print(f"stack up in {time.perf_counter() - t0:.1f}s (kafka {bootstrap})", flush=True)
            platform = Platform(bootstrap, settings=settings)
            platform.deploy(ROOT / "examples/buffer/buffer.csp", "BUFFER", name="buffer", outputs=["right"])
            worker = subprocess.Popen([sys.executable, "-m", "gateway.cli", "worker", "--worker-id", "bench"],
                                      cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                      stderr=open(data / "worker.log", "wb"))  # noqa: SIM115 - lives with the worker
            ids = [f"inst-{i:06d}" for i in range(n)]
            t = time.perf_counter()
            sent = platform.send_many((iid, "START", {"system": "buffer", "version": 1, "params": {}}) for iid in ids)
            offered = ids[:: args.offer_every]
            sent += platform.send_many((iid, "OFFER", {"event": "left.1", "offer_id": f"o-{iid}"}) for iid in offered)
            print(f"sent {sent} commands in {time.perf_counter() - t:.1f}s", flush=True)
            projection = None
            want_events = 3 * len(offered)
            deadline = time.monotonic() + 1800
            got = (0, 0)
            while time.monotonic() < deadline:
                projection = projection or find_projection(data, None, "", bootstrap)
                if projection is not None:
                    rows = projection.query(
                        "SELECT (SELECT uniqExact(instance_id) FROM instances), (SELECT count() FROM events)")
                    got = (int(rows[0][0]), int(rows[0][1]))
                    if got[0] >= n and got[1] >= want_events:
                        break
                time.sleep(2)
            else:
                raise SystemExit(f"the projection holds {got} (instances, events) of {(n, want_events)}")
            print(f"applied and projected: {got[0]} instances, {got[1]} events, "
                  f"{time.perf_counter() - t:.1f}s after the first command", flush=True)  # fmt: skip
            platform.close()
            replay_id = offered[len(offered) // 2]
            commands = {
                "instances": ["instances"],
                "systems": ["systems"],
                "tail": ["tail", "-n", "20"],
                "replay": ["replay", replay_id],
            }
            fast: dict[str, float] = {}
            floor = statistics.median(cli(env, "version")[0] for _ in range(args.repeat))
            floor_cpu = statistics.median(CPU[-args.repeat:])
            print(f"floor: csp version {floor:.2f}s (cpu {floor_cpu:.2f}s: Python + the CLI's imports; load average "
                  f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)", flush=True)
            old_env = dict(env, PYTHONPATH=str(args.old_checkout)) if args.old_checkout else None
            old_args = {"tail": ["tail", "-o", "-20"]}
            for name, argv in commands.items():
                times: dict[str, list[float]] = {"fast": [], "baseline": []}
                cpu: dict[str, list[float]] = {"fast": [], "baseline": []}
                outs: dict[str, str] = {}
                for _ in range(args.repeat):
                    for mode, extra in (("fast", []), ("baseline", ["--source", "kafka"])):
                        dt, out, err = cli(env, *argv, *extra)
                        times[mode].append(dt)
                        cpu[mode].append(CPU[-1])
                        outs[mode] = out
                        if mode == "fast" and "read from" in err:
                            lag = next(line for line in err.splitlines() if "read from" in line)
                old = ""
                if old_env is not None and args.old_checkout is not None:
                    olds = [cli(old_env, *old_args.get(name, argv), cwd=args.old_checkout)[0] for _ in range(args.repeat)]
                    old = f"  old checkout {statistics.median(olds):6.2f}s"
                f, b = statistics.median(times["fast"]), statistics.median(times["baseline"])
                fast[name] = f
                same = outs["fast"] == outs["baseline"]
                print(f"csp {' '.join(argv):24} fast {f:6.2f}s (cpu {statistics.median(cpu['fast']):.2f}s)  "
                      f"baseline {b:6.2f}s (cpu {statistics.median(cpu['baseline']):.2f}s)  x{b / f:5.1f}  "
                      f"same output: {'yes' if same else 'NO'} ({len(outs['fast'].splitlines())} lines){old}", flush=True)
                if name in ("instances", "replay") and "lag" in locals():
                    print(f"    {lag[:160]}")
                if not same:
                    print("    outputs differ", flush=True)
        finally:
            if worker is not None:
                worker.terminate()
                try:
                    worker.wait(30)
                except subprocess.TimeoutExpired:
                    worker.kill()
            stop_stack(settings)
    print(f"RESULT instances_s={fast['instances']:.2f} systems_s={fast['systems']:.2f} tail_s={fast['tail']:.2f} "
          f"replay_s={fast['replay']:.2f} n_instances={n}")  # fmt: skip


if __name__ == "__main__":
    main()
