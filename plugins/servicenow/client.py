"""ServiceNowClient: the Table API (`/api/now/table/{table}`) over the engine's HTTP layer.

Authentication is HTTP Basic (integration user), a static OAuth bearer token, or OAuth through
the instance's `oauth_token.do` (ServiceNowOAuth: most instances issue tokens to an integration
user through the `password` grant, which the engine's OAuth2ClientCredentials does not speak;
newer releases also offer client credentials). List calls follow the `Link: <...>; rel="next"`
header the instance sends (it carries sysparm_offset/sysparm_limit), never a link to another
host.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote

import requests

from crownguard.engine import (
    Auth,
    BadResponse,
    BasicAuth,
    CachedTokenAuth,
    ConfigError,
    HeaderAuth,
    NotFoundError,
    Secret,
    VendorClient,
    reveal,
)

DEFAULT_PAGE_SIZE = 100
MAX_PAGES = 1000
SYS_ID = re.compile(r"^[0-9a-f]{32}$")
TOKEN_OPERATION = "get OAuth token"  # noqa: S105 (an operation name, not a secret)


class ServiceNowOAuth(CachedTokenAuth):
    """A bearer token from `oauth_token.do`, cached per connection and fetched again after a 401
    (a 401 from the token endpoint is an AuthError naming `get OAuth token`).

    With `username`/`password` the `password` grant is used (the integration user acts), without
    them the `client_credentials` grant.
    """

    DEFAULT_LIFETIME = 1800.0
    operation = TOKEN_OPERATION

    def __init__(self, token_url: str, client_id: str, client_secret: Secret | str, *,
                 username: str | None = None, password: Secret | str | None = None):
        super().__init__(token_url)
        self.client_id = client_id
        self.client_secret = client_secret
        self.username = username
        self.password = password

    def token_request(self, client: VendorClient) -> tuple[dict[str, str], dict[str, str]]:
        form = {"client_id": self.client_id, "client_secret": reveal(self.client_secret)}
        if self.username and self.password is not None:
            form.update(grant_type="password", username=self.username,
                        password=reveal(self.password))
        else:
            form["grant_type"] = "client_credentials"
        return form, {}


class ServiceNowClient(VendorClient):
    """One ServiceNow instance, as configured by the `servicenow` connection."""

    vendor = "servicenow"
    connection_type = "servicenow"

    # auth --------------------------------------------------------------------------------------

    def make_auth(self) -> Auth:
        settings = self.settings
        if settings.get("client_id"):
            token_url = settings.get("token_url") or self.url("oauth_token.do")
            return ServiceNowOAuth(str(token_url), str(settings["client_id"]),
                                   settings.get("client_secret") or "",
                                   username=settings.get("username"),
                                   password=settings.get("password"))
        if settings.get("token"):
            return HeaderAuth(settings["token"], scheme="Bearer")
        if settings.get("username") and settings.get("password") is not None:
            return BasicAuth(str(settings["username"]), settings["password"])
        raise ConfigError(f"connection '{self.connection.name}' needs username/password, "
                          "token, or client_id/client_secret")

    def error_message(self, body: Any, response: requests.Response) -> str:
        """ServiceNow errors are `{"error": {"message", "detail"}, "status": "failure"}`."""
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            message = str(error.get("message") or "").strip()
            detail = str(error.get("detail") or "").strip()
            if message and detail and detail != message:
                return f"{message}: {detail}"
            if message or detail:
                return message or detail
        return super().error_message(body, response)

    # links -------------------------------------------------------------------------------------

    @property
    def page_size(self) -> int:
        return int(self.settings.get("page_size") or DEFAULT_PAGE_SIZE)

    def record_link(self, table: str, sys_id: str) -> str:
        """The instance UI address of a record (for people reading the run record)."""
        return self.url(f"nav_to.do?uri={table}.do%3Fsys_id%3D{sys_id}")

    @staticmethod
    def table_path(table: str, sys_id: str | None = None) -> str:
        path = f"api/now/table/{quote(table, safe='')}"
        return f"{path}/{quote(sys_id, safe='')}" if sys_id else path

    # Table API ---------------------------------------------------------------------------------

    def _result(self, response: requests.Response, operation: str) -> Any:
        body = self.parse_json(response, operation)
        if not isinstance(body, dict) or "result" not in body:
            raise BadResponse("the answer has no 'result'", vendor=self.vendor,
                              operation=operation, status=response.status_code)
        return body["result"]

    def _record(self, response: requests.Response, operation: str) -> dict[str, Any]:
        result = self._result(response, operation)
        if not isinstance(result, dict) or not isinstance(result.get("sys_id"), str):
            raise BadResponse("the answer is not a record with a sys_id", vendor=self.vendor,
                              operation=operation, status=response.status_code)
        return result

    def iter_records(self, table: str, *, query: str, operation: str,
                     fields: list[str] | None = None, limit: int | None = None,
                     display_value: bool = False) -> Iterator[dict[str, Any]]:
        """Records matching an encoded query, page by page, at most `limit` of them."""
        page = self.page_size if limit is None else max(1, min(self.page_size, limit))
        params: dict[str, Any] | None = {
            "sysparm_query": query,
            "sysparm_limit": page,
            "sysparm_offset": 0,
            "sysparm_exclude_reference_link": "true",
            "sysparm_display_value": "true" if display_value else "false",
        }
        if fields:
            params["sysparm_fields"] = ",".join(fields)  # type: ignore[index]
        path: str | None = self.table_path(table)
        seen: set[str] = set()
        yielded = 0
        for _ in range(MAX_PAGES):
            if path is None:
                return
            response = self.request("GET", path, operation=operation, params=params)
            result = self._result(response, operation)
            if not isinstance(result, list):
                raise BadResponse("the list answer's 'result' is not a list", vendor=self.vendor,
                                  operation=operation, status=response.status_code)
            for record in result:
                if limit is not None and yielded >= limit:
                    return
                if isinstance(record, dict):
                    yielded += 1
                    yield record
            next_link = response.links.get("next", {}).get("url")
            if not result or not next_link:
                return
            if next_link in seen:
                raise BadResponse("the instance sent the same next-page link twice",
                                  vendor=self.vendor, operation=operation)
            seen.add(next_link)
            path, params = next_link, None  # the link carries every sysparm_ itself
        raise BadResponse(f"more than {MAX_PAGES} pages", vendor=self.vendor, operation=operation)

    def find_one(self, table: str, query: str, *, operation: str,
                 fields: list[str] | None = None) -> dict[str, Any] | None:
        for record in self.iter_records(table, query=query, operation=operation,
                                        fields=fields, limit=1):
            return record
        return None

    def get(self, table: str, sys_id: str, *, operation: str, fields: list[str] | None = None,
            display_value: bool = False) -> dict[str, Any]:
        params = {"sysparm_exclude_reference_link": "true",
                  "sysparm_display_value": "true" if display_value else "false"}
        if fields:
            params["sysparm_fields"] = ",".join(fields)
        response = self.request("GET", self.table_path(table, sys_id), operation=operation,
                                params=params)
        return self._record(response, operation)

    def insert(self, table: str, values: Mapping[str, Any], *, operation: str,
               fields: list[str] | None = None) -> dict[str, Any]:
        params = {"sysparm_exclude_reference_link": "true"}
        if fields:
            params["sysparm_fields"] = ",".join(fields)
        response = self.request("POST", self.table_path(table), operation=operation,
                                params=params, json_body=dict(values))
        return self._record(response, operation)

    def update(self, table: str, sys_id: str, values: Mapping[str, Any], *, operation: str,
               fields: list[str] | None = None) -> dict[str, Any]:
        params = {"sysparm_exclude_reference_link": "true"}
        if fields:
            params["sysparm_fields"] = ",".join(fields)
        response = self.request("PATCH", self.table_path(table, sys_id), operation=operation,
                                params=params, json_body=dict(values))
        return self._record(response, operation)

    # look-ups ----------------------------------------------------------------------------------

    def locate(self, table: str, *, sys_id: str | None, number: str | None, operation: str,
               fields: list[str] | None = None) -> dict[str, Any]:
        """A record by sys_id or by number; NotFoundError when there is none."""
        if sys_id:
            return self.get(table, sys_id, operation=operation, fields=fields)
        record = self.find_one(table, f"number={number}", operation=operation, fields=fields)
        if record is None:
            raise NotFoundError(f"no {table} record with number '{number}'", vendor=self.vendor,
                                operation=operation)
        return record

    def resolve_user(self, user: str, *, operation: str) -> str:
        """The sys_id of a sys_user given by sys_id, user_name or e-mail."""
        if SYS_ID.match(user):
            return user
        record = self.find_one("sys_user", f"user_name={user}^ORemail={user}",
                               operation=operation, fields=["sys_id", "user_name", "email"])
        if record is None or not isinstance(record.get("sys_id"), str):
            raise NotFoundError(f"no sys_user with user_name or email '{user}'",
                                vendor=self.vendor, operation=operation)
        return str(record["sys_id"])
