"""Reading the head of a streamed vendor download: the first bytes of a model file, for
content detection and structural fingerprints, without the rest of it.

One function for every plugin that needs it (Incydr's file download, MLflow artifacts, Hugging
Face files): the download is read chunk by chunk up to `limit` and left at once (leaving the
`VendorClient.stream` block closes the connection, so nothing more is read), and a download
that breaks off is a retryable TransportError naming how far it got, redacted as the client's
errors are.
"""

from __future__ import annotations

import requests

from .errors import TransportError
from .http import BodyStream

CHUNK_BYTES = 1 << 20


def read_head(body: BodyStream, limit: int) -> bytes:
    """The first `limit` bytes of `body` (all of it when shorter)."""
    head = bytearray()
    try:
        for chunk in body.chunks(min(CHUNK_BYTES, max(limit, 1))):
            head += chunk[:limit - len(head)]
            if len(head) >= limit:
                break
    except requests.RequestException:
        client = body.client
        raise client._redacted(TransportError(
            f"the download broke off after {len(head)} bytes", vendor=client.vendor,
            operation=body.operation, status=body.response.status_code)) from None
    return bytes(head)
