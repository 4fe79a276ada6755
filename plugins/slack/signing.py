"""Slack request signing (https://docs.slack.dev/authentication/verifying-requests-from-slack).

Slack signs every request it sends to an app: `X-Slack-Signature` is `v0=` followed by the hex
HMAC-SHA256, keyed with the app's signing secret, of `v0:{X-Slack-Request-Timestamp}:{raw body}`.
A request is genuine when the signature matches (compared in constant time) and the timestamp
is within five minutes of now, so a captured request cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

from crownguard.engine import AuthError

VERSION = "v0"
SIGNATURE_HEADER = "X-Slack-Signature"
TIMESTAMP_HEADER = "X-Slack-Request-Timestamp"
MAX_AGE_SECONDS = 300
OPERATION = "verify request signature"


def compute_signature(signing_secret: str, timestamp: str, body: bytes) -> str:
    """The `X-Slack-Signature` value Slack would send for this body and timestamp."""
    base = f"{VERSION}:{timestamp}:".encode() + body
    digest = hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()
    return f"{VERSION}={digest}"


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header by case-insensitive name (proxies and frameworks change the case)."""
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def verify_signature(signing_secret: str, headers: Mapping[str, str], body: bytes, *,
                     max_age: float = MAX_AGE_SECONDS, now: float | None = None) -> None:
    """Raise AuthError unless the request is signed by Slack and fresh."""
    signature = header(headers, SIGNATURE_HEADER)
    timestamp = header(headers, TIMESTAMP_HEADER)
    if not signature or not timestamp:
        raise AuthError(f"the request has no {SIGNATURE_HEADER} and "
                        f"{TIMESTAMP_HEADER} headers: it did not come from Slack",
                        vendor="slack", operation=OPERATION)
    if not timestamp.strip().isdigit():
        raise AuthError(f"{TIMESTAMP_HEADER} is not a Unix time", vendor="slack",
                        operation=OPERATION)
    age = (time.time() if now is None else now) - int(timestamp)
    if abs(age) > max_age:
        raise AuthError(f"the request timestamp is {abs(age):.0f} s "
                        f"{'old' if age > 0 else 'in the future'} (limit {max_age:.0f} s): "
                        "a stale or replayed request is rejected",
                        vendor="slack", operation=OPERATION)
    expected = compute_signature(signing_secret, timestamp.strip(), body)
    if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
        raise AuthError("the request signature does not match: it was not signed with this "
                        "app's signing secret", vendor="slack", operation=OPERATION)
