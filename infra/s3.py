"""A minimal AWS SigV4 client for the two S3 calls the stack needs: probe and create a bucket.

Kept dependency-free (stdlib only) so the embedded stack needs no AWS SDK.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
import http.client
from dataclasses import dataclass
from urllib.parse import urlsplit

_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


@dataclass(frozen=True)
class S3Credentials:
    access_key: str
    secret_key: str
    region: str = "us-east-1"


def _sign(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def signed_headers(
    method: str,
    endpoint: str,
    path: str,
    creds: S3Credentials,
    body: bytes = b"",
    now: _dt.datetime | None = None,
) -> dict[str, str]:
    """SigV4 headers for a request to ``endpoint`` + ``path`` (no query string)."""
    payload_hash = hashlib.sha256(body).hexdigest() if body else _EMPTY_SHA256
    host = urlsplit(endpoint).netloc
    moment = now or _dt.datetime.now(_dt.UTC)
    amz_date = moment.strftime("%Y%m%dT%H%M%SZ")
    day = moment.strftime("%Y%m%d")
    canonical_headers = f"host:{host}\nx-amz-content-sha256:{payload_hash}\nx-amz-date:{amz_date}\n"
    signed = "host;x-amz-content-sha256;x-amz-date"
    canonical_request = "\n".join([method, path, "", canonical_headers, signed, payload_hash])
    scope = f"{day}/{creds.region}/s3/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical_request.encode()).hexdigest()]
    )
    key = _sign(("AWS4" + creds.secret_key).encode(), day)
    for part in (creds.region, "s3", "aws4_request"):
        key = _sign(key, part)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return {
        "Host": host,
        "x-amz-date": amz_date,
        "x-amz-content-sha256": payload_hash,
        "Authorization": (
            f"AWS4-HMAC-SHA256 Credential={creds.access_key}/{scope}, "
            f"SignedHeaders={signed}, Signature={signature}"
        ),
    }


def _request(
    method: str, endpoint: str, path: str, creds: S3Credentials, timeout_s: float, body: bytes = b""
) -> tuple[int, bytes]:
    parts = urlsplit(endpoint)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=timeout_s)
    try:
        headers = signed_headers(method, endpoint, path, creds, body)
        conn.request(method, path, body=body or None, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def bucket_exists(endpoint: str, bucket: str, creds: S3Credentials, timeout_s: float = 5) -> bool:
    """True if HEAD bucket answers 200; raises OSError if the endpoint is unreachable."""
    return _request("HEAD", endpoint, f"/{bucket}", creds, timeout_s)[0] == 200


def ensure_bucket(endpoint: str, bucket: str, creds: S3Credentials, timeout_s: float = 5) -> bool:
    """Create ``bucket`` unless it exists. Returns True if it was created."""
    if bucket_exists(endpoint, bucket, creds, timeout_s):
        return False
    status = _request("PUT", endpoint, f"/{bucket}", creds, timeout_s)[0]
    if status not in (200, 409):
        raise RuntimeError(f"S3 CreateBucket {bucket!r} at {endpoint} failed with HTTP {status}")
    return status == 200


def put_object(endpoint: str, bucket: str, key: str, body: bytes, creds: S3Credentials,
               timeout_s: float = 5) -> None:
    status, text = _request("PUT", endpoint, f"/{bucket}/{key}", creds, timeout_s, body)
    if status != 200:
        raise RuntimeError(f"S3 PutObject {bucket}/{key} at {endpoint}: HTTP {status} {text[:200]!r}")


def get_object(endpoint: str, bucket: str, key: str, creds: S3Credentials, timeout_s: float = 5) -> bytes:
    status, body = _request("GET", endpoint, f"/{bucket}/{key}", creds, timeout_s)
    if status != 200:
        raise RuntimeError(f"S3 GetObject {bucket}/{key} at {endpoint}: HTTP {status} {body[:200]!r}")
    return body
