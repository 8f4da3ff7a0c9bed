"""The byte form of a compiled LTS stored in ``CspRegistryRecord.compiled``.

Layout (pure, no I/O): ``b"CSPLTS1\\n"`` + 4-byte big-endian length of a JSON
header + the header + zlib-compressed array bytes. The header holds the event
names, the initial state, the payload values of each event, free-form
metadata (the runtime keeps the channels' field values there) and the array
dtypes/lengths; the arrays are ``offsets``, ``labels``, ``targets`` in the
narrowest unsigned integer type that fits.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

import numpy as np

from processors.csp.semantics.lts import LTS

MAGIC = b"CSPLTS1\n"
# bounds on what loads() accepts (a compiled LTS of 10M transitions is ~120 MB of arrays)
MAX_HEADER_BYTES = 64 * 1024 * 1024
MAX_ARRAY_BYTES = 1024 * 1024 * 1024


class CompiledFormatError(ValueError):
    """The bytes are not a compiled LTS of this format."""


def _narrow(arr: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    top = int(arr.max()) if len(arr) else 0
    for dt in (np.uint8, np.uint16, np.uint32):
        if top <= np.iinfo(dt).max:
            return arr.astype(dt)
    return arr.astype(np.int64)


def dumps(lts: LTS, payloads: tuple[tuple[str, ...], ...] = (), meta: dict[str, Any] | None = None) -> bytes:
    arrays = [
        ("offsets", _narrow(lts.offsets)),
        ("labels", _narrow(lts.labels)),
        ("targets", _narrow(lts.targets)),
    ]
    header = {
        "events": list(lts.events),
        "initial": lts.initial,
        "payloads": [list(p) for p in payloads],
        "arrays": [[name, str(a.dtype), len(a)] for name, a in arrays],
        "meta": meta or {},
    }
    hbytes = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode()
    body = zlib.compress(b"".join(a.tobytes() for _, a in arrays), 6)
    return MAGIC + len(hbytes).to_bytes(4, "big") + hbytes + body


def loads(data: bytes) -> tuple[LTS, tuple[tuple[str, ...], ...], dict[str, Any]]:
    """(LTS, payloads, meta) from :func:`dumps` bytes; raises :class:`CompiledFormatError`."""
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 4:
        raise CompiledFormatError("not a compiled LTS (bad magic)")
    pos = len(MAGIC)
    hlen = int.from_bytes(data[pos : pos + 4], "big")
    pos += 4
    if hlen > min(MAX_HEADER_BYTES, len(data) - pos):
        raise CompiledFormatError(f"corrupt compiled LTS: header length {hlen} past the data")
    try:
        header = json.loads(data[pos : pos + hlen])
        expected = sum(np.dtype(dtype).itemsize * int(n) for _name, dtype, n in header["arrays"])
        if not 0 <= expected <= MAX_ARRAY_BYTES:
            raise ValueError(f"arrays of {expected} bytes (limit {MAX_ARRAY_BYTES})")
        inflater = zlib.decompressobj()
        raw = inflater.decompress(data[pos + hlen :], expected + 1)  # bounded: never more than announced
        if len(raw) != expected or inflater.unconsumed_tail:
            raise ValueError(f"compressed arrays do not hold the {expected} bytes the header announces")
    except (ValueError, TypeError, KeyError, zlib.error) as exc:
        raise CompiledFormatError(f"corrupt compiled LTS: {exc}") from None
    arrays: dict[str, np.ndarray[Any, Any]] = {}
    off = 0
    for name, dtype, n in header["arrays"]:
        dt = np.dtype(dtype)
        size = dt.itemsize * int(n)
        arrays[name] = np.frombuffer(raw, dtype=dt, count=int(n), offset=off).astype(np.int64)
        off += size
    lts = LTS(
        tuple(header["events"]),
        int(header["initial"]),
        arrays["offsets"],
        arrays["labels"],
        arrays["targets"],
    )
    payloads = tuple(tuple(p) for p in header.get("payloads", []))
    meta = header.get("meta") or {}
    return lts, payloads, dict(meta)
