"""HubClient: the Hugging Face Hub API over the shared HTTP layer.

The Hub puts its error in `X-Error-Code` / `X-Error-Message` headers as well as a JSON
`{"error": "..."}` body, answers a repo it will not show (missing, or private to others) with
`RepoNotFound` even on a 401, signals rate limits with the IETF draft `RateLimit` header
(`"api";r=0;t=<seconds>`) next to `Retry-After`, and pages lists with `Link: rel="next"`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import requests

from crownguard.engine import (
    Auth,
    BadResponse,
    HeaderAuth,
    NotFoundError,
    VendorClient,
    VendorError,
)

from .connection import DEFAULT_BASE_URL

RATE_LIMIT_RESET = re.compile(r"(?:^|;)\s*t=(\d+(?:\.\d+)?)")
MAX_PAGES = 100
REPO_KINDS = {"model": "models", "dataset": "datasets", "space": "spaces"}


def repo_path(repo_type: str, repo_id: str, *rest: str) -> str:
    """`api/models/acme/fraud-llm/...`: the id's slash stays, each part is quoted."""
    parts = [quote(p, safe="") for p in repo_id.split("/")]
    return "/".join(["api", REPO_KINDS[repo_type], *parts, *rest])


def rate_limit_wait(headers: Any) -> float | None:
    """Seconds until the window resets, from `RateLimit: "api";r=0;t=42`."""
    match = RATE_LIMIT_RESET.search(headers.get("RateLimit", "") or "")
    return float(match.group(1)) if match else None


class HubClient(VendorClient):
    """The Hub's repo settings and gated-access endpoints."""

    vendor = "huggingface"
    connection_type = "huggingface"

    @property
    def base_url(self) -> str:
        return str(self.settings.get("base_url") or DEFAULT_BASE_URL).rstrip("/") + "/"

    def make_auth(self) -> Auth:
        return HeaderAuth(self.settings["token"], scheme="Bearer")

    def error_message(self, body: Any, response: requests.Response) -> str:
        message = response.headers.get("X-Error-Message")
        if not message and isinstance(body, dict) and isinstance(body.get("error"), str):
            message = body["error"]
        code = response.headers.get("X-Error-Code")
        if message:
            return f"{message} [{code}]" if code else message
        return super().error_message(body, response)

    def error_for(self, response: requests.Response, operation: str) -> VendorError:
        error = super().error_for(response, operation)
        if response.headers.get("X-Error-Code") == "RepoNotFound" and response.status_code in (
                401, 403):
            # The Hub hides repos a token may not see behind the same answer as missing ones:
            # not a credentials problem.
            message = self.error_message(error.body, response)
            return self._redacted(NotFoundError(
                f"{message} (missing, or private to another account)", vendor=self.vendor,
                operation=operation, status=response.status_code, request_id=error.request_id,
                body=error.body))
        if response.status_code == 429 and error.retry_after is None:
            error.retry_after = rate_limit_wait(response.headers)
        return error

    # repos --------------------------------------------------------------------------------------

    def repo_info(self, repo_type: str, repo_id: str, operation: str) -> dict[str, Any]:
        info = self.request_json("GET", repo_path(repo_type, repo_id), operation=operation)
        if not isinstance(info, dict) or "id" not in info:
            raise BadResponse("the repo answer has no 'id'", vendor=self.vendor,
                              operation=operation)
        return info

    def update_settings(self, repo_type: str, repo_id: str, settings: dict[str, Any],
                        operation: str) -> None:
        self.request("PUT", repo_path(repo_type, repo_id, "settings"), operation=operation,
                     json_body=settings)

    # gated access -------------------------------------------------------------------------------

    def access_requests(self, repo_type: str, repo_id: str, status: str,
                        operation: str) -> Iterator[dict[str, Any]]:
        """Every access request in `status`, following `Link: rel="next"` on the Hub's host."""
        url = repo_path(repo_type, repo_id, "user-access-request", status)
        for _ in range(MAX_PAGES):
            response = self.request("GET", url, operation=operation)
            page = self.parse_json(response, operation)
            if not isinstance(page, list):
                raise BadResponse("expected a JSON array of access requests", vendor=self.vendor,
                                  operation=operation, status=response.status_code)
            yield from (r for r in page if isinstance(r, dict))
            next_url = response.links.get("next", {}).get("url")
            if not next_url:
                return
            url = next_url
        raise BadResponse(f"more than {MAX_PAGES} pages of access requests", vendor=self.vendor,
                          operation=operation)

    def has_accepted(self, repo_type: str, repo_id: str, user: str, operation: str) -> bool:
        for item in self.access_requests(repo_type, repo_id, "accepted", operation):
            if (item.get("user") or {}).get("user") == user:
                return True
        return False

    def handle_access(self, repo_type: str, repo_id: str, user: str, status: str,
                      operation: str, reason: str | None = None) -> None:
        body: dict[str, Any] = {"user": user, "status": status}
        if reason and status == "rejected":
            body["rejectionReason"] = reason
        self.request("POST", repo_path(repo_type, repo_id, "user-access-request", "handle"),
                     operation=operation, json_body=body)
