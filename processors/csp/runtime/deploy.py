"""Planning a deployment: type-check, verify and compile a CSPm file (pure but for reading it).

``plan(...)`` loads the script (parse + type check), runs every ``assert`` of
the file, compiles the top process to an LTS and assigns channel roles.
Deployment is refused (``plan.refused``) when an assertion fails or errors,
unless ``force``; the caller prints the failures with their counterexamples.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from processors.csp.runtime.model import INPUT, OUTPUT, ChannelSpec, Deployment

DEFAULT_MAX_STATES = 1_000_000


class DeployError(ValueError):
    """The file cannot be deployed as asked (unknown process or channel, state limit, ...)."""


@dataclass(frozen=True)
class Plan:
    deployment: Deployment
    results: tuple[Any, ...]  # processors.csp.check.verify.AssertionResult
    failed: tuple[Any, ...]  # results whose status is not "pass"
    force: bool

    @property
    def refused(self) -> bool:
        return bool(self.failed) and not self.force


def describe_failure(res: Any) -> str:
    """A failing assertion and its counterexample, for humans."""
    lines = [f"assertion failed: {res.text} ({res.status})"]
    if res.message:
        lines.append(f"  {res.message}")
    f = res.failure
    if f is not None:
        lines.append(f"  counterexample ({f.kind}): trace <{', '.join(f.trace)}>")
        if f.event is not None:
            lines.append(f"    then event {f.event}")
        if f.refusal:
            lines.append(f"    refusing {{{', '.join(f.refusal)}}}")
        if f.divergence:
            lines.append("    then diverges")
        for span in f.spans[:3]:
            lines.append(f"    at {span}")
    return "\n".join(lines)


def _type_name(values: Sequence[str]) -> str:
    shown = ",".join(values[:6]) + (",..." if len(values) > 6 else "")
    return "{" + shown + "}"


def plan(
    path: str | Path,
    process: str,
    *,
    name: str | None = None,
    outputs: Iterable[str] = (),
    version: int = 1,
    force: bool = False,
    check: bool = True,
    max_states: int = DEFAULT_MAX_STATES,
    deployed_at: int = 0,
) -> Plan:
    from processors.csp.check import verify
    from processors.csp.check.compile import StateSpaceLimit, compile_process
    from processors.csp.semantics.frontend import load_file
    from processors.csp.semantics.values import render, sorted_values

    p = Path(path)
    source = p.read_text(encoding="utf-8")
    module = load_file(p)  # CspmError (syntax/type) propagates with its position
    if not module.has_name(process):
        raise DeployError(f"{p}: no process named {process!r}")
    outs = [o for o in outputs if o]
    unknown = [o for o in outs if o not in module.channels]
    if unknown:
        raise DeployError(
            f"--outputs names unknown channel(s) {', '.join(unknown)}; channels: {', '.join(sorted(module.channels))}"
        )
    results = tuple(verify.run_module(module, max_states)) if check else ()
    failed = tuple(r for r in results if r.status != "pass")
    try:
        lts = compile_process(module.process(process), max_states)
    except StateSpaceLimit as exc:
        raise DeployError(f"{process}: {exc}") from None
    # Only channels the system can actually communicate on get a role and a topic:
    # hidden (or unused) channels are internal to the process.
    visible = {ev.split(".", 1)[0] for ev in lts.events[2:]}
    internal = [o for o in outs if o not in visible]
    if internal:
        raise DeployError(
            f"--outputs names channel(s) {', '.join(internal)} that {process} never communicates on "
            f"(hidden or unused); visible channels: {', '.join(sorted(visible)) or 'none'}"
        )
    channels: dict[str, ChannelSpec] = {}
    for ch, fields in sorted(module.channels.items()):
        if ch not in visible:
            continue
        values = tuple(tuple(render(v) for v in sorted_values(set(f))) for f in fields)
        channels[ch] = ChannelSpec(
            ch, OUTPUT if ch in outs else INPUT, tuple(_type_name(v) for v in values), values
        )
    payloads: list[tuple[str, ...]] = []
    for i, ev in enumerate(lts.events):
        if i < 2:
            payloads.append(())
            continue
        try:
            _ch, vals = module.event_values(ev)
            payloads.append(tuple(render(v) for v in vals))
        except Exception:
            payloads.append(tuple(ev.split(".")[1:]))
    system = name or process
    dep = Deployment(
        system=system,
        version=version,
        process=process,
        lts=lts,
        channels=channels,
        payloads=tuple(payloads),
        file_name=p.name,
        source=source,
        source_hash=hashlib.sha256(source.encode()).hexdigest(),
        deployed_at=deployed_at,
        assertions=tuple((r.text, r.status) for r in results),
    )
    return Plan(dep, results, failed, force)
