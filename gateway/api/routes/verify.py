"""POST /check and /refine: the JSON document of ``csp check`` / ``csp refine --format json`` (docs/cli-json.md).

The checker runs in a child process (``csp check --format json``) on the posted script, with
a time limit, so a heavy check never stalls the API and the document is exactly the CLI's.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from gateway.api.problems import Problem
from gateway.api.security import Principal, developer

router = APIRouter(tags=["verification"])
Developer = Annotated[Principal, Depends(developer)]
ROOT = Path(__file__).resolve().parents[3]
MAX_SOURCE = 512_000


class Check(BaseModel):
    source: str = Field(min_length=1, max_length=MAX_SOURCE, description="CSPm script")
    assert_: str | None = Field(default=None, alias="assert", max_length=100,
                                description='"deadlock free", "divergence free" or "deterministic"')  # fmt: skip
    process: str | None = Field(default=None, max_length=500)
    model: Literal["F", "FD"] | None = None
    max_states: int | None = Field(default=None, ge=1, le=10_000_000)
    timeout_s: float = Field(default=120.0, gt=0, le=600)


class Refine(BaseModel):
    spec_source: str = Field(min_length=1, max_length=MAX_SOURCE)
    impl_source: str | None = Field(default=None, max_length=MAX_SOURCE, description="default: spec_source")
    model: Literal["T", "F", "FD"]
    spec: str = Field(default="SPEC", max_length=500)
    impl: str = Field(default="IMPL", max_length=500)
    max_states: int | None = Field(default=None, ge=1, le=10_000_000)
    timeout_s: float = Field(default=120.0, gt=0, le=600)


def _run(args: list[str], timeout_s: float) -> dict[str, Any]:
    try:
        out = subprocess.run([sys.executable, "-m", "gateway.cli", *args, "--format", "json"], cwd=ROOT,
                             capture_output=True, text=True, timeout=timeout_s)  # fmt: skip
    except subprocess.TimeoutExpired:
        raise Problem(504, "Gateway Timeout", f"the check did not finish within {timeout_s:g}s",
                      kind="check-timeout") from None  # fmt: skip
    try:
        doc: dict[str, Any] = json.loads(out.stdout)
    except json.JSONDecodeError:
        raise Problem(500, "Internal Server Error", f"the checker failed: {out.stderr.strip()[-500:]}",
                      kind="internal") from None  # fmt: skip
    return doc


@router.post("/check", summary="Check assertions: the JSON of `csp check --format json` (developer)")
def check(body: Check, _p: Developer) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="csp-check-") as tmp:
        path = Path(tmp) / "script.csp"
        path.write_text(body.source)
        args = ["check", str(path)]
        if body.assert_:
            args += ["--assert", body.assert_]
        if body.process:
            args += ["--process", body.process]
        if body.model:
            args += ["--model", body.model]
        if body.max_states:
            args += ["--max-states", str(body.max_states)]
        return _run(args, body.timeout_s)


@router.post("/refine", summary="Refinement SPEC [M= IMPL: the JSON of `csp refine --format json` (developer)")
def refine(body: Refine, _p: Developer) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="csp-refine-") as tmp:
        spec = Path(tmp) / "spec.csp"
        spec.write_text(body.spec_source)
        impl = Path(tmp) / "impl.csp"
        impl.write_text(body.impl_source if body.impl_source is not None else body.spec_source)
        args = ["refine", str(spec), str(impl), "--model", body.model, "--spec", body.spec, "--impl", body.impl]
        if body.max_states:
            args += ["--max-states", str(body.max_states)]
        return _run(args, body.timeout_s)
