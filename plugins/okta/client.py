"""OktaClient: the Okta Management API over the shared HTTP layer.

Okta authenticates with an `SSWS` API token, reports errors as
`{errorCode, errorSummary, errorCauses, errorId}`, pages with `Link: <...>; rel="next"` and
signals rate limits with `X-Rate-Limit-Reset` (epoch seconds) rather than `Retry-After`; this
module turns each of those into what the engine expects.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote

import requests

from crownguard.engine import (
    Auth,
    AuthError,
    BadResponse,
    ConflictError,
    HeaderAuth,
    NotFoundError,
    PrivateKeyJWT,
    VendorClient,
    VendorError,
    assertion_signer,
)

from .connection import DEFAULT_SCOPES

# Okta object ids are 20 characters: a 3-character prefix ("00u" users, "00g" groups) and 17
# more; anything else given as a group is a group name.
OKTA_ID = re.compile(r"^[0-9A-Za-z]{20}$")
MAX_PAGES = 50  # a look-up that needs more than 50 pages is not a look-up
MANAGED_GROUP_TYPE = "OKTA_GROUP"


def search_literal(value: str) -> str:
    """A double-quoted string for Okta's `search` expressions."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def path_segment(value: str) -> str:
    """A user id or login as one URL path segment (Okta wants logins URL-encoded)."""
    return quote(value, safe="@")


class OktaClient(VendorClient):
    """Okta Management API client: auth, error bodies, rate limits, paging, look-ups."""

    vendor = "okta"
    request_id_headers = ("X-Okta-Request-Id", "X-Request-Id")
    connection_type = "okta"

    def make_auth(self) -> Auth:
        if self.settings.get("private_key") is None:
            return HeaderAuth(self.settings["token"], scheme="SSWS")
        # A service app: client credentials with a private-key JWT, then `Bearer` tokens.
        # Okta may also bind tokens with DPoP; that is an app setting to leave off here.
        client_id = str(self.settings["client_id"])
        token_url = str(self.settings.get("token_url") or f"{self.base_url}oauth2/v1/token")
        return PrivateKeyJWT(token_url, client_id, assertion_signer(self.connection, client_id),
                             scope=str(self.settings.get("scopes") or DEFAULT_SCOPES))

    def error_message(self, body: Any, response: requests.Response) -> str:
        if isinstance(body, dict) and body.get("errorSummary"):
            message = str(body["errorSummary"])
            causes = [str(c.get("errorSummary")) for c in body.get("errorCauses") or []
                      if isinstance(c, dict) and c.get("errorSummary")]
            if causes:
                message += ": " + "; ".join(causes)
            code = body.get("errorCode")
            return f"{message} [{code}]" if code else message
        return super().error_message(body, response)

    def error_for(self, response: requests.Response, operation: str) -> VendorError:
        error = super().error_for(response, operation)
        if response.status_code == 429 and error.retry_after is None:
            error.retry_after = rate_limit_wait(response.headers)
        return error

    # paging -------------------------------------------------------------------------------------

    def paged(self, path: str, *, operation: str,
              params: Mapping[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Every item of a list, following `Link: rel="next"` on the org's own host."""
        url: str | None = path
        query: Mapping[str, Any] | None = params
        for _ in range(MAX_PAGES):
            assert url is not None
            response = self.request("GET", url, operation=operation, params=query)
            items = self.parse_json(response, operation)
            if not isinstance(items, list):
                raise BadResponse("expected a JSON array", vendor=self.vendor,
                                  operation=operation, status=response.status_code)
            yield from (i for i in items if isinstance(i, dict))
            url = response.links.get("next", {}).get("url")
            query = None  # the next link carries the query
            if not url:
                return
        raise BadResponse(f"more than {MAX_PAGES} pages; narrow the look-up",
                          vendor=self.vendor, operation=operation)

    # users --------------------------------------------------------------------------------------

    def find_user(self, user: str, operation: str = "get user") -> dict[str, Any]:
        """A user by id, login or login shortname, else by primary e-mail.

        Okta's `GET /users/{id}` accepts ids and logins; an e-mail that is not the login needs
        a search, and a search can match several users (a rehire keeps the old, deprovisioned
        account): the one that is not DEPROVISIONED wins, otherwise the match is ambiguous.
        """
        if "/" not in user:  # Okta cannot fetch logins with a "/" by path
            try:
                found = self.request_json("GET", f"/api/v1/users/{path_segment(user)}",
                                          operation=operation)
            except NotFoundError:
                found = None
            if isinstance(found, dict) and found.get("id"):
                return found
            if found is not None:
                raise BadResponse("the user record has no id", vendor=self.vendor,
                                  operation=operation)
        if "@" not in user:
            raise NotFoundError(f"no Okta user with id or login '{user}'", vendor=self.vendor,
                                operation=operation, status=404)
        matches = list(self.paged("/api/v1/users", operation=operation,
                                  params={"search": f"profile.email eq {search_literal(user)}"}))
        live = [m for m in matches if m.get("status") != "DEPROVISIONED"]
        if len(matches) == 1:
            return matches[0]
        if len(live) == 1:
            return live[0]
        if not matches:
            raise NotFoundError(f"no Okta user with id, login or e-mail '{user}'",
                                vendor=self.vendor, operation=operation, status=404)
        ids = ", ".join(str(m.get("id")) for m in (live or matches)[:5])
        raise ConflictError(f"{len(live or matches)} Okta users have the e-mail '{user}' "
                            f"({ids}); give the user's id or login", vendor=self.vendor,
                            operation=operation)

    def lifecycle(self, user_id: str, transition: str, operation: str) -> None:
        """POST a lifecycle transition (`suspend`, `unsuspend`...); Okta answers 200, empty."""
        self.change("POST", f"/api/v1/users/{path_segment(user_id)}/lifecycle/{transition}",
                    operation=operation, scope="okta.users.manage")

    def revoke_sessions(self, user_id: str, *, oauth_tokens: bool, forget_devices: bool,
                        operation: str) -> None:
        """Okta answers 204 whether or not there was anything to revoke."""
        self.change("DELETE", f"/api/v1/users/{path_segment(user_id)}/sessions",
                    operation=operation, scope="okta.users.manage",
                    params={"oauthTokens": _flag(oauth_tokens),
                            "forgetDevices": _flag(forget_devices)})

    # groups -------------------------------------------------------------------------------------

    def find_group(self, group: str, operation: str) -> dict[str, Any]:
        """A group by id, else by exact name (`search=profile.name eq "..."`)."""
        if OKTA_ID.match(group):
            try:
                found = self.request_json("GET", f"/api/v1/groups/{group}", operation=operation)
            except NotFoundError:
                found = None
            if isinstance(found, dict) and found.get("id"):
                return found
        matches = list(self.paged("/api/v1/groups", operation=operation,
                                  params={"search": f"profile.name eq {search_literal(group)}"}))
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise NotFoundError(f"no Okta group with id or name '{group}'", vendor=self.vendor,
                                operation=operation, status=404)
        ids = ", ".join(str(m.get("id")) for m in matches[:5])
        raise ConflictError(f"{len(matches)} Okta groups are named '{group}' ({ids}); give the "
                            "group id", vendor=self.vendor, operation=operation)

    def user_group_ids(self, user_id: str, operation: str) -> set[str]:
        """Ids of the groups the user is a direct member of."""
        return {str(g.get("id")) for g in
                self.paged(f"/api/v1/users/{path_segment(user_id)}/groups", operation=operation)}

    def set_membership(self, method: str, group_id: str, user_id: str, operation: str) -> None:
        """PUT (assign) or DELETE (unassign) a membership; Okta answers 204."""
        self.change(method,
                    f"/api/v1/groups/{path_segment(group_id)}/users/{path_segment(user_id)}",
                    operation=operation, scope="okta.groups.manage")

    # helpers ------------------------------------------------------------------------------------

    def change(self, method: str, path: str, *, operation: str, scope: str,
               params: Mapping[str, Any] | None = None) -> requests.Response:
        """Send a state-changing request; a 403 names the permission (OAuth scope) it needs,
        which is what an Okta admin has to grant the API token's owner."""
        try:
            return self.request(method, path, operation=operation, params=params)
        except AuthError as exc:
            if exc.status != 403:
                raise
            raise AuthError(f"{reason(exc)}; the call needs the {scope} permission",
                            vendor=exc.vendor, operation=exc.operation, status=exc.status,
                            request_id=exc.request_id, body=exc.body) from None


def reason(error: VendorError) -> str:
    """The vendor's part of an error message, without the "okta <operation> (HTTP n)" prefix,
    for re-raising it with advice."""
    return str(error).split(": ", 1)[-1]


def _flag(value: bool) -> str:
    return "true" if value else "false"


def rate_limit_wait(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds until Okta's rate-limit window resets: `X-Rate-Limit-Reset` (epoch seconds)
    measured against the response's own `Date`, so a skewed local clock does not matter."""
    reset = headers.get("X-Rate-Limit-Reset")
    if not reset:
        return None
    try:
        reset_at = float(reset)
    except ValueError:
        return None
    current = now
    if current is None and headers.get("Date"):
        try:
            current = email.utils.parsedate_to_datetime(headers["Date"]).timestamp()
        except (TypeError, ValueError):
            current = None
    if current is None:
        current = time.time()
    return max(0.0, reset_at - current)
