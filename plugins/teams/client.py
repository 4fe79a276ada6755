"""Posting to a Teams channel through a webhook URL.

Two kinds of URL exist, and they report failure differently:

- A Workflows (Power Automate) webhook, `.../workflows/<id>/triggers/manual/paths/invoke?...&sig=`,
  the replacement for Office 365 connectors. It answers 202 Accepted and runs the flow later;
  errors are Logic Apps JSON `{"error": {"code", "message"}}` with a real status (401 for a bad
  `sig`, 404 for an unknown workflow, 429 with Retry-After).
- A classic incoming webhook (`.../webhookb2/.../IncomingWebhook/...`, being retired). It answers
  200 with the body `1` on success and, for errors it considers retryable, *also* 200 with the
  text "Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP error
  429 ..." (MicrosoftDocs/msteams-docs#7425, #9064). That text is read and classified here.

The URL is the credential (the `sig` parameter, or the connector path itself): it is a secret of
the connection and never appears in a message.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from crownguard.engine import (
    ActionContext,
    BadResponse,
    ConflictError,
    Connection,
    RateLimited,
    ServerError,
    VendorClient,
    VendorError,
)

_CONNECTOR_PATH = re.compile(r"/(webhookb2|webhook)/|/IncomingWebhook/")
_CONNECTOR_FAILURE = re.compile(r"returned HTTP error (\d{3})")


class TeamsClient(VendorClient):
    """One Teams webhook (a connection of type `teams`)."""

    vendor = "teams"
    connection_type = "teams"
    request_id_headers = ("x-ms-workflow-run-id", "x-ms-request-id", "request-id")

    def __init__(self, connection: Connection, ctx: ActionContext | None = None):
        super().__init__(connection, ctx)
        # The whole URL is a secret already; the signature alone must be masked too.
        for sig in parse_qs(urlsplit(self.webhook_url).query).get("sig", []):
            self.redactor.add(sig)

    @property
    def webhook_url(self) -> str:
        return self.connection.secret("webhook_url")

    @property
    def base_url(self) -> str:
        return self.webhook_url

    def url(self, path: str) -> str:
        return self.webhook_url

    @property
    def kind(self) -> str:
        """"connector" for a classic incoming webhook, "workflows" otherwise."""
        return "connector" if _CONNECTOR_PATH.search(urlsplit(self.webhook_url).path) \
            else "workflows"

    @property
    def operation(self) -> str:
        return ("post to incoming webhook" if self.kind == "connector"
                else "post to Workflows webhook")

    def post(self, payload: dict[str, Any]) -> int:
        """POST the message; the HTTP status when Teams accepted it."""
        response = self.request("POST", "", operation=self.operation, json_body=payload)
        if self.kind == "connector":
            self._check_connector_answer(response)
        return response.status_code

    def _check_connector_answer(self, response: requests.Response) -> None:
        text = response.text.strip()
        if text.isdigit():
            return
        found = _CONNECTOR_FAILURE.search(text)
        if found is None:
            raise BadResponse(f"unexpected answer from the incoming webhook: {text[:120]!r}",
                              vendor=self.vendor, operation=self.operation,
                              status=response.status_code)
        inner = int(found.group(1))
        cls: type[VendorError] = (RateLimited if inner == 429 else
                                  ServerError if inner >= 500 else ConflictError)
        message = self.redactor.redact(
            f"Teams refused the message with HTTP {inner} behind a 200 answer"
            + (" (the message is too large: the limit is about 28 KB)" if inner == 413 else ""))
        raise cls(message, vendor=self.vendor, operation=self.operation,
                  status=response.status_code)
