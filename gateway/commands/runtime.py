"""``csp deploy / start / offer / stop / tail / instances / replay / conform / worker``: the CSP runtime.

Exit codes: 0 success, 1 refused (deployment with failing assertions, refused
offer or start) or not found, 2 bad input (file, process, option), 3 the
platform is unavailable (no stack, no worker answering).
Heavy modules are imported inside the commands so that ``csp`` starts fast.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from gateway.commands.output import Fmt, Json, emit, fmt_of, print_csv

if TYPE_CHECKING:
    from gateway.reads import Projection
    from gateway.sdk import Platform
    from infra.settings import Settings
    from processors.csp.runtime.model import Deployment
    from processors.csp.runtime.topics import RuntimeTopics
    from schemas.codec import Codec

EXIT_OK, EXIT_REFUSED, EXIT_INPUT, EXIT_UNAVAILABLE = 0, 1, 2, 3

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", help="Stack data directory (default: CSP_DATA_DIR or .csp)", show_default=False
    ),
]
Namespace = Annotated[
    str, typer.Option("--namespace", help="Topic namespace (tests, side-by-side platforms)")
]
# the shared --format option (text | json | csv) and its printers; --json is --format json
_fmt = fmt_of
_csv = print_csv
_print_row = emit


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _check_text_file(file: Path) -> None:
    """Exit 2 with one line unless FILE is a readable UTF-8 text file."""
    if not file.is_file():
        raise _fail(f"{file}: no such file" if not file.exists() else f"{file}: not a file", EXIT_INPUT)
    try:
        file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise _fail(f"{file}: not UTF-8 text (byte {exc.start})", EXIT_INPUT) from None
    except OSError as exc:
        raise _fail(f"{file}: {exc.strerror}", EXIT_INPUT) from None


def _check_namespace(namespace: str) -> None:
    """Exit 2 unless ``namespace`` makes legal Kafka topic names (``NS.csp.commands`` ...)."""
    from streams.catalog import validate_topic_name

    if not namespace:
        return
    try:
        validate_topic_name(f"{namespace}.csp.commands.dlq")
    except ValueError:
        raise _fail(
            f"--namespace {namespace!r}: use letters, digits, '.', '_' or '-' (it prefixes Kafka topic names)",
            EXIT_INPUT,
        ) from None


def _check_instance_id(instance_id: str | None) -> None:
    """Exit 2 unless the instance id is Kafka-key-safe (non-empty, no control characters, <= 200 bytes)."""
    from processors.channels.message import instance_id_error

    if instance_id is None:
        return
    err = instance_id_error(instance_id)
    if err is not None:
        raise _fail(f"instance id: {err}", EXIT_INPUT)


def _platform(data_dir: Path | None, namespace: str) -> Platform:
    from gateway.sdk import Platform
    from infra.settings import Settings

    _check_namespace(namespace)

    kwargs: dict[str, Any] = {}
    if data_dir is not None:
        kwargs["data_dir"] = data_dir
    settings = Settings(**kwargs)
    try:
        platform = Platform.connect(settings, namespace=namespace)
    except Exception as exc:
        raise _fail(str(exc), EXIT_UNAVAILABLE) from None
    _probe(platform.bootstrap, settings.kafka_timeout_s)
    return platform


def _probe(bootstrap: str, timeout_s: float) -> None:
    """Exit 3 with one line when the broker does not answer (instead of a timeout traceback later)."""
    from streams.admin import BrokerUnavailable, wait_ready

    try:
        wait_ready(bootstrap, timeout_s)
    except BrokerUnavailable as exc:
        raise _fail(str(exc), EXIT_UNAVAILABLE) from None


Source = Annotated[
    str,
    typer.Option("--source", help="auto (the ClickHouse projection when its projector runs, plus the newer "
                 "records from Kafka; else Kafka) | projection | kafka (read the whole log: the reference)"),
]


@dataclass
class _Reader:
    """What a fast read needs: settings, the broker, the projection (None: read Kafka)."""

    settings: Settings
    bootstrap: str
    namespace: str
    projection: Projection | None
    partitions: dict[str, int]  # topic -> partition count, as the broker's probe answered
    _codec: Codec | None = None

    @property
    def topics(self) -> RuntimeTopics:
        from processors.csp.runtime.topics import RuntimeTopics

        return RuntimeTopics(self.namespace)

    def codec(self) -> Codec:
        if self._codec is None:
            from schemas.codec import codec_from_settings

            self._codec = codec_from_settings(self.settings)
        return self._codec

    def lookup(self) -> Callable[[str, int | None], Deployment | None]:
        from processors.csp.runtime.registry import DeploymentStore

        store = DeploymentStore(self.bootstrap, self.codec(), self.topics,
                                compiled_dir=self.settings.resolved_data_dir() / "compiled")  # fmt: skip
        store.refresh()
        return store.lookup


def _reader(data_dir: Path | None, namespace: str, source: str) -> _Reader:
    """Settings, broker and projection of a read; exits 2 on a bad --source, 3 when there is no
    stack, or with ``--source projection`` no projection."""
    from gateway.reads import find_projection
    from infra.endpoints import resolve_endpoints
    from infra.settings import Settings
    from infra.stack import StackError

    if source not in ("auto", "projection", "kafka"):
        raise _fail(f"--source {source!r}: use auto, projection or kafka", EXIT_INPUT)
    _check_namespace(namespace)
    settings = Settings(data_dir=data_dir) if data_dir is not None else Settings()
    try:
        bootstrap = resolve_endpoints(settings).kafka_bootstrap
    except StackError as exc:
        raise _fail(str(exc), EXIT_UNAVAILABLE) from None
    from streams.admin import BrokerUnavailable, list_topics

    try:  # the probe: one metadata request, whose topics serve the read
        partitions = list_topics(bootstrap, settings.kafka_timeout_s)
    except BrokerUnavailable as exc:
        raise _fail(str(exc), EXIT_UNAVAILABLE) from None
    projection = None
    if source != "kafka":
        projection = find_projection(settings.resolved_data_dir(), settings.clickhouse_url, namespace, bootstrap)
        if projection is None and source == "projection":
            raise _fail(f"no projection to read: no projector runs for {settings.resolved_data_dir()} and "
                        f"namespace {namespace!r} (`csp up` starts one)", EXIT_UNAVAILABLE)  # fmt: skip
    return _Reader(settings, bootstrap, namespace, projection, partitions)


def _projection_failed(reader: _Reader, source: str, exc: Exception) -> None:
    """A projection read failed: exit 3 with ``--source projection``, else say so and read Kafka."""
    if source == "projection":
        raise _fail(str(exc), EXIT_UNAVAILABLE)
    typer.echo(f"note: the projection did not answer ({exc}); reading Kafka", err=True)
    reader.projection = None


def _write_lines(lines: Iterable[str]) -> None:
    """Print lines at once (100k lines one echo at a time cost seconds)."""
    import sys

    out = "".join(line + "\n" for line in lines)
    sys.stdout.write(out)
    sys.stdout.flush()


def deploy(
    file: Annotated[Path, typer.Argument(help="CSPm file")],
    process: Annotated[str, typer.Option("--process", "-p", help="Top process of the system")],
    name: Annotated[
        str | None, typer.Option("--name", help="System name (default: the process name)")
    ] = None,
    outputs: Annotated[
        str, typer.Option("--outputs", help="Output channels, comma-separated (others are input)")
    ] = "",
    force: Annotated[bool, typer.Option("--force", help="Deploy even if assertions fail")] = False,
    max_states: Annotated[
        int, typer.Option("--max-states", help="State limit for checks and compilation")
    ] = 1_000_000,
    bind: Annotated[
        list[str] | None,
        typer.Option("--bind", help="CHANNEL=SERVICE[:REPLY_CHANNEL]: bind an output channel to a service (repeatable)"),
    ] = None,
    fmt: Fmt = "text",
    data_dir: DataDir = None,
    namespace: Namespace = "",
    max_memory: Annotated[
        str | None,
        typer.Option("--max-memory", help="Memory limit for checks and compilation, e.g. 4G (default: 75% of RAM)"),
    ] = None,
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="Time limit in seconds for checks and compilation", min=0.0)
    ] = None,
) -> None:
    """Type-check, verify (every assert) and compile FILE, then register it as a new version."""
    from processors.csp.language.errors import CspmError
    from processors.csp.runtime.deploy import DeployError, describe_failure
    from processors.csp.semantics.limits import Guard, Limits, default_max_memory, parse_size

    fmt = _fmt(fmt)
    _check_text_file(file)
    try:
        limits = Limits(parse_size(max_memory) if max_memory else default_max_memory(), timeout or None)
    except ValueError as exc:
        raise _fail(f"--max-memory: {exc}", EXIT_INPUT) from None
    platform = _platform(data_dir, namespace)
    try:
        with Guard(limits):
            plan = platform.deploy(
                file, process, name=name, outputs=[o.strip() for o in outputs.split(",") if o.strip()],
                force=force, max_states=max_states, bind=bind or (),
            )  # fmt: skip
    except (CspmError, DeployError, ValueError) as exc:
        raise _fail(str(exc), EXIT_INPUT) from None
    finally:
        platform.close()
    dep = plan.deployment
    if fmt != "text":
        rows = [{"system": dep.system, "version": dep.version, "deployed": not plan.refused, "assertion": r.text,
                 "status": r.status} for r in plan.results]  # fmt: skip
        if fmt == "csv":
            _csv(rows)
        else:
            typer.echo(json.dumps({"system": dep.system, "version": dep.version, "deployed": not plan.refused,
                                   "channels": {c.name: c.role for c in dep.channels.values()},
                                   "assertions": [{"text": r["assertion"], "status": r["status"]} for r in rows]}))  # fmt: skip
        if plan.refused:
            raise typer.Exit(EXIT_REFUSED)
        return
    for res in plan.results:
        typer.echo(f"  {res.status:5} {res.text}")
    for res in plan.failed:
        typer.echo(describe_failure(res), err=True)
    if plan.refused:
        raise _fail(
            f"deployment of {dep.system} refused: {len(plan.failed)} assertion(s) failed (use --force to deploy anyway)",
            EXIT_REFUSED,
        )
    roles = ", ".join(f"{c.name}:{c.role.lower()}" for c in dep.channels.values())
    typer.echo(
        f"deployed {dep.system} v{dep.version} ({dep.lts.num_states} states, {dep.lts.num_transitions} transitions)"
        f"{' despite failing assertions' if plan.failed else ''}; channels {roles}"
    )


def start(
    system: Annotated[str, typer.Argument(help="Deployed system")],
    version: Annotated[int | None, typer.Option("--version", help="Version (default: latest)")] = None,
    param: Annotated[list[str] | None, typer.Option("--param", help="key=value (repeatable)")] = None,
    instance_id: Annotated[str | None, typer.Option("--id", help="Instance id (default: generated)")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the runtime")] = 30.0,
    fmt: Fmt = "text",
    data_dir: DataDir = None,
    namespace: Namespace = "",
) -> None:
    """Start an instance of SYSTEM; prints its id (json/csv: the id, system, version, state, status)."""
    from gateway.sdk import NoAnswer, PlatformError

    fmt = _fmt(fmt)
    params: dict[str, str] = {}
    for p in param or []:
        k, sep, v = p.partition("=")
        if not sep:
            raise _fail(f"--param {p!r}: expected key=value", EXIT_INPUT)
        params[k] = v
    _check_instance_id(instance_id)
    instance_id = instance_id or f"{system}-{uuid.uuid4().hex[:12]}"
    with _platform(data_dir, namespace) as platform:
        try:
            inst = platform.start(
                system, version=version, params=params, instance_id=instance_id, timeout_s=timeout
            )
        except NoAnswer as exc:  # the START stays on the log: the id finds the instance later
            if fmt == "text":
                typer.echo(instance_id)
            else:
                _print_row(fmt, {"instance_id": instance_id, "system": system, "version": version, "state": None,
                                 "status": None})  # fmt: skip
            raise _fail(str(exc), EXIT_UNAVAILABLE) from None
        except PlatformError as exc:
            raise _fail(str(exc), EXIT_REFUSED) from None
    if fmt != "text":
        _print_row(fmt, {"instance_id": inst.instance_id, "system": inst.system, "version": inst.version,
                         "state": inst.snapshot["state"], "status": inst.snapshot["status"]})  # fmt: skip
        return
    typer.echo(inst.instance_id)
    typer.echo(
        f"  {inst.system} v{inst.version}, state {inst.snapshot['state']}, {inst.snapshot['status']}",
        err=True,
    )


def offer(
    instance_id: Annotated[str, typer.Argument(help="Instance id")],
    event: Annotated[str, typer.Argument(help="Event in CSPm syntax, e.g. c.1.true")],
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the runtime")] = 30.0,
    expect_seq: Annotated[
        int | None,
        typer.Option(min=0, help="Only while the instance is at this seq (else refused NOT_ACCEPTABLE)"),
    ] = None,
    as_json: Json = False,
    fmt: Fmt = "text",
    data_dir: DataDir = None,
    namespace: Namespace = "",
) -> None:
    """Offer EVENT to an instance; prints the accepted event (and what followed) or the refusal."""
    from gateway.sdk import PlatformError

    fmt = _fmt(fmt, as_json)
    _check_instance_id(instance_id)
    with _platform(data_dir, namespace) as platform:
        try:
            res = platform.offer(instance_id, event, timeout_s=timeout, expect_seq=expect_seq)
        except PlatformError as exc:
            raise _fail(str(exc), EXIT_UNAVAILABLE) from None
    if fmt == "json":
        typer.echo(
            json.dumps({"event": res.event, "follow": list(res.follow), "refusal": res.refusal}, default=str)
        )
    elif fmt == "csv":
        _csv([dict(e) for e in ([res.event] if res.event else []) + list(res.follow)] or [dict(res.refusal or {})])
    else:
        typer.echo(str(res))
    if not res.accepted:
        raise typer.Exit(EXIT_REFUSED)


def stop(
    instance_id: Annotated[str, typer.Argument(help="Instance id")],
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the runtime")] = 30.0,
    fmt: Fmt = "text",
    data_dir: DataDir = None,
    namespace: Namespace = "",
) -> None:
    """Stop an instance; prints its final status (json/csv: the id, status, state, seq, or the refusal)."""
    from gateway.sdk import PlatformError

    fmt = _fmt(fmt)
    _check_instance_id(instance_id)
    with _platform(data_dir, namespace) as platform:
        try:
            got = platform.stop(instance_id, timeout_s=timeout)
        except PlatformError as exc:
            raise _fail(str(exc), EXIT_UNAVAILABLE) from None
    if "reason" in got:
        if fmt != "text":
            _print_row(fmt, {"instance_id": instance_id, "stopped": False, "reason": got["reason"],
                             "message": got.get("message")})  # fmt: skip
        raise _fail(f"{got['reason']}: {got['message']}", EXIT_REFUSED)
    if fmt != "text":
        _print_row(fmt, {"instance_id": instance_id, "stopped": True, "status": got.get("status"),
                         "state": got.get("state"), "seq": got.get("seq")})  # fmt: skip
        return
    typer.echo(f"{instance_id}: {got.get('status')}")


def tail(
    channel: Annotated[
        str | None, typer.Option("--channel", help="Channel (SYSTEM.CHANNEL, or with --system)")
    ] = None,
    system: Annotated[str | None, typer.Option("--system", help="System of --channel; else only this system's records")] = None,
    refusals: Annotated[bool, typer.Option("--refusals", help="Show refusals instead of events")] = False,
    instance: Annotated[str | None, typer.Option("--instance", help="Only this instance")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep waiting for new records")] = False,
    offset: Annotated[
        str,
        typer.Option("--offset", "-o", help="beginning | end (new records only, waits) | -N (the last N) | "
                     "OFFSET (from this Kafka offset of every partition)"),
    ] = "beginning",
    count: Annotated[int | None, typer.Option("--count", "-c", min=1, help="Exit after COUNT records")] = None,
    exit_at_end: Annotated[bool, typer.Option("--exit", "-e", help="Exit at the end of the log (the default unless -f or -o end)")] = False,
    lines: Annotated[
        int | None, typer.Option("--lines", "-n", min=0, help="The last N records (= -o -N)", show_default=False)
    ] = None,
    source: Annotated[
        str, typer.Option("--source", help="-n/-o -N: auto (read each partition backwards from its end, only as "
                          "far as needed) | kafka (read whole partitions: the reference)"),
    ] = "auto",
    as_json: Json = False,
    fmt: Fmt = "text",
    data_dir: DataDir = None,
    namespace: Namespace = "",
) -> None:
    """Print the event log (deduplicated on (instance, seq)), a channel's messages, or the refusals.

    kcat habits: -o beginning|end|-N|OFFSET, -c COUNT, -e.

    -n N (= -o -N): the last N records (of each partition's last N, the N newest), oldest first; reads only the partitions' ends."""
    from contextlib import nullcontext
    from itertools import islice

    if source not in ("auto", "kafka"):
        raise _fail(f"--source {source!r}: use auto or kafka", EXIT_INPUT)
    if lines is not None:
        offset = f"-{lines}"
    fmt = _fmt(fmt, as_json)
    as_json = fmt == "json"
    csv_rows: list[dict[str, Any]] = []
    last: int | None = None
    start: int | None = None
    if offset == "end":
        follow = not exit_at_end
    elif offset.startswith("-") and offset[1:].isdigit():
        last = int(offset[1:])
    elif offset.isdigit():
        start = int(offset)
    elif offset != "beginning":
        raise _fail(f"-o {offset!r}: use beginning, end, -N or an offset", EXIT_INPUT)
    if exit_at_end:
        follow = False
    # the last N events or refusals, without following: no Platform (its import alone takes a while)
    light = last is not None and channel is None and not follow
    reader = _reader(data_dir, namespace, "kafka") if light else None
    with nullcontext(None) if light else _platform(data_dir, namespace) as platform:
        if platform is not None and channel is not None:
            system, channel = _resolve_channel(platform, channel, system)
            topic, schema = platform.topics.channel(system, channel), "ChannelMessage"
        else:
            topics = reader.topics if reader is not None else platform.topics  # type: ignore[union-attr]
            topic, schema = (topics.refusals, "CspRefusal") if refusals else (topics.events, "CspEvent")
        key = (lambda r: (r["command_id"], 0)) if channel is None and refusals else None
        wait = None if follow else 1.0

        def wanted(rec: Mapping[str, Any]) -> bool:
            return (instance is None or rec["instance_id"] == instance) and (
                system is None or channel is not None or rec.get("system") == system)  # fmt: skip

        if last is not None:
            from gateway.reads import tail as last_records
            from processors.csp.runtime.partitioning import partition_for
            from streams.admin import list_topics

            bootstrap = reader.bootstrap if reader is not None else platform.bootstrap  # type: ignore[union-attr]
            codec = reader.codec() if reader is not None else platform.codec  # type: ignore[union-attr]
            nparts = (reader.partitions if reader is not None else list_topics(bootstrap)).get(topic, 0)
            parts = list(range(nparts))
            if instance is not None and channel is None and nparts:
                parts = [partition_for(instance, nparts)]  # events and refusals are keyed by instance

            def decode(value: bytes) -> dict[str, Any] | None:
                try:
                    name, rec = codec.decode(value)
                except Exception:  # noqa: BLE001 - skipped, as the full read skips it
                    return None
                return rec if name == schema else None

            rows, _read = last_records(bootstrap, topic, parts, decode,
                                       key or (lambda r: (r.get("instance_id", ""), r.get("seq", -1))),
                                       wanted, last, bounded=source == "auto")  # fmt: skip
            selected: Iterable[dict[str, Any]] = rows
            if follow:
                from itertools import chain

                assert platform is not None
                more = platform.stream(topic, schema, from_beginning=False, timeout_s=None, dedupe=key)
                selected = chain(rows, (r for r in more if wanted(r)))
        else:
            assert platform is not None
            if offset == "end" or start is not None:
                everything: Iterable[dict[str, Any]] = platform.stream(
                    topic, schema, from_beginning=offset != "end", start_offset=start, timeout_s=wait, dedupe=key)  # fmt: skip
            elif not follow:
                if channel is not None:
                    everything = platform.subscribe(channel, system=system, timeout_s=1.0)
                else:
                    everything = platform.refusals() if refusals else platform.events(instance)
            else:
                everything = platform.stream(topic, schema, timeout_s=None, dedupe=key)
            selected = (r for r in everything if wanted(r))
        out: list[str] = []
        for rec in islice(selected, count):
            if fmt == "csv":
                csv_rows.append(rec)
                continue
            if as_json:
                line = json.dumps(rec, default=lambda b: b.hex() if isinstance(b, bytes) else str(b))
            elif channel is not None:
                line = f"{rec['instance_id']} #{rec['seq']} {rec['event']} values={rec['values']}"
            elif refusals:
                acc = rec.get("acceptable") or []
                line = (f"{rec['instance_id']} {rec.get('event') or '-'} {rec['reason']}: {rec['message']}"
                        + (f" (acceptable: {', '.join(acc)})" if acc else ""))  # fmt: skip
            else:
                line = (f"{rec['instance_id']} #{rec['seq']} {rec['kind']:6} {rec['event']}  "
                        f"[{rec['state_before']}->{rec['state_after']}]"
                        + (f" choice {rec['choice']['chosen']}/{rec['choice']['options']}" if rec.get("choice") else ""))  # fmt: skip
            if follow:
                typer.echo(line)  # as it comes
            else:
                out.append(line)
        _write_lines(out)
    _csv(csv_rows)


def _resolve_channel(platform: Platform, channel: str, system: str | None) -> tuple[str, str]:
    """(system, channel) of ``--channel``/``--system``; exits 1 when no deployed system has that channel."""
    if system is None and "." in channel:
        system, channel = channel.split(".", 1)
    systems = platform.systems()

    def channels_of(name: str) -> set[str]:
        deps = (platform.store.lookup(name, v) for v in systems.get(name, []))
        return {c for dep in deps if dep is not None for c in dep.channels}

    if system is None:
        owners = sorted(s for s in systems if channel in channels_of(s))
        if not owners:
            raise _fail(
                f"no deployed system has a channel {channel!r} (deployed: {', '.join(sorted(systems)) or 'none'})",
                EXIT_REFUSED,
            )
        if len(owners) > 1:
            raise _fail(
                f"channel {channel!r} is on {len(owners)} deployed systems ({', '.join(owners)}); "
                "name one with --system SYSTEM or --channel SYSTEM.CHANNEL",
                EXIT_REFUSED,
            )
        return owners[0], channel
    if system not in systems:
        raise _fail(
            f"no deployed system {system!r} (deployed: {', '.join(sorted(systems)) or 'none'})", EXIT_REFUSED
        )
    known = channels_of(system)
    if channel not in known:
        raise _fail(
            f"system {system} has no channel {channel!r} (channels: {', '.join(sorted(known)) or 'none'})",
            EXIT_REFUSED,
        )
    return system, channel


def instances(
    system: Annotated[str | None, typer.Option("--system", help="Only this system")] = None,
    index: Annotated[
        bool, typer.Option("--index", help="Serve from the incremental SQLite index in the data dir (reads only new records)")
    ] = False,
    source: Source = "auto",
    as_json: Json = False,
    fmt: Fmt = "text",
    data_dir: DataDir = None,
    namespace: Namespace = "",
) -> None:
    """List instances with their state, folded from the snapshots and the event log.

    From the ClickHouse projection plus the newer records from Kafka when the projector runs; else (or --source kafka) from the whole log."""
    fmt = _fmt(fmt, as_json)
    as_json = fmt == "json"
    reader = _reader(data_dir, namespace, "kafka" if index else source)
    rows: list[tuple[str, str, int, int, int, str]] | None = None
    if reader.projection is not None:
        from gateway.reads import ProjectionError
        from gateway.reads import instances as fast_instances

        try:
            got_fast = fast_instances(reader.projection, reader.bootstrap, reader.topics, reader.codec,
                                      reader.lookup, system, text=fmt == "text")  # fmt: skip
        except ProjectionError as exc:
            _projection_failed(reader, source, exc)
        else:
            typer.echo(str(got_fast.lag), err=True)
            if got_fast.text is not None:  # the lines as ClickHouse rendered them
                import sys

                sys.stdout.write(got_fast.text)
                sys.stdout.flush()
                typer.echo(f"{got_fast.count} instance(s)", err=True)
                return
            rows = got_fast.rows
    if rows is None:
        with _platform(data_dir, namespace) as platform:
            if index:
                idx = platform.instance_index()
                got = idx.instances(system)
                idx.close()
            else:
                got = [i for i in platform.instances() if system is None or i.system == system]
        rows = [(i.instance_id, i.system, i.version, i.state, i.seq, i.status.value) for i in got]
    keys = ("instance_id", "system", "version", "state", "seq", "status")
    if fmt == "csv":
        _csv([dict(zip(keys, r, strict=True)) for r in rows])
        return
    if as_json:
        _write_lines(json.dumps(dict(zip(keys, r, strict=True))) for r in rows)
        return
    _write_lines(f"{r[0]}  {r[1]} v{r[2]}  state {r[3]}  seq {r[4]}  {r[5]}" for r in rows)
    typer.echo(f"{len(rows)} instance(s)", err=True)


def replay(
    instance_id: Annotated[str, typer.Argument(help="Instance id")],
    until: Annotated[
        int | None, typer.Option("--until", min=0, help="Rebuild the state after event SEQ")
    ] = None,
    source: Source = "auto",
    as_json: Json = False,
    fmt: Fmt = "text",
    data_dir: DataDir = None,
    namespace: Namespace = "",
) -> None:
    """Rebuild an instance's state from its event log (up to --until) and print the trace.

    From the ClickHouse projection plus the newer records from Kafka when the projector runs; else (or --source kafka) from its whole partition."""
    from processors.csp.runtime.fold import FoldError, Replay

    fmt = _fmt(fmt, as_json)
    as_json = fmt == "json"
    _check_instance_id(instance_id)
    reader = _reader(data_dir, namespace, source)
    rep: Replay | None = None
    if reader.projection is not None:
        from gateway.reads import ProjectionError
        from gateway.reads import replay as fast_replay
        from processors.csp.runtime.partitioning import partition_for

        topics = reader.topics
        parts = reader.partitions.get(topics.events, 0)
        try:
            got, lag = fast_replay(reader.projection, reader.bootstrap, topics, reader.codec, reader.lookup,
                                   instance_id, partition_for(instance_id, max(1, parts)), until)  # fmt: skip
        except ProjectionError as exc:
            _projection_failed(reader, source, exc)
        except FoldError as exc:
            raise _fail(str(exc), EXIT_REFUSED) from None
        else:
            if got is None:
                raise _fail(f"no instance {instance_id} in {topics.events}/{topics.snapshots}", EXIT_REFUSED)
            rep = got
            typer.echo(str(lag), err=True)
    if rep is None:
        from gateway.sdk import PlatformError

        with _platform(data_dir, namespace) as platform:
            try:
                rep = platform.replay(instance_id, until)
            except (PlatformError, FoldError) as exc:
                raise _fail(str(exc), EXIT_REFUSED) from None
    inst = rep.instance
    if as_json:
        typer.echo(json.dumps({"instance_id": inst.instance_id, "state": inst.state, "seq": inst.seq,
                               "status": inst.status.value, "trace": [e["event"] for e in rep.trace]}))  # fmt: skip
        return
    if fmt == "csv":
        _csv([{k: e.get(k) for k in ("instance_id", "seq", "kind", "event", "state_before", "state_after")}
              for e in rep.trace])  # fmt: skip
        return
    for e in rep.trace:
        typer.echo(f"#{e['seq']:<5} {e['kind']:6} {e['event']:24} {e['state_before']} -> {e['state_after']}")
    typer.echo(f"{inst.instance_id} ({inst.system} v{inst.version}) after seq {inst.seq}: state {inst.state}, "
               f"{inst.status.value}")  # fmt: skip


def conform(
    system: Annotated[str, typer.Argument(help="Deployed system whose recorded traces are checked")],
    spec_file: Annotated[Path, typer.Argument(help="CSPm file of the specification")],
    spec_proc: Annotated[str, typer.Argument(help="Specification process")],
    max_states: Annotated[int, typer.Option("--max-states")] = 1_000_000,
    fmt: Fmt = "text",
    data_dir: DataDir = None,
    namespace: Namespace = "",
) -> None:
    """Check every recorded trace of SYSTEM against SPEC_PROC (traces refinement on the recorded traces)."""
    from processors.csp.check.compile import compile_process
    from processors.csp.language.errors import CspmError
    from processors.csp.runtime.conform import conform as check
    from processors.csp.runtime.conform import visible_trace
    from processors.csp.semantics.frontend import load_file

    fmt = _fmt(fmt)
    _check_text_file(spec_file)
    try:
        module = load_file(spec_file)
        spec = compile_process(module.process(spec_proc), max_states)
    except (CspmError, OSError) as exc:
        raise _fail(str(exc), EXIT_INPUT) from None
    except Exception as exc:
        raise _fail(f"{spec_proc}: {exc}", EXIT_INPUT) from None
    with _platform(data_dir, namespace) as platform:
        systems = platform.systems()
        if system not in systems:
            raise _fail(
                f"no deployed system {system!r} (deployed: {', '.join(sorted(systems)) or 'none'})",
                EXIT_REFUSED,
            )
        events = [e for e in platform.events() if e["system"] == system]
        started = [i.instance_id for i in platform.instances() if i.system == system]
    per: dict[str, list[dict[str, Any]]] = {iid: [] for iid in started}
    for e in events:
        per.setdefault(e["instance_id"], []).append(e)
    traces = {iid: visible_trace(evs) for iid, evs in per.items()}
    violations = check(spec, traces)
    if fmt != "text":
        rows = [{"instance_id": v.instance_id, "violation": str(v)} for v in violations]
        if fmt == "csv":
            _csv(rows)
        else:
            typer.echo(json.dumps({"system": system, "spec": spec_proc, "instances": len(traces),
                                   "conforming": len(traces) - len(violations), "violations": rows}))  # fmt: skip
        if violations:
            raise typer.Exit(EXIT_REFUSED)
        return
    for v in violations:
        typer.echo(f"VIOLATION {v}")
    typer.echo(
        f"{len(traces) - len(violations)} of {len(traces)} instance(s) of {system} conform to {spec_proc}"
    )
    if violations:
        raise typer.Exit(EXIT_REFUSED)


def worker(
    worker_id: Annotated[
        str,
        typer.Option(
            "--worker-id",
            help="Name in logs and metrics (default: unique, <host>-<pid>-<random>); "
            "partitions fence their previous owner whatever the id",
        ),
    ] = "",
    batch_size: Annotated[int, typer.Option("--batch-size")] = 5000,
    at_least_once: Annotated[bool, typer.Option("--at-least-once", help="No transactions")] = False,
    bound: Annotated[
        int, typer.Option("--bound", min=1, help="Max τ/output steps per command before DIVERGENT")
    ] = 1000,
    snapshot_every: Annotated[
        int, typer.Option("--snapshot-every", min=1, help="Snapshot an instance every N events")
    ] = 100,
    no_channels: Annotated[
        bool, typer.Option("--no-channels", help="Do not run the channel bridge (input topics, links, bindings) here")
    ] = False,
    data_dir: DataDir = None,
    namespace: Namespace = "",
) -> None:
    """Run a runtime worker in the foreground (Ctrl-C to stop); start more to scale out.

    It also runs the channel bridge (input channel topics, links, service bindings)."""
    from infra.settings import Settings
    from infra.stack import StackError, resolve_endpoints
    from processors.csp.runtime.worker import main as worker_main

    if data_dir is not None:
        import os

        os.environ["CSP_DATA_DIR"] = str(data_dir)
    _check_namespace(namespace)
    settings = Settings()
    try:
        bootstrap = resolve_endpoints(settings).kafka_bootstrap
    except StackError as exc:
        raise _fail(str(exc), EXIT_UNAVAILABLE) from None
    _probe(bootstrap, settings.kafka_timeout_s)
    from processors.csp.runtime.worker import default_worker_id

    worker_id = worker_id or default_worker_id()
    args = ["--worker-id", worker_id, "--batch-size", str(batch_size), "--namespace", namespace,
            "--bootstrap", bootstrap, "--bound", str(bound), "--snapshot-every", str(snapshot_every)]  # fmt: skip
    if at_least_once:
        args.append("--at-least-once")
    if no_channels:
        args.append("--no-channels")
    try:
        code = worker_main(args)
    except Exception as exc:
        from streams.admin import BrokerUnavailable, wait_ready

        try:
            wait_ready(bootstrap, 2.0)
        except BrokerUnavailable:  # the broker went away under the worker: say so in one line
            raise _fail(
                f"runtime worker {worker_id} stopped: lost the Kafka broker at {bootstrap} "
                f"({type(exc).__name__}: {exc})",
                EXIT_UNAVAILABLE,
            ) from None
        raise  # the broker is fine: a real failure, keep the traceback
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command("deploy")(deploy)
    app.command("start")(start)
    app.command("offer")(offer)
    app.command("stop")(stop)
    app.command("tail")(tail)
    app.command("instances")(instances)
    app.command("replay")(replay)
    app.command("conform")(conform)
    app.command("worker")(worker)
