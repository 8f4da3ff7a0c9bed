"""Canonical text and fingerprint of a raw Avro schema (key order and whitespace do not matter)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any


def canonical_json(schema: Mapping[str, Any]) -> str:
    """Compact JSON with sorted keys: equal schemas give equal text."""
    return json.dumps(schema, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def fingerprint(schema: Mapping[str, Any]) -> str:
    """sha256 hex of :func:`canonical_json`; identifies one schema version."""
    return hashlib.sha256(canonical_json(schema).encode("utf-8")).hexdigest()
