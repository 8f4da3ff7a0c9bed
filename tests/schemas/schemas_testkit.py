"""Helpers shared by the schema tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_avsc(root: Path, raw: dict[str, Any]) -> None:
    (root / "avro" / f"{raw['name']}.avsc").write_text(json.dumps(raw), encoding="utf-8")


def record(name: str, fields: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "record", "name": name, "namespace": "io.enhancedcsp", "fields": fields}
