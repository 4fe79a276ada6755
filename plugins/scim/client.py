"""ScimClient: any SCIM 2.0 service provider (RFC 7643/7644) with a bearer token.

SCIM services differ in small ways a client must absorb: PATCH answers 200 with the resource
or 204 with nothing; some reject `path` in PATCH operations and want
`{"op": "replace", "value": {"active": false}}`; versions (ETags) are optional; errors are
`{"schemas": [...Error], "status": "400", "scimType": ..., "detail": ...}` with the status
as a string.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import requests

from crownguard.engine import (
    Auth,
    BadResponse,
    ConflictError,
    HeaderAuth,
    NotFoundError,
    VendorClient,
    VendorError,
)

SCIM_JSON = "application/scim+json"
ACCEPT = "application/scim+json, application/json;q=0.9"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
PAGE_SIZE = 100
MAX_PAGES = 50


def filter_literal(value: str) -> str:
    """A double-quoted SCIM filter string (RFC 7644 §3.4.2.2, JSON string escaping)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def patch_body(active: bool, style: str) -> dict[str, Any]:
    """An RFC 7644 PatchOp setting `active`, with or without `path`."""
    operation: dict[str, Any] = ({"op": "replace", "path": "active", "value": active}
                                 if style == "path" else
                                 {"op": "replace", "value": {"active": active}})
    return {"schemas": [PATCH_OP], "Operations": [operation]}


class ScimClient(VendorClient):
    """SCIM 2.0 client: Users look-ups by id, userName or e-mail, and `active` changes."""

    vendor = "scim"
    connection_type = "scim"

    def make_auth(self) -> Auth:
        return HeaderAuth(self.settings["token"], scheme="Bearer")

    def error_message(self, body: Any, response: requests.Response) -> str:
        if isinstance(body, dict) and isinstance(body.get("detail"), str):
            kind = body.get("scimType")
            return f"{body['detail']} (scimType {kind})" if kind else body["detail"]
        return super().error_message(body, response)

    def scim(self, method: str, path: str, *, operation: str, **kwargs: Any) -> requests.Response:
        headers = {"Accept": ACCEPT, **kwargs.pop("headers", {})}
        return self.request(method, path, operation=operation, headers=headers, **kwargs)

    # look-ups ------------------------------------------------------------------------------------

    def list_users(self, scim_filter: str, operation: str) -> Iterator[dict[str, Any]]:
        """Every user matching a filter, paging with startIndex/count (RFC 7644 §3.4.2.4)."""
        start = 1
        for _ in range(MAX_PAGES):
            page = self.parse_json(self.scim("GET", "Users", operation=operation, params={
                "filter": scim_filter, "startIndex": start, "count": PAGE_SIZE}), operation)
            if not isinstance(page, dict):
                raise BadResponse("expected a ListResponse", vendor=self.vendor,
                                  operation=operation)
            resources = [r for r in page.get("Resources") or [] if isinstance(r, dict)]
            yield from resources
            total = int(page.get("totalResults") or 0)
            start += len(resources)
            if not resources or start > total:
                return
        raise BadResponse(f"more than {MAX_PAGES} pages; narrow the look-up", vendor=self.vendor,
                          operation=operation)

    def get_user(self, user_id: str, operation: str) -> tuple[dict[str, Any], str | None]:
        """A user by id and its version (the ETag header, else meta.version)."""
        response = self.scim("GET", f"Users/{quote(user_id, safe='')}", operation=operation)
        found = self.parse_json(response, operation)
        if not isinstance(found, dict) or not found.get("id"):
            raise BadResponse("expected a User resource with an id", vendor=self.vendor,
                              operation=operation, status=response.status_code)
        return found, response.headers.get("ETag") or version_of(found)

    def find_user(self, user: str, operation: str) -> tuple[dict[str, Any], str | None]:
        """A user by id, else by userName, else (for an address) by e-mail."""
        if "@" not in user:
            try:
                return self.get_user(user, operation)
            except (NotFoundError, ConflictError):  # some services answer 400 for a non-id
                pass
        matches = list(self.list_users(f"userName eq {filter_literal(user)}", operation))
        if not matches and "@" in user:
            try:
                matches = list(self.list_users(f"emails.value eq {filter_literal(user)}",
                                               operation))
            except ConflictError:  # the service cannot filter on e-mails
                matches = []
        if len(matches) == 1:
            return matches[0], version_of(matches[0])
        if not matches:
            raise NotFoundError(f"no SCIM user with id, userName or e-mail '{user}'",
                                vendor=self.vendor, operation=operation, status=404)
        ids = ", ".join(str(m.get("id")) for m in matches[:5])
        raise ConflictError(f"{len(matches)} SCIM users match '{user}' ({ids}); give the "
                            "user's id", vendor=self.vendor, operation=operation)

    # changes -------------------------------------------------------------------------------------

    def set_active(self, user_id: str, active: bool, version: str | None,
                   operation: str) -> dict[str, Any] | None:
        """PATCH `active`; returns the resource when the service sends it back (200)."""
        headers = {"Content-Type": SCIM_JSON}
        if version:
            headers["If-Match"] = version
        style = str(self.settings.get("patch_style") or "path")
        response = self.scim("PATCH", f"Users/{quote(user_id, safe='')}", operation=operation,
                             json_body=patch_body(active, style), headers=headers)
        if response.status_code == 204 or not response.content:
            return None
        resource = self.parse_json(response, operation)
        return resource if isinstance(resource, dict) else None


def version_of(resource: dict[str, Any]) -> str | None:
    meta = resource.get("meta")
    version = meta.get("version") if isinstance(meta, dict) else None
    return str(version) if version else None


def is_stale(error: VendorError) -> bool:
    """412 Precondition Failed: the version sent in If-Match is no longer current."""
    return error.status == 412
