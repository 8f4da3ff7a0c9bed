"""Agents benchmark: protocol steps/s through Kafka with LLM agents, vs direct model calls.

A zero-latency local model server (``processors.agents.localmodel``, a subprocess) answers
every call. In the same run, on the same server:

* **raw**: ``--concurrency`` threads call it directly through the openai client with the
  same structured-output request the agents make → ``raw_calls_per_s``;
* **through Kafka**: ``--instances`` instances of a ``--steps``-step protocol, each bound to
  one LLM agent, run on a runtime worker, an agent processor and an agent driver (each
  exactly-once, each its own subprocess: ``csp agents worker --only processor|driver``;
  ``--one-process`` runs the last two in one process, as ``csp agents worker`` does). One
  protocol step = driver → ``agents.requests`` → agent processor: model (journaled), then
  ``agents.responses`` and the chosen event's OFFER on ``csp.commands`` in one transaction →
  runtime → ``csp.events`` → driver: three transactional hops (four until 2026-12-03, when
  the driver relayed each answer). With ``--one-process`` the driver has the agent processor
  of its process call the model and puts request, response and offer out in its own
  transaction: two hops (``--no-inline`` turns that off). ``steps_per_s`` counts accepted
  agent events per second from the first START to the last event.

The CPU time each process spent per step in the throughput phase is printed (Linux /proc),
beside the raw baseline's CPU per call: on 2 cores, where the CPU goes is the throughput.

Added latency per step: the time between two consecutive events of an instance minus the
model call's own latency (the response's ``latency_ms``). The events' times are their Kafka
timestamps (CreateTime: when the runtime worker produced each, on one clock), so a step is
everything from one event to the next: driver, ``agents.requests``, agent processor,
``csp.commands``, runtime. Measured in a latency phase of
``--latency-rounds`` rounds of ``--latency-instances`` instances in flight (RESULT's
p99_added_ms) and, for information, under the throughput phase's load (where it includes
queueing for the model). The same figure as seen by a consumer of ``csp.events`` in this
process (arrival times; each end adds that consumer's fetch jitter) is printed beside it,
and a per-hop breakdown of a step from the records' Kafka timestamps.

Until 2026-12-03 the arrival times were the only measure, and the consumer was read with
``Consumer.consume(5000, 0.05)``, which returns after the whole 50 ms unless 5000 records
arrived: arrivals were stamped in 50 ms steps, and p99_added_ms read about 100 ms minus the
model call (two steps) whatever the pipeline did.

Usage: python bench/agents.py [--instances N] [--latency-instances M] [--steps K] [--concurrency C]
                              [--bootstrap HOST:PORT]
Last line: RESULT steps_per_s=... raw_calls_per_s=... ratio=... p99_added_ms=...
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import openai
from confluent_kafka import Consumer, TopicPartition

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "bench"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from engine import broker  # noqa: E402

from gateway.sdk import Platform  # noqa: E402
from infra.settings import Settings  # noqa: E402
from processors.agents import choice as ch  # noqa: E402
from processors.agents.driver import Binding, bindings_param  # noqa: E402
from processors.agents.topics import AgentTopics  # noqa: E402
from streams.admin import ensure_topics  # noqa: E402
from streams.clients import consume_available, consumer_config  # noqa: E402

PROTOCOL = """-- K steps, each a choice of the agent between two events
K = {steps}
channel step : {{1..K}}.{{0, 1}}
channel finish
RUN(k) = step.k?x -> (if k < K then RUN(k + 1) else finish -> SKIP)
MAIN = RUN(1)
assert MAIN :[deadlock free]
"""


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_model_server() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "processors.agents.localmodel", "--port", str(port)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}/v1"
    client = openai.OpenAI(base_url=url, api_key="x", max_retries=0)
    deadline = time.monotonic() + 30
    while True:
        try:
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
            return proc, url
        except openai.APIConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def raw_calls(url: str, calls: int, concurrency: int) -> float:
    """Direct openai client calls (structured output, as the agents make them); calls/s."""
    fmt = ch.response_format(["step.1.0", "step.1.1"])
    messages = [{"role": "system", "content": "You are the agent."}, {"role": "user", "content": "Choose."}]
    left = [calls]
    lock = threading.Lock()

    def worker() -> None:
        client = openai.OpenAI(base_url=url, api_key="x", max_retries=0)
        while True:
            with lock:
                if left[0] <= 0:
                    return
                left[0] -= 1
            resp = client.chat.completions.create(model="m", messages=messages, response_format=fmt)  # type: ignore[call-overload]
            assert ch.parse_choice(resp.choices[0].message.content, ["step.1.0", "step.1.1"])

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return calls / (time.perf_counter() - t0)


def _stamps(platform: Platform, topic: str, schema: str) -> list[tuple[dict[str, Any], int]]:
    from streams.admin import list_topics
    from streams.reader import read_to_end

    out = []
    for p in range(list_topics(platform.bootstrap).get(topic, 0)):
        for _o, _k, value, ts in read_to_end(platform.bootstrap, topic, p):
            if value is None:
                continue
            name, rec = platform.codec.decode(value)
            if name == schema:
                out.append((rec, ts))
    return out


def hop_breakdown(
    platform: Platform, atopics: AgentTopics, iids: set[str], samples: dict[str, list[float]] | None = None
) -> dict[str, float]:
    """Mean time of each hop of a step, from the records' Kafka timestamps (CreateTime); each
    hop's values also go to ``samples`` when given."""
    ev = {(r["instance_id"], int(r["seq"])): ts for r, ts in _stamps(platform, platform.topics.events, "CspEvent")}
    req = {r["request_id"]: ts for r, ts in _stamps(platform, atopics.requests, "AgentRequest")}
    resp = {r["request_id"]: (ts, int(r["latency_ms"])) for r, ts in _stamps(platform, atopics.responses, "AgentResponse")}
    cmd = {r["command_id"]: ts for r, ts in _stamps(platform, platform.topics.commands, "CspCommand")}
    sums = {"event->request (driver; inline: model included)": 0.0, "request->offer (agents, model included)": 0.0,
            "model call": 0.0, "offer->event (runtime)": 0.0}  # fmt: skip
    n = 0
    for (iid, seq), t_ev in ev.items():
        rid = f"{iid}:{seq}:stepper"
        nxt = ev.get((iid, seq + 1))
        if iid not in iids or rid not in req or rid not in resp or f"agent:{rid}" not in cmd or nxt is None:
            continue
        t_req, lat = req[rid], resp[rid][1]
        t_cmd = cmd[f"agent:{rid}"]
        hops = (("event->request (driver; inline: model included)", t_req - t_ev), ("request->offer (agents, model included)",
                 t_cmd - t_req), ("model call", lat), ("offer->event (runtime)", nxt - t_cmd))  # fmt: skip
        for k, v in hops:
            sums[k] += v
            if samples is not None:
                samples.setdefault(k, []).append(float(v))
        n += 1
    return {k: v / max(1, n) for k, v in sums.items()}


def _label(cmdline: list[str]) -> str:
    joined = " ".join(cmdline)
    for key, label in (("--only processor", "agent processor"), ("--only driver", "agent driver"),
                       ("agents.worker", "agents worker"), ("runtime.worker", "runtime worker"),
                       ("localmodel", "model server"), ("tansu", "broker"), ("weed", "s3")):  # fmt: skip
        if key in joined:
            return label
    return joined[:40] or "other"


def cpu_seconds() -> dict[str, float]:
    """CPU time (user + system) so far of this process and every process under it, by role
    (Linux /proc); where a step's CPU goes, on a machine whose 2 cores are the bottleneck."""
    if not Path("/proc/self/stat").exists():
        return {}
    tick = os.sysconf("SC_CLK_TCK")
    procs: dict[int, tuple[int, float, list[str]]] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            argv = (d / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        procs[int(d.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick,
                              [c.decode(errors="replace") for c in argv if c])  # fmt: skip
    me = os.getpid()
    out: dict[str, float] = {}
    for pid, (_ppid, cpu, cmd) in procs.items():
        anc, seen = pid, 0
        while anc not in (me, 0, 1) and anc in procs and seen < 64:
            anc, seen = procs[anc][0], seen + 1
        if anc != me:
            continue
        label = "bench (this process)" if pid == me else _label(cmd)
        out[label] = out.get(label, 0.0) + cpu
    return out


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--instances", type=int, default=200, help="instances in flight (throughput phase)")
    ap.add_argument("--latency-instances", type=int, default=4, help="instances in flight (latency phase)")
    ap.add_argument("--latency-rounds", type=int, default=5, help="rounds of the latency phase (one after another)")
    ap.add_argument("--steps", type=int, default=10, help="agent steps per instance")
    ap.add_argument("--concurrency", type=int, default=8, help="model calls in flight (raw and agents worker)")
    ap.add_argument("--one-process", action="store_true",
                    help="run the agent processor and the driver in one process (default: one process each)")
    ap.add_argument("--no-inline", action="store_true",
                    help="with --one-process: the driver does not answer in its own transaction (3 hops)")
    ap.add_argument("--bootstrap", default=None, help="external Kafka (default: embedded ephemeral Tansu)")
    args = ap.parse_args(argv)
    total_steps = args.instances * args.steps
    model, url = start_model_server()
    procs: list[subprocess.Popen[bytes]] = [model]
    try:
        c0 = cpu_seconds()
        raw = raw_calls(url, max(500, total_steps), args.concurrency)
        c1 = cpu_seconds()
        per_call = ", ".join(f"{k} {(v - c0.get(k, 0.0)) * 1000 / max(500, total_steps):.2f}" for k, v in c1.items())
        print(f"raw: {raw:.0f} openai calls/s ({args.concurrency} threads, zero-latency local server); CPU ms per "
              f"call: {per_call}", flush=True)  # fmt: skip
        with broker(args.bootstrap) as bootstrap, tempfile.TemporaryDirectory(prefix="csp-bench-agents-") as tmp:
            ns = f"b{uuid.uuid4().hex[:8]}"
            settings = Settings(data_dir=Path(tmp), kafka_bootstrap=bootstrap)
            platform = Platform(bootstrap, namespace=ns, settings=settings)
            atopics = AgentTopics(ns)
            ensure_topics(bootstrap, platform.topics.specs() + atopics.specs())
            src = Path(tmp) / "steps.csp"
            src.write_text(PROTOCOL.format(steps=args.steps))
            assert not platform.deploy(src, "MAIN", name="steps", outputs=["finish"]).refused
            # the worker trusts the deploy key of the data dir the platform signed with
            env = dict(os.environ, CSP_KAFKA_BOOTSTRAP=bootstrap, CSP_DATA_DIR=tmp, CSP_LOG_LEVEL="WARNING")
            log = (Path(tmp) / "workers.log").open("ab")
            procs.append(subprocess.Popen([sys.executable, "-m", "processors.csp.runtime.worker", "--bootstrap",
                                           bootstrap, "--namespace", ns, "--batch-size", "1000"],
                                          cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))  # fmt: skip
            # the agent processor and the driver: one process each (--one-process: both in one,
            # sharing a GIL, as `csp agents worker` without --only runs them)
            roles = ([["--no-inline"] if args.no_inline else []] if args.one_process
                     else [["--only", "processor"], ["--only", "driver"]])  # fmt: skip
            for role in roles:
                procs.append(subprocess.Popen([sys.executable, "-m", "processors.agents.worker", "--bootstrap",
                                               bootstrap, "--namespace", ns, "--base-url", url, "--concurrency",
                                               str(args.concurrency), *role],
                                              cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))  # fmt: skip
            # a live consumer of csp.events: arrival time of every (instance, seq)
            consumer = Consumer(consumer_config(bootstrap, f"bench-{ns}"))
            consumer.assign([TopicPartition(platform.topics.events, p, 0) for p in range(platform.partitions)])
            arrivals: dict[tuple[str, int], float] = {}
            binding = bindings_param([Binding("stepper", ("step",))])
            # warm-up: one instance through to the end (group joins, registry reads)
            warm = platform.start("steps", params={"agents": binding, "task": "warm up"}).instance_id
            t_warm = time.monotonic()
            done: set[str] = set()

            def drain(timeout: float) -> None:
                for msg in consume_available(consumer, 5000, timeout):
                    if msg.error() is not None or not msg.value():
                        continue
                    _n, rec = platform.codec.decode(msg.value() or b"")
                    key = (rec["instance_id"], int(rec["seq"]))
                    arrivals.setdefault(key, time.perf_counter())
                    if rec["kind"] == "TICK":
                        done.add(rec["instance_id"])

            while warm not in done:
                drain(0.2)
                if time.monotonic() - t_warm > 180:
                    raise SystemExit("warm-up instance did not finish in 180s (see the workers' log)")
            print(f"warm-up: one {args.steps}-step instance in {time.monotonic() - t_warm:.1f}s", flush=True)

            def run_phase(n: int, tag: str) -> tuple[float, list[str]]:
                iids = [f"steps-{tag}{i}-{uuid.uuid4().hex[:6]}" for i in range(n)]
                t0 = time.perf_counter()
                platform.send_many((iid, "START", {"system": "steps", "version": 1,
                                                   "params": {"agents": binding, "task": "step"}})
                                   for iid in iids)  # fmt: skip
                deadline = time.monotonic() + 600
                while not set(iids) <= done:
                    drain(0.05)
                    if time.monotonic() > deadline:
                        raise SystemExit(f"only {len(done & set(iids))}/{len(iids)} instances finished in 600s")
                return time.perf_counter() - t0, iids

            # latency: a few instances in flight (the model is never the queue), round after round
            lat_iids: list[str] = []
            for r in range(max(1, args.latency_rounds)):
                lat_iids += run_phase(args.latency_instances, f"l{r}")[1]
            # throughput: many instances in flight
            cpu0 = cpu_seconds()
            elapsed, iids = run_phase(args.instances, "t")
            cpu1 = cpu_seconds()
            cpu = {k: v - cpu0.get(k, 0.0) for k, v in cpu1.items()}
            print(f"throughput phase, CPU ms per step ({elapsed:.1f}s on {os.cpu_count()} cores): " + ", ".join(
                f"{k} {v * 1000 / total_steps:.2f}" for k, v in sorted(cpu.items(), key=lambda kv: -kv[1]))
                + f"; total {sum(cpu.values()) * 1000 / total_steps:.2f}", flush=True)  # fmt: skip
            consumer.close()
            steps_per_s = total_steps / elapsed
            latency_ms: dict[tuple[str, int], int] = {}
            for r in platform.read(atopics.responses, "AgentResponse"):
                iid, seq, _agent = r["request_id"].rsplit(":", 2)
                latency_ms[(iid, int(seq))] = int(r["latency_ms"])

            produced = {(r["instance_id"], int(r["seq"])): ts / 1000
                        for r, ts in _stamps(platform, platform.topics.events, "CspEvent")}  # fmt: skip

            def added_ms(ids: list[str], times: dict[tuple[str, int], float]) -> list[float]:
                out: list[float] = []
                for iid in ids:
                    for seq in range(0, args.steps):
                        a, b = times.get((iid, seq)), times.get((iid, seq + 1))
                        if a is None or b is None:
                            continue  # seq 0 has no event (the START): the first step is not timed
                        out.append((b - a) * 1000 - latency_ms.get((iid, seq), 0))
                return out

            lat, loaded = added_ms(lat_iids, produced), added_ms(iids, produced)
            seen = added_ms(lat_iids, arrivals)
            for label, ids in (("latency phase", lat_iids), ("throughput phase", iids)):
                per: dict[str, list[float]] = {}
                hops = hop_breakdown(platform, atopics, set(ids), per)
                print(f"{label}, mean per step: " + ", ".join(f"{k} {v:.0f} ms" for k, v in hops.items()), flush=True)
                if label == "latency phase":
                    print("latency phase, p50 / max per hop: " + ", ".join(
                        f"{k} {percentile(v, 0.5):.0f} / {max(v):.0f} ms" for k, v in per.items()), flush=True)  # fmt: skip
                    print("latency phase, p90 / p99 per hop: " + ", ".join(
                        f"{k} {percentile(v, 0.9):.0f} / {percentile(v, 0.99):.0f} ms" for k, v in per.items()), flush=True)  # fmt: skip
            platform.close()
            # raw again, with the workers stopped (as they were not started for the first): the
            # machine's speed drifts between runs by ±20%; the baseline is the mean of the two
            for proc in procs[1:]:
                proc.terminate()
                proc.wait(30)
            raw2 = raw_calls(url, max(500, total_steps), args.concurrency)
            print(f"raw again: {raw2:.0f} openai calls/s (before: {raw:.0f}); baseline {(raw + raw2) / 2:.0f}/s",
                  flush=True)  # fmt: skip
            raw = (raw + raw2) / 2
            p50, p99 = percentile(lat, 0.5), percentile(lat, 0.99)
            l50, l99 = percentile(loaded, 0.5), percentile(loaded, 0.99)
            print(f"latency: {args.latency_instances} instances in flight, added per step p50 {p50:.0f} ms, "
                  f"p99 {p99:.0f} ms ({len(lat)} steps timed); as seen by a consumer here: p50 "
                  f"{percentile(seen, 0.5):.0f} ms, p99 {percentile(seen, 0.99):.0f} ms", flush=True)  # fmt: skip
            print(f"through Kafka: {total_steps} agent steps ({args.instances} instances x {args.steps}) in "
                  f"{elapsed:.1f}s = {steps_per_s:.1f} steps/s; under that load added per step p50 {l50:.0f} ms, "
                  f"p99 {l99:.0f} ms (queueing for the model included)", flush=True)  # fmt: skip
            print(json.dumps({"steps_per_s": steps_per_s, "raw_calls_per_s": raw, "p50_added_ms": p50,
                              "p99_added_ms": p99, "loaded_p50_added_ms": l50, "loaded_p99_added_ms": l99}))  # fmt: skip
            print(f"RESULT steps_per_s={steps_per_s:.1f} raw_calls_per_s={raw:.0f} ratio={steps_per_s / raw:.3f} "
                  f"p99_added_ms={p99:.0f}")  # fmt: skip
    finally:
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
