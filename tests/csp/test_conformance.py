"""Conformance counts must not fall below the recorded floor (tests/csp/conformance_floor.json).

The cspx problems run through the CLI in-process (file arguments made
absolute); ``bench/conformance.py`` runs them as subprocesses for the report.
Raise the floor when more problems pass: ``python tests/csp/test_conformance.py --update``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
FLOOR = Path(__file__).with_name("conformance_floor.json")
sys.path.append(str(ROOT / "bench"))  # appended: bench/gateway.py must not shadow the gateway package

import conformance_cspx as cspx  # noqa: E402

pytestmark = pytest.mark.skipif(not cspx.PROBLEMS.is_dir(), reason="cspx corpus not present")


def _floor() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(FLOOR.read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def outcomes() -> list[cspx.Outcome]:
    # generous time scale: the suite shares the machine with other tests
    got: list[cspx.Outcome] = cspx.run_all(timeout_scale=20.0, in_process=True)
    return got


def test_cspx_count_does_not_fall(outcomes: list[cspx.Outcome]) -> None:
    s = cspx.summary(outcomes)
    assert s["total"] == 33
    assert s["matched"] >= _floor()["cspx"]["matched"], s["failed"]


def test_every_recorded_cspx_problem_still_matches(outcomes: list[cspx.Outcome]) -> None:
    ok = {o.problem for o in outcomes if o.ok}
    lost = sorted(set(_floor()["cspx"]["problems"]) - ok)
    details = {o.problem: o.errors for o in outcomes if o.problem in lost}
    assert not lost, details


def test_checker_problems_all_match(outcomes: list[cspx.Outcome]) -> None:
    """Every problem that exercises the checker (P1xx-P9xx) matches, overrides included."""
    bad = {o.problem: o.errors for o in outcomes if not o.problem.startswith("P0") and not o.ok}
    assert not bad


def test_libcspm_counts_do_not_fall() -> None:
    lib_root = cspx.PROBLEMS.parent.parent / "libcspm" / "tests"
    if not lib_root.is_dir():
        pytest.skip("libcspm corpus not present")
    import conformance_libcspm

    counts = conformance_libcspm.run_libcspm(lib_root)
    for key, floor in _floor()["libcspm"].items():
        got = counts[key]
        field = "accepted" if "accepted" in floor else "rejected"
        assert got[field] >= floor[field], (key, got, floor)


def test_libcspm_should_pass_rejections_are_all_unsupported() -> None:
    """A should_pass file is accepted or rejected with an explicit "unsupported: ..." error."""
    lib_root = cspx.PROBLEMS.parent.parent / "libcspm" / "tests"
    if not lib_root.is_dir():
        pytest.skip("libcspm corpus not present")
    import conformance_libcspm

    counts = conformance_libcspm.run_libcspm(lib_root, details=True)
    for key, got in counts.items():
        if key.endswith("should_pass"):
            assert got["accepted"] + got["unsupported"] == got["total"], (key, got["mismatches"])


def _update() -> None:
    outs = cspx.run_all(timeout_scale=20.0, in_process=True)
    import conformance_libcspm

    lib = conformance_libcspm.run_libcspm(cspx.PROBLEMS.parent.parent / "libcspm" / "tests")
    slack = 0  # the floor is the measured count
    floor = {
        "_note": "floor for tests/csp/test_conformance.py (the measured counts); "
        "regenerate with: python tests/csp/test_conformance.py --update",
        "cspx": {"matched": sum(o.ok for o in outs), "problems": sorted(o.problem for o in outs if o.ok)},
        "libcspm": {
            k: {
                f: (max(0, v[f] - slack) if f != "total" else v[f])
                for f in ("accepted", "rejected", "total")
                if f in v
            }
            for k, v in lib.items()
        },
    }
    FLOOR.write_text(json.dumps(floor, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(floor, indent=2))


if __name__ == "__main__" and "--update" in sys.argv:
    _update()
