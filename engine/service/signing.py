"""Signed event senders: `X-Crownguard-Signature: v1=<hex HMAC-SHA256 of "<ts>.<body>">`.

The timestamp (`X-Crownguard-Timestamp`, Unix seconds) is inside the signed text and must be
within MAX_SKEW_SECONDS of now: a captured request cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from .problems import ServiceProblem

TIMESTAMP_HEADER = "X-Crownguard-Timestamp"
SIGNATURE_HEADER = "X-Crownguard-Signature"
MAX_SKEW_SECONDS = 300


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """The signature header's value for `body` sent at `timestamp`."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"v1={digest.hexdigest()}"


def verify(secret: str, timestamp: str | None, signature: str | None, body: bytes,
           now: float | None = None) -> None:
    """Raise a 401 ServiceProblem unless `signature` signs `body` at a recent `timestamp`."""
    if not timestamp:
        raise ServiceProblem(401, "unsigned", f"missing {TIMESTAMP_HEADER} header",
                             TIMESTAMP_HEADER)
    if not signature:
        raise ServiceProblem(401, "unsigned", f"missing {SIGNATURE_HEADER} header",
                             SIGNATURE_HEADER)
    try:
        sent = int(timestamp.strip())
    except ValueError:
        raise ServiceProblem(401, "bad_timestamp", f"{TIMESTAMP_HEADER} must be Unix seconds",
                             TIMESTAMP_HEADER) from None
    skew = (time.time() if now is None else now) - sent
    if abs(skew) > MAX_SKEW_SECONDS:
        raise ServiceProblem(401, "stale_timestamp",
                             f"{TIMESTAMP_HEADER} is {abs(int(skew))} s from now (at most "
                             f"{MAX_SKEW_SECONDS} s allowed): check the sender's clock",
                             TIMESTAMP_HEADER)
    expected = sign(secret, timestamp.strip(), body)
    # Every v1 signature given is checked (a sender rotating secrets may send two).
    given = [part.strip() for part in signature.split(",") if part.strip().startswith("v1=")]
    if not any(hmac.compare_digest(expected.encode(), g.encode()) for g in given):
        raise ServiceProblem(401, "bad_signature", f"{SIGNATURE_HEADER} does not match the "
                             "body and timestamp signed with this source's secret",
                             SIGNATURE_HEADER)
