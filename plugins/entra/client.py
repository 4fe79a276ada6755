"""EntraClient: Microsoft Graph (users, groups) with app-only tokens from the Microsoft identity
platform's client-credentials grant.

Graph answers errors as `{"error": {"code", "message", "innerError"}}`, pages with
`@odata.nextLink`, and returns only a default set of user properties unless `$select` asks
for more (`accountEnabled` is not in it), so every read here names its fields.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote

import requests

from crownguard.engine import (
    Auth,
    AuthError,
    BadResponse,
    ConflictError,
    NotFoundError,
    OAuth2ClientCredentials,
    PrivateKeyJWT,
    VendorClient,
    VendorError,
    assertion_signer,
)

GRAPH = "https://graph.microsoft.com"
DEFAULT_SCOPE = "https://graph.microsoft.com/.default"
TOKEN_OPERATION = "get OAuth2 token"  # noqa: S105 - an operation name
GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
USER_FIELDS = ("id,displayName,userPrincipalName,mail,accountEnabled,userType,"
               "onPremisesSyncEnabled,signInSessionsValidFromDateTime")
GROUP_FIELDS = "id,displayName,groupTypes,mailEnabled,securityEnabled,onPremisesSyncEnabled"
MAX_PAGES = 50
# Both thumbprint headers: SHA-1 `x5t`, which every Entra cloud reads, and `x5t#S256`.
THUMBPRINTS = "x5t x5t#S256"
# Token-endpoint errors that mean "these credentials or this app registration are wrong".
CREDENTIAL_ERRORS = {"invalid_client", "unauthorized_client", "invalid_grant", "invalid_scope",
                     "invalid_request"}


def odata_literal(value: str) -> str:
    """A single-quoted OData string literal."""
    return "'" + value.replace("'", "''") + "'"


def user_path(user: str) -> str:
    """`/users/{id|UPN}`; a UPN starting with `$` must use the key form `/users('$x@y')`."""
    if user.startswith("$"):
        inner = quote(user.replace("'", "''"), safe="@$")
        return f"/users('{inner}')"
    return f"/users/{quote(user, safe='@$')}"


class EntraClient(VendorClient):
    """Microsoft Graph client for an Entra ID tenant (app-only permissions)."""

    vendor = "entra"
    request_id_headers = ("request-id", "client-request-id")
    connection_type = "entra"

    @property
    def base_url(self) -> str:
        return str(self.settings.get("base_url") or GRAPH).rstrip("/") + "/"

    @property
    def version(self) -> str:
        return str(self.settings.get("api_version") or "v1.0")

    def make_auth(self) -> Auth:
        token_url = self.settings.get("token_url") or (
            "https://login.microsoftonline.com/"
            f"{quote(str(self.settings['tenant_id']), safe='')}/oauth2/v2.0/token")
        client_id = str(self.settings["client_id"])
        scope = str(self.settings.get("scope") or DEFAULT_SCOPE)
        if self.settings.get("private_key") is not None:
            # A certificate credential: Entra finds the key by the certificate's thumbprint.
            signer = assertion_signer(self.connection, client_id, thumbprint=THUMBPRINTS)
            return PrivateKeyJWT(str(token_url), client_id, signer, scope=scope)
        return OAuth2ClientCredentials(str(token_url), client_id, self.settings["client_secret"],
                                       scope=scope)

    def error_message(self, body: Any, response: requests.Response) -> str:
        if isinstance(body, dict) and isinstance(body.get("error_description"), str):
            # AADSTS descriptions end with trace and correlation ids on further lines.
            return body["error_description"].strip().splitlines()[0]
        return super().error_message(body, response)

    def error_for(self, response: requests.Response, operation: str) -> VendorError:
        error = super().error_for(response, operation)
        if operation == TOKEN_OPERATION and response.status_code in (400, 401):
            try:
                code = response.json().get("error")
            except (ValueError, AttributeError):
                code = None
            if code in CREDENTIAL_ERRORS:
                what = ("private_key and certificate (is the certificate uploaded to the app "
                        "registration?)" if self.settings.get("private_key") is not None
                        else "client_secret")
                return AuthError(f"{reason(error)} (check tenant_id/token_url, client_id, "
                                 f"{what} and scope)", vendor=self.vendor,
                                 operation=operation, status=response.status_code,
                                 request_id=error.request_id,
                                 body=error.body)
        return error

    # requests ------------------------------------------------------------------------------------

    def graph(self, method: str, path: str, *, operation: str, permission: str | None = None,
              params: Mapping[str, Any] | None = None, json_body: Any = None,
              ok: tuple[int, ...] = ()) -> requests.Response:
        """One Graph call under the API version; a 403 names the application permission the
        call needs, which is what a tenant admin has to consent to."""
        headers = {}
        if self.ctx is not None:
            # Graph echoes client-request-id in its logs: the step's key makes calls traceable.
            headers["client-request-id"] = str(uuid.UUID(hex=_hex32(self.ctx.idempotency_key)))
        url = path if path.startswith(("http://", "https://")) else f"/{self.version}{path}"
        try:
            return self.request(method, url, operation=operation, params=params,
                                json_body=json_body, headers=headers, ok=ok)
        except AuthError as exc:
            if exc.status != 403 or not permission:
                raise
            raise AuthError(f"{reason(exc)}; the app registration needs the Graph application "
                            f"permission {permission} (admin consent)", vendor=exc.vendor,
                            operation=exc.operation, status=exc.status,
                            request_id=exc.request_id, body=exc.body) from None

    def graph_json(self, method: str, path: str, *, operation: str, **kwargs: Any) -> Any:
        return self.parse_json(self.graph(method, path, operation=operation, **kwargs), operation)

    def paged(self, path: str, *, operation: str, permission: str,
              params: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        """Every item of a collection, following `@odata.nextLink` on Graph's own host."""
        url, query = path, dict(params)
        for _ in range(MAX_PAGES):
            page = self.graph_json("GET", url, operation=operation, permission=permission,
                                   params=query or None)
            if not isinstance(page, dict) or not isinstance(page.get("value"), list):
                raise BadResponse("expected a collection with 'value'", vendor=self.vendor,
                                  operation=operation)
            yield from (i for i in page["value"] if isinstance(i, dict))
            next_link = page.get("@odata.nextLink")
            if not next_link:
                return
            url, query = str(next_link), {}
        raise BadResponse(f"more than {MAX_PAGES} pages; narrow the look-up",
                          vendor=self.vendor, operation=operation)

    # look-ups ------------------------------------------------------------------------------------

    def find_user(self, user: str, operation: str) -> dict[str, Any]:
        """A user by object id or userPrincipalName, else by primary SMTP address (`mail`)."""
        permission = "User.Read.All"
        try:
            found = self.graph_json("GET", user_path(user), operation=operation,
                                    permission=permission, params={"$select": USER_FIELDS})
        except NotFoundError:
            if "@" not in user:
                raise NotFoundError(f"no Entra user with id or userPrincipalName '{user}'",
                                    vendor=self.vendor, operation=operation, status=404) from None
            found = None
        if found is not None:
            return _expect_object(found, self.vendor, operation)
        matches = list(self.paged("/users", operation=operation, permission=permission,
                                  params={"$filter": f"mail eq {odata_literal(user)}",
                                          "$select": USER_FIELDS}))
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise NotFoundError(f"no Entra user with id, userPrincipalName or mail '{user}'",
                                vendor=self.vendor, operation=operation, status=404)
        ids = ", ".join(str(m.get("id")) for m in matches[:5])
        raise ConflictError(f"{len(matches)} Entra users have the mail '{user}' ({ids}); give "
                            "the object id or userPrincipalName", vendor=self.vendor,
                            operation=operation)

    def find_group(self, group: str, operation: str) -> dict[str, Any]:
        """A group by object id, else by exact displayName (which Entra does not keep unique)."""
        permission = "GroupMember.Read.All"
        if GUID.match(group):
            found = self.graph_json("GET", f"/groups/{group}", operation=operation,
                                    permission=permission, params={"$select": GROUP_FIELDS})
            return _expect_object(found, self.vendor, operation)
        matches = list(self.paged("/groups", operation=operation, permission=permission,
                                  params={"$filter": f"displayName eq {odata_literal(group)}",
                                          "$select": GROUP_FIELDS}))
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise NotFoundError(f"no Entra group with id or displayName '{group}'",
                                vendor=self.vendor, operation=operation, status=404)
        ids = ", ".join(str(m.get("id")) for m in matches[:5])
        raise ConflictError(f"{len(matches)} Entra groups are named '{group}' ({ids}); give the "
                            "group's object id", vendor=self.vendor, operation=operation)

    def directory_object_url(self, object_id: str) -> str:
        """The `@odata.id` of a directory object, on this connection's Graph endpoint."""
        return f"{self.base_url}{self.version}/directoryObjects/{object_id}"


def reason(error: VendorError) -> str:
    """The vendor's part of an error message, without the "entra <operation> (HTTP n)"
    prefix, for re-raising it with advice."""
    return str(error).split(": ", 1)[-1]


def _hex32(key: str) -> str:
    digits = "".join(c for c in key.lower() if c in "0123456789abcdef")
    return (digits + "0" * 32)[:32]


def _expect_object(value: Any, vendor: str, operation: str) -> dict[str, Any]:
    if not isinstance(value, dict) or not value.get("id"):
        raise BadResponse("expected an object with an id", vendor=vendor, operation=operation)
    return value


def unmanaged_group_reason(group: dict[str, Any]) -> str | None:
    """Why Graph cannot change this group's members, if it cannot."""
    types = group.get("groupTypes") or []
    if "DynamicMembership" in types:
        return "its membership is dynamic (rule-based)"
    if group.get("onPremisesSyncEnabled"):
        return "it is synchronised from on-premises Active Directory; change it there"
    if group.get("mailEnabled") and "Unified" not in types:
        return "it is a distribution list or mail-enabled security group; change it in Exchange"
    return None
