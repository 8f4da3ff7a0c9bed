"""Run the runtime examples end to end on the embedded stack.

    .venv/bin/python examples/run_examples.py            # or: make -C examples run

Starts an ephemeral embedded stack (unless CSP_KAFKA_BOOTSTRAP is set), a
runtime worker subprocess, then for each example: deploys it (verified), drives
instances through the SDK, reads the channel topics and checks the outcome.
Also shows a refused deployment (dining philosophers without the butler) and
`conform` of the agents' recorded negotiations against a stricter spec.
Exits non-zero if any check fails.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from gateway.sdk import Platform  # noqa: E402
from infra.settings import Settings  # noqa: E402
from processors.csp.runtime.deploy import describe_failure  # noqa: E402

HERE = Path(__file__).resolve().parent


@contextlib.contextmanager
def kafka() -> Iterator[tuple[str, Settings]]:
    external = os.environ.get("CSP_KAFKA_BOOTSTRAP")
    data = Path(tempfile.mkdtemp(prefix="csp-examples-"))
    if external:
        yield external, Settings(data_dir=data, kafka_bootstrap=external)
        return
    from infra.stack import running_stack

    settings = Settings(data_dir=data, kafka_bootstrap=None)
    with running_stack(settings, ephemeral=True) as ep:
        yield ep.kafka_bootstrap, Settings(data_dir=data, kafka_bootstrap=ep.kafka_bootstrap)


@contextlib.contextmanager
def worker(bootstrap: str, namespace: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    # the worker trusts the deploy key of the data dir the examples deploy from (log's folder)
    env = dict(
        os.environ, CSP_KAFKA_BOOTSTRAP=bootstrap, CSP_LOG_LEVEL="WARNING", CSP_DATA_DIR=str(log.parent)
    )
    cmd = [sys.executable, "-m", "processors.csp.runtime.worker", "--bootstrap", bootstrap,
           "--namespace", namespace, "--worker-id", "examples"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def check(cond: bool, what: str) -> None:
    print(f"  [{'ok' if cond else 'FAIL'}] {what}", flush=True)
    if not cond:
        raise SystemExit(f"check failed: {what}")


def deploy(platform: Platform, path: Path, process: str, name: str, outputs: list[str]) -> None:
    plan = platform.deploy(path, process, name=name, outputs=outputs)
    for res in plan.results:
        print(f"    {res.status:5} {res.text}")
    check(
        not plan.refused,
        f"deployed {name} v{plan.deployment.version} ({plan.deployment.lts.num_states} states)",
    )


def buffer_example(platform: Platform) -> None:
    print("\n== bounded-buffer pipeline (examples/buffer/buffer.csp)", flush=True)
    deploy(platform, HERE / "buffer" / "buffer.csp", "BUFFER", "buffer", ["right"])
    sent: dict[str, list[str]] = {}
    for k in range(4):
        inst = platform.start("buffer", instance_id=f"buffer-{k}")
        sent[inst.instance_id] = []
        for v in [(k + j) % 3 for j in range(5)]:
            res = inst.offer(f"left.{v}")
            check(res.accepted, f"{inst.instance_id}: {res}") if v == k else None
            sent[inst.instance_id].append(str(v))
    refused = platform.offer("buffer-0", "right.0")
    print(f"  offering an output event: {refused}")
    check(
        refused.refusal is not None and refused.refusal["reason"] == "NOT_ACCEPTABLE",
        "output events cannot be offered",
    )
    got: dict[str, list[str]] = {}
    for msg in platform.subscribe("right", system="buffer", timeout_s=2.0):
        got.setdefault(msg["instance_id"], []).append(msg["values"][0])
    for iid, values in sent.items():
        print(f"  {iid}: in {values} -> out {got.get(iid)}")
        check(got.get(iid) == values, f"{iid}: the pipeline delivers every value, in order")


def dining_example(platform: Platform) -> None:
    print("\n== dining philosophers with a butler (examples/dining/dining.csp)", flush=True)
    plan = platform.deploy(HERE / "dining" / "dining_no_butler.csp", "SYSTEM", name="nobutler")
    for res in plan.failed:
        print("  " + describe_failure(res).replace("\n", "\n  "))
    check(plan.refused, "without the butler the deployment is refused (deadlock counterexample above)")
    deploy(platform, HERE / "dining" / "dining.csp", "SYSTEM", "dining",
           ["sits", "getsup", "eats", "picks", "putsdown"])  # fmt: skip
    for k in range(2):
        inst = platform.start("dining", instance_id=f"college-{k}")
        for rnd in range(3):
            for i in range(3):
                res = inst.offer(f"hungry.{(i + k + rnd) % 3}")
                check(
                    res.accepted, f"{inst.instance_id}: hungry.{(i + k + rnd) % 3} accepted"
                ) if rnd == 0 else None
        trace = inst.trace()
        eats = [e for e in trace if e.startswith("eats.")]
        print(f"  {inst.instance_id}: {len(trace)} events, meals {eats}")
        check(len(eats) == 9, f"{inst.instance_id}: every hungry philosopher ate")
    msgs = list(platform.subscribe("eats", system="dining", timeout_s=2.0))
    check(len(msgs) == 18, f"csp.channel.dining.eats carries the 18 meals ({len(msgs)})")


def agents_example(platform: Platform) -> None:
    print("\n== request/response between AI agents (examples/agents/agents.csp)", flush=True)
    deploy(platform, HERE / "agents" / "agents.csp", "SELLER", "agents", ["propose", "deliver"])
    outcomes: dict[str, str] = {}
    for k in range(8):
        inst = platform.start("agents", instance_id=f"negotiation-{k}")
        t = k % 3
        res = inst.offer(f"request.{t}")
        check(res.accepted, f"{inst.instance_id}: request.{t} accepted")
        price = int(next(e["event"] for e in res.follow if e["event"].startswith("propose")).split(".")[2])
        rounds = 0
        while True:
            if k % 4 == 3:  # the buyer's timer fires
                inst.offer(f"timeout.{t}")
                outcomes[inst.instance_id] = f"timeout at price {price}"
                break
            if price == 1:
                r = inst.offer(f"accept.{t}")
                check(
                    any(e["event"] == f"deliver.{t}" for e in r.follow),
                    f"{inst.instance_id}: delivered after accept",
                )
                outcomes[inst.instance_id] = f"accepted at price 1 after {rounds} rejection(s)"
                break
            r = inst.offer(f"reject.{t}")
            rounds += 1
            proposals = [e["event"] for e in r.follow if e["event"].startswith("propose")]
            if not proposals:
                outcomes[inst.instance_id] = f"seller gave up after {rounds} rejection(s)"
                break
            price = int(proposals[0].split(".")[2])
        print(f"  {inst.instance_id}: {outcomes[inst.instance_id]}")
        bad = inst.offer(f"deliver.{t}")
        check(
            not bad.accepted,
            f"{inst.instance_id}: buyer cannot inject deliver ({bad.refusal and bad.refusal['reason']})",
        )
    # conformance of the recorded traces against a stricter specification
    from processors.csp.check.compile import compile_process
    from processors.csp.runtime.conform import conform, visible_trace
    from processors.csp.semantics.frontend import load_file

    spec = compile_process(load_file(HERE / "agents" / "spec_single_round.csp").process("ONE_ROUND"))
    per: dict[str, list[dict[str, object]]] = {}
    for e in platform.events():
        if e["system"] == "agents":
            per.setdefault(str(e["instance_id"]), []).append(e)
    violations = conform(spec, {iid: visible_trace(evs) for iid, evs in per.items()})
    for v in violations:
        print(f"  conform ONE_ROUND: VIOLATION {v}")
    multi = [iid for iid, o in outcomes.items() if ("2 rejection" in o or "3 rejection" in o)]
    check({v.instance_id for v in violations} == set(multi),
          f"conform flags exactly the negotiations with two or more counter-proposals ({len(multi)})")  # fmt: skip


def main() -> int:
    with kafka() as (bootstrap, settings):
        ns = f"examples{uuid.uuid4().hex[:6]}"
        platform = Platform(bootstrap, namespace=ns, settings=settings)
        log = settings.resolved_data_dir() / "worker.log"
        settings.resolved_data_dir().mkdir(parents=True, exist_ok=True)
        print(f"kafka {bootstrap}, namespace {ns}, worker log {log}", flush=True)
        with worker(bootstrap, ns, log), platform:
            platform.partitions  # noqa: B018 - creates the runtime topics
            buffer_example(platform)
            dining_example(platform)
            agents_example(platform)
            print(f"\n{len(platform.instances())} instances in the log; all examples passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
