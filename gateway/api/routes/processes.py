"""Systems ("processes"), their instances, channels, refusals and dead letters."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from gateway.api import lts as lts_svg
from gateway.api.backend import jsonable
from gateway.api.context import Context, ctx_of
from gateway.api.problems import Problem
from gateway.api.security import Principal, admin, developer, viewer
from gateway.sdk import NoAnswer, PlatformError

router = APIRouter(tags=["processes"])
Ctx = Annotated[Context, Depends(ctx_of)]
Viewer = Annotated[Principal, Depends(viewer)]
Developer = Annotated[Principal, Depends(developer)]
Admin = Annotated[Principal, Depends(admin)]
NAME = r"^[A-Za-z][A-Za-z0-9_-]{0,63}$"
MAX_SOURCE = 512_000


class Deploy(BaseModel):
    source: str = Field(min_length=1, max_length=MAX_SOURCE, description="CSPm script")
    process: str = Field(min_length=1, max_length=200, description="The top process")
    name: str | None = Field(default=None, pattern=NAME, description="System name (default: the process)")
    outputs: list[str] = Field(default_factory=list, max_length=100, description="Output channels")
    force: bool = Field(default=False, description="Deploy even when an assertion fails")
    file_name: str = Field(default="system.csp", max_length=200)


class Start(BaseModel):
    version: int | None = Field(default=None, ge=1)
    params: dict[str, str] = Field(default_factory=dict)
    instance_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._-]{1,128}$")
    timeout_s: float = Field(default=30.0, gt=0, le=120)


class Offer(BaseModel):
    event: str = Field(min_length=1, max_length=1000, description="CSPm event, e.g. left.1")
    timeout_s: float = Field(default=30.0, gt=0, le=120)
    expect_seq: int | None = Field(
        default=None, ge=0, description="Only while the instance is at this seq; else refused NOT_ACCEPTABLE"
    )


class Send(BaseModel):
    instance_id: str = Field(min_length=1, max_length=128)
    values: list[str] = Field(default_factory=list, max_length=32, description="The message's fields")
    timeout_s: float = Field(default=30.0, gt=0, le=120)


class Receive(BaseModel):
    timeout_s: float = Field(default=10.0, ge=0, le=60, description="Long-poll: wait this long for a message")
    max_messages: int = Field(default=100, ge=1, le=1000)
    offsets: dict[int, int] | None = Field(default=None, description="Resume: partition -> next offset")
    instance_id: str | None = Field(default=None, max_length=128, description="Only this instance's messages")
    event: str | None = Field(default=None, max_length=1000, description="Only this event")


def _platform_error(exc: PlatformError) -> Problem:
    if isinstance(exc, NoAnswer):
        return Problem(504, "Gateway Timeout", str(exc), kind="no-runtime-worker")
    return Problem(409, "Conflict", str(exc), kind="refused")


def _system_doc(ctx: Context, system: str, versions: list[int], detail: bool = False) -> dict[str, Any]:
    dep = ctx.backend.deployment(system, versions[-1])
    retired_at = ctx.access.state.retired.get(system)
    retired = retired_at is not None and (dep is None or dep.deployed_at <= retired_at)
    running = [i for i in ctx.backend.instances() if i.system == system and str(i.status) == "RUNNING"]
    doc: dict[str, Any] = {
        "id": system,
        "status": "retired" if retired else "deployed",
        "versions": versions,
        "version": versions[-1],
        "process": dep.process if dep else None,
        "deployed_at": dep.deployed_at if dep else None,
        "channels": [{"name": c.name, "role": c.role, "fields": list(c.fields)} for c in dep.channels.values()]
        if dep else [],
        "assertions": [{"text": t, "status": s} for t, s in dep.assertions] if dep else [],
        "states": dep.lts.num_states if dep else None,
        "instances_running": len(running),
    }
    if detail and dep is not None:
        doc["source"] = dep.source
        doc["file_name"] = dep.file_name
        doc["instances"] = [_inst_doc(i) for i in ctx.backend.instances() if i.system == system]
    return doc


def _inst_doc(i: Any) -> dict[str, Any]:
    return {"id": i.instance_id, "system": i.system, "version": i.version, "status": str(i.status),
            "seq": i.seq, "state": i.state, "updated_at": i.updated_at, "params": dict(i.params)}  # fmt: skip


def _retired(ctx: Context, system: str) -> bool:
    at = ctx.access.refresh_if_older(2.0).retired.get(system)
    if at is None:
        return False
    dep = ctx.backend.deployment(system)
    return dep is None or dep.deployed_at <= at


def _deploy(ctx: Context, body: Deploy) -> JSONResponse:
    from processors.csp.check.verify import check_json, result_json
    from processors.csp.language.errors import CspmError
    from processors.csp.runtime.deploy import DeployError

    t0 = time.perf_counter()
    try:
        plan = ctx.backend.deploy(body.source, body.process, body.name, body.outputs, body.force, body.file_name)
    except (CspmError, DeployError) as exc:
        raise Problem(422, "Unprocessable Content", str(exc), kind="invalid-cspm") from None
    except PlatformError as exc:
        raise _platform_error(exc) from None
    finally:
        ctx.metrics.execution_duration.labels("deploy").observe(time.perf_counter() - t0)
    assertions = [result_json(r) for r in plan.results]
    if plan.refused:
        failed = [result_json(r) for r in plan.failed]
        first = plan.failed[0]
        raise Problem(422, "Assertion Failed",
                      f"not deployed: assertion {first.text!r} is {first.status}" +
                      (f": {first.message}" if first.message else ""),
                      kind="assertion-failed",
                      extra={"assertions": assertions, "failed": failed, "checks": [check_json(r) for r in plan.results]})  # fmt: skip
    dep = plan.deployment
    doc = {"id": dep.system, "version": dep.version, "process": dep.process, "states": dep.lts.num_states,
           "channels": [{"name": c.name, "role": c.role, "fields": list(c.fields)} for c in dep.channels.values()],
           "assertions": assertions, "forced": bool(plan.failed)}  # fmt: skip
    return JSONResponse(doc, status_code=201)


@router.post("/processes", status_code=201, summary="Deploy a CSPm system (developer); 422 + counterexample "
             "when an assertion fails")  # fmt: skip
def deploy(body: Deploy, ctx: Ctx, _p: Developer) -> JSONResponse:
    return _deploy(ctx, body)


@router.post("/processes/upload", status_code=201, summary="Deploy a CSPm file (multipart; developer)")
async def deploy_file(
    ctx: Ctx, _p: Developer,
    file: Annotated[UploadFile, File(description="CSPm script")],
    process: Annotated[str, Form(min_length=1, max_length=200)],
    name: Annotated[str | None, Form(pattern=NAME)] = None,
    outputs: Annotated[str, Form(description="comma-separated output channels")] = "",
    force: Annotated[bool, Form()] = False,
) -> JSONResponse:

    raw = await file.read(MAX_SOURCE + 1)
    if len(raw) > MAX_SOURCE:
        raise Problem(413, "Content Too Large", f"the script is larger than {MAX_SOURCE} bytes")
    try:
        source = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Problem(422, "Unprocessable Content", "the script is not UTF-8", kind="invalid-cspm") from None
    body = Deploy(source=source, process=process, name=name, force=force, file_name=file.filename or "system.csp",
                  outputs=[o.strip() for o in outputs.split(",") if o.strip()])  # fmt: skip
    return await run_in_threadpool(_deploy, ctx, body)


EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


@router.get("/examples", summary="The example CSPm scripts shipped with the platform (viewer)")
def examples(_p: Viewer) -> list[dict[str, str]]:
    return [{"name": str(f.relative_to(EXAMPLES)), "source": f.read_text(encoding="utf-8")}
            for f in sorted(EXAMPLES.glob("**/*.csp"))]  # fmt: skip


@router.get("/processes", summary="List deployed systems (viewer)")
def list_processes(
    ctx: Ctx, _p: Viewer,
    status: Annotated[Literal["deployed", "retired"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    docs = [_system_doc(ctx, s, v) for s, v in sorted(ctx.backend.systems().items())]
    if status is not None:
        docs = [d for d in docs if d["status"] == status]
    return {"total": len(docs), "limit": limit, "offset": offset, "items": docs[offset : offset + limit]}


def _versions(ctx: Context, system: str) -> list[int]:
    versions = ctx.backend.systems().get(system) or ctx.backend.systems(fresh=True).get(system)
    if not versions:
        raise Problem(404, "Not Found", f"no system {system!r} is deployed", kind="unknown-system")
    return versions


@router.get("/processes/{system}", summary="One system, with its source and instances (viewer)")
def get_process(system: str, ctx: Ctx, _p: Viewer) -> dict[str, Any]:
    return _system_doc(ctx, system, _versions(ctx, system), detail=True)


@router.get("/processes/{system}/lts.svg", summary="The system's LTS as SVG (viewer)",
            response_class=Response)  # fmt: skip
def get_lts(system: str, ctx: Ctx, _p: Viewer, max_states: Annotated[int, Query(ge=1, le=2000)] = 300) -> Response:
    dep = ctx.backend.deployment(system, _versions(ctx, system)[-1])
    if dep is None:
        raise Problem(404, "Not Found", f"no deployment of {system!r}", kind="unknown-system")
    return Response(lts_svg.render(dep.lts, system, max_states), media_type="image/svg+xml")


@router.post("/processes/{system}/start", status_code=201, summary="Start an instance (developer)")
def start(system: str, ctx: Ctx, _p: Developer, body: Start | None = None) -> dict[str, Any]:
    body = body or Start()
    _versions(ctx, system)
    if _retired(ctx, system):
        raise Problem(409, "Conflict", f"system {system!r} was undeployed: deploy it again to start it",
                      kind="retired")  # fmt: skip
    t0 = time.perf_counter()
    try:
        inst = ctx.backend.start(system, body.version, body.params, body.timeout_s)
    except PlatformError as exc:
        raise _platform_error(exc) from None
    finally:
        ctx.metrics.execution_duration.labels("start").observe(time.perf_counter() - t0)
    return {"id": inst.instance_id, "system": inst.system, "version": inst.version,
            "status": str(inst.snapshot.get("status", "RUNNING")), "seq": inst.snapshot.get("seq", 0)}  # fmt: skip


def _stop_all(ctx: Context, system: str) -> list[str]:
    stopped = []
    for i in ctx.backend.instances(fresh=True):
        if i.system == system and str(i.status) == "RUNNING":
            try:
                ctx.backend.stop(i.instance_id, 30.0)
            except PlatformError as exc:
                raise _platform_error(exc) from None
            stopped.append(i.instance_id)
    return stopped


@router.post("/processes/{system}/stop", summary="Stop every running instance of a system (developer)")
def stop_system(system: str, ctx: Ctx, _p: Developer) -> dict[str, Any]:
    _versions(ctx, system)
    return {"id": system, "stopped": _stop_all(ctx, system)}


@router.delete("/processes/{system}", summary="Undeploy: stop its instances, retire the system (admin)")
def undeploy(system: str, ctx: Ctx, p: Admin) -> dict[str, Any]:
    _versions(ctx, system)
    stopped = _stop_all(ctx, system)
    ctx.access.retire_system(system, actor=p.name)
    return {"id": system, "status": "retired", "stopped": stopped}


@router.get("/instances", summary="List instances (viewer)")
def list_instances(
    ctx: Ctx, _p: Viewer,
    system: str | None = None,
    status: Annotated[str | None, Query(pattern=r"^(RUNNING|STOPPED|DEADLOCKED|TERMINATED|DIVERGENT)$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    items = [_inst_doc(i) for i in ctx.backend.instances()
             if (system is None or i.system == system) and (status is None or str(i.status) == status)]  # fmt: skip
    items.sort(key=lambda d: -int(d["updated_at"] or 0))
    return {"total": len(items), "limit": limit, "offset": offset, "items": items[offset : offset + limit]}


@router.get("/instances/{instance_id}", summary="One instance (viewer)")
def get_instance(instance_id: str, ctx: Ctx, _p: Viewer) -> dict[str, Any]:
    for fresh in (False, True):
        for i in ctx.backend.instances(fresh=fresh):
            if i.instance_id == instance_id:
                doc = _inst_doc(i)
                dep = ctx.backend.deployment(i.system, i.version)
                if dep is not None:
                    doc["acceptable"] = _acceptable(dep, i.state)
                return doc
    raise Problem(404, "Not Found", f"no instance {instance_id!r}", kind="unknown-instance")


def _acceptable(dep: Any, state: int) -> list[str]:
    try:
        return sorted({dep.lts.events[lab] for lab, _t in dep.lts.successors(state) if lab >= 2})
    except Exception:  # noqa: BLE001
        return []


@router.post("/instances/{instance_id}/offer", summary="Offer an event (developer): the event or the refusal")
async def offer(instance_id: str, body: Offer, ctx: Ctx, _p: Developer) -> JSONResponse:
    return await _offer(ctx, instance_id, body)


async def _offer(ctx: Context, instance_id: str, body: Offer) -> JSONResponse:
    # on the event loop, no thread hop: the offer pump (gateway/api/offers.py) produces the
    # command and resolves this request's future when the command is complete
    t0 = time.perf_counter()
    try:
        res = await ctx.backend.offers.offer(instance_id, body.event, body.timeout_s, body.expect_seq)
    except PlatformError as exc:
        raise _platform_error(exc) from None
    except ValueError as exc:
        raise Problem(422, "Invalid Request", str(exc), kind="bad-instance-id") from None
    finally:
        ctx.metrics.execution_duration.labels("offer").observe(time.perf_counter() - t0)
    return JSONResponse({"offer_id": res.offer_id, "accepted": res.accepted,
                         "event": jsonable(res.event) if res.event else None,
                         "refusal": jsonable(res.refusal) if res.refusal else None,
                         "follow": [jsonable(e) for e in res.follow]})  # fmt: skip


@router.post("/instances/{instance_id}/stop", summary="Stop an instance (developer)")
def stop_instance(instance_id: str, ctx: Ctx, _p: Developer) -> dict[str, Any]:
    try:
        out = ctx.backend.stop(instance_id, 30.0)
    except PlatformError as exc:
        raise _platform_error(exc) from None
    return jsonable(out)


@router.get("/instances/{instance_id}/trace", summary="The instance's trace, up to seq `until` (viewer)")
def trace(
    instance_id: str, ctx: Ctx, _p: Viewer, until: Annotated[int | None, Query(ge=0)] = None
) -> dict[str, Any]:
    try:
        events = ctx.backend.trace(instance_id, until)
    except PlatformError as exc:
        raise Problem(404, "Not Found", str(exc), kind="unknown-instance") from None
    return {"id": instance_id, "until": until, "trace": [e["event"] for e in events],
            "events": [jsonable(e) for e in events]}  # fmt: skip


@router.get("/refusals", summary="The newest refusals (viewer)")
def refusals(ctx: Ctx, _p: Viewer, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, Any]]:
    return [jsonable(r) for r in ctx.backend.refusals(limit)]


@router.get("/dead-letters", summary="The newest dead letters of every *.dlq topic (viewer)")
def dead_letters(ctx: Ctx, _p: Viewer, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, Any]]:
    return [jsonable(r) for r in ctx.backend.dead_letters(limit)]


# -- channels --------------------------------------------------------------------------


def _channel(ctx: Context, ref: str) -> tuple[str, str, Any]:
    system, sep, channel = ref.partition(".")
    if not sep or not channel:
        raise Problem(422, "Invalid Request", f"channel {ref!r}: use <system>.<channel>", kind="validation")
    _versions(ctx, system)
    dep = ctx.backend.deployment(system)
    spec = dep.channels.get(channel) if dep is not None else None
    if spec is None:
        names = ", ".join(sorted(dep.channels)) if dep is not None else ""
        raise Problem(404, "Not Found", f"system {system!r} has no channel {channel!r} (channels: {names or 'none'})",
                      kind="unknown-channel")  # fmt: skip
    return system, channel, spec


@router.get("/channels", summary="Channels of the deployed systems (viewer)")
def channels(ctx: Ctx, _p: Viewer) -> list[dict[str, Any]]:
    out = []
    for system in sorted(ctx.backend.systems()):
        dep = ctx.backend.deployment(system)
        if dep is None or _retired(ctx, system):
            continue
        for c in dep.channels.values():
            out.append({"id": f"{system}.{c.name}", "system": system, "channel": c.name, "role": c.role,
                        "fields": list(c.fields), "topic": ctx.backend.channel_topic(system, c.name)})  # fmt: skip
    return out


@router.post("/channels/{ref}/send", summary="Send on an input channel: an offer of <channel>.<values> (developer)")
async def send(ref: str, body: Send, ctx: Ctx, p: Developer) -> JSONResponse:
    _system, channel, spec = await run_in_threadpool(_channel, ctx, ref)
    if spec.role != "INPUT":
        raise Problem(422, "Invalid Request", f"{ref} is an output channel: the process sends on it",
                      kind="output-channel")  # fmt: skip
    event = ".".join([channel, *body.values])
    return await _offer(ctx, body.instance_id, Offer(event=event, timeout_s=body.timeout_s))


@router.post("/channels/{ref}/receive", summary="Long-poll a channel's messages (viewer)")
def receive(ref: str, ctx: Ctx, _p: Viewer, body: Receive | None = None) -> dict[str, Any]:
    body = body or Receive()
    system, channel, _spec = _channel(ctx, ref)
    match: Mapping[str, str] = {k: v for k, v in (("instance_id", body.instance_id), ("event", body.event)) if v}
    msgs, nxt = ctx.backend.receive(ctx.backend.channel_topic(system, channel), body.offsets, body.timeout_s,
                                    body.max_messages, match)  # fmt: skip
    return {"channel": ref, "messages": msgs, "offsets": {str(k): v for k, v in nxt.items()}}
