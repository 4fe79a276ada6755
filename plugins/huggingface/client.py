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
from urllib.parse import quote, urljoin, urlsplit

import requests

from crownguard.engine import (
    Auth,
    BadResponse,
    HeaderAuth,
    NotFoundError,
    VendorClient,
    VendorError,
    read_head,
)

from .connection import DEFAULT_BASE_URL

RATE_LIMIT_RESET = re.compile(r"(?:^|;)\s*t=(\d+(?:\.\d+)?)")
MAX_PAGES = 100
MAX_LISTING_PAGES = 10_000
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

    def paged(self, url: str, operation: str, params: dict[str, Any] | None = None,
              what: str = "entries") -> Iterator[dict[str, Any]]:
        """Every item of a listing the Hub pages with `Link: rel="next"`."""
        for _ in range(MAX_LISTING_PAGES):
            response = self.request("GET", url, operation=operation, params=params)
            page = self.parse_json(response, operation)
            if not isinstance(page, list):
                raise BadResponse(f"expected a JSON array of {what}", vendor=self.vendor,
                                  operation=operation, status=response.status_code)
            yield from (r for r in page if isinstance(r, dict))
            next_url = response.links.get("next", {}).get("url")
            if not next_url:
                return
            url, params = next_url, None  # the next link carries the query
        raise BadResponse(f"more than {MAX_LISTING_PAGES} pages of {what}", vendor=self.vendor,
                          operation=operation)

    def list_models(self, author: str, operation: str) -> Iterator[dict[str, Any]]:
        """`GET /api/models?author=ORG&full=true`: every model repo of an account the token
        may see (an organisation's private ones with a member's token), with `sha`."""
        return self.paged("api/models", operation, {"author": author, "full": "true"},
                          "models")

    def tree(self, repo_id: str, revision: str, operation: str) -> Iterator[dict[str, Any]]:
        """`GET /api/models/{repo}/tree/{revision}?recursive=true`: every file, LFS files
        with `lfs.oid` (their SHA-256)."""
        return self.paged(repo_path("model", repo_id, "tree", quote(revision, safe="")),
                          operation, {"recursive": "true"}, "tree entries")

    def read_model_file_head(self, repo_id: str, revision: str, path: str, limit: int,
                             operation: str) -> bytes:
        """The first `limit` bytes of a repo file: `GET /{repo}/resolve/{revision}/{path}`
        with `Range: bytes=0-(limit-1)`, streamed and cut at `limit` should the server send
        more. The Hub redirects LFS files to its storage host: the redirect is followed (without
        the token: the URL is signed) when the connection's `lfs_url` names that host."""
        parts = [quote(p, safe="") for p in repo_id.split("/")]
        url = self.url("/".join([*parts, "resolve", quote(revision, safe=""),
                                 quote(path, safe="/")]))
        headers = {"Accept": "*/*", "Range": f"bytes=0-{max(limit, 1) - 1}"}
        self.auth.apply(headers, self)
        for _hop in range(3):
            with self.stream("GET", url, operation=operation, headers=headers) as body:
                response = body.response
                if response.status_code in (301, 302, 303, 307, 308) and \
                        response.headers.get("Location"):
                    url = urljoin(url, response.headers["Location"])
                    if urlsplit(url).netloc != urlsplit(self.base_url).netloc:
                        headers = {k: v for k, v in headers.items() if k != "Authorization"}
                    continue
                if not 200 <= response.status_code < 300:
                    raise self.error_for(response, operation)
                return read_head(body, limit)
        raise BadResponse(f"too many redirects for {path}", vendor=self.vendor,
                          operation=operation)

    def has_accepted(self, repo_type: str, repo_id: str, user: str, operation: str) -> bool:
        for item in self.access_requests(repo_type, repo_id, "accepted", operation):
            if (item.get("user") or {}).get("user") == user:
                return True
        return False

    def grant_access(self, repo_type: str, repo_id: str, user: str, operation: str) -> None:
        """`POST .../user-access-request/grant`: access for a user who never asked."""
        self.request("POST", repo_path(repo_type, repo_id, "user-access-request", "grant"),
                     operation=operation, json_body={"user": user})

    def handle_access(self, repo_type: str, repo_id: str, user: str, status: str,
                      operation: str, reason: str | None = None) -> None:
        body: dict[str, Any] = {"user": user, "status": status}
        if reason and status == "rejected":
            body["rejectionReason"] = reason
        self.request("POST", repo_path(repo_type, repo_id, "user-access-request", "handle"),
                     operation=operation, json_body=body)
