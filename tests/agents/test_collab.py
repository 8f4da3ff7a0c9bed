"""The collaboration protocol generator: every method, 2–5 agents, each protocol passes its checks."""

from __future__ import annotations

import pytest

from processors.agents import choice as ch
from processors.agents.collab import METHODS, CollabError, check, generate, longest_trace
from processors.csp.runtime.deploy import plan


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("n", [2, 3, 4, 5])
def test_generated_protocol_passes_its_checks(method: str, n: int) -> None:
    agents = [f"a{i}" for i in range(n)]
    proto = generate(method, agents, rounds=2)
    report = check(proto)
    assert report.ok, report.problems
    assert [s for _t, s in report.assertions] == ["pass", "pass"]
    assert report.terminates and 0 < report.longest <= proto.bound
    assert {b.agent for b in proto.bindings} == set(agents)


@pytest.mark.parametrize("method", METHODS)
def test_one_agent_owns_the_choices_at_every_stable_state(method: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    proto = generate(method, ["x", "y", "z"], rounds=2)
    path = tmp_path / "p.csp"
    path.write_text(proto.source)
    dep = plan(path, proto.process, outputs=proto.outputs).deployment
    for state in range(dep.lts.num_states):
        if not ch.is_stable(dep, state):
            continue
        owners = [b.agent for b in proto.bindings if ch.allowed_events(dep, state, b.events)]
        acceptable = dep.acceptable(state)
        assert len(owners) == (1 if acceptable else 0), (state, acceptable, owners)
        covered = {e for b in proto.bindings for e in ch.allowed_events(dep, state, b.events)}
        assert covered == set(acceptable)


def test_a_cyclic_protocol_fails_the_termination_check() -> None:
    proto = generate("round_robin", ["a", "b"], 1)
    looping = proto.__class__(**{**proto.__dict__, "source": proto.source.replace("done -> SKIP", "done -> COLLAB")})
    report = check(looping)
    assert not report.ok and not report.terminates and any("cycle" in p for p in report.problems)


def test_longest_trace() -> None:
    # 0 -> 1 -> 2, 0 -> 2
    assert longest_trace([0, 2, 3, 3], [1, 2, 2], 0) == (2, None)
    assert longest_trace([0, 1, 2], [1, 0], 0)[0] == -1


def test_bad_parameters() -> None:
    with pytest.raises(CollabError, match="unknown method"):
        generate("vote", ["a", "b"])
    with pytest.raises(CollabError, match="2 to 5 agents"):
        generate("leader", ["a"])
    with pytest.raises(CollabError, match="distinct"):
        generate("debate", ["a", "a"])


def test_cli_protocol_prints_the_checked_protocol() -> None:
    from typer.testing import CliRunner

    from gateway.cli import app

    r = CliRunner().invoke(app, ["agents", "protocol", "-a", "x", "-a", "y", "-a", "z", "--method", "debate"])
    assert r.exit_code == 0, r.output
    assert "channel verdict : Agents" in r.output and "-- pass: COLLAB :[deadlock free]" in r.output
    assert "-- terminates: True" in r.output
    bad = CliRunner().invoke(app, ["agents", "protocol", "-a", "x", "--method", "debate"])
    assert bad.exit_code == 2 and "2 to 5 agents" in bad.output
