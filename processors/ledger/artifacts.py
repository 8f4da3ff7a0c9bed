"""Compiled contracts (ABI + bytecode) committed beside their Solidity sources."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

ARTIFACT_DIR = Path(__file__).resolve().parent / "contracts" / "artifacts"


class UnknownContractError(LookupError):
    pass


@dataclass(frozen=True)
class Artifact:
    name: str
    abi: list[dict[str, Any]]
    bytecode: str


def contract_names() -> list[str]:
    return sorted(p.stem for p in ARTIFACT_DIR.glob("*.json"))


@cache
def artifact(name: str) -> Artifact:
    path = ARTIFACT_DIR / f"{name}.json"
    if not path.is_file():
        raise UnknownContractError(f"unknown contract {name!r}: use one of {contract_names()}")
    raw = json.loads(path.read_text())
    return Artifact(name=name, abi=raw["abi"], bytecode=raw["bytecode"])
