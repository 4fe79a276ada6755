"""DefenderClient: Entra client credentials, the Defender error shape, OData collections with
`@odata.nextLink`, machines, machine actions and file profiles."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

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

from .connection import AUTHORITY, DEFAULT_BASE_URL, DEFAULT_SCOPE

MAX_PAGES = 1000  # a vendor that never stops paging must not hang a step

# The application permission each operation needs, named in 403 messages.
PERMISSION_HINTS = {
    "list machines": "Machine.Read.All",
    "get machine": "Machine.Read.All",
    "list machine actions": "Machine.Read.All",
    "get machine action": "Machine.Read.All",
    "isolate machine": "Machine.Isolate",
    "release machine": "Machine.Isolate",
    "stop and quarantine file": "Machine.StopAndQuarantine",
    "get file": "File.Read.All",
}
# Defender answers a second request while one of the same kind is pending with a 400.
ALREADY_RUNNING = ("ActiveRequestAlreadyExists", "already in progress")


def odata_string(value: str) -> str:
    """A value as an OData string literal (single quotes doubled)."""
    return "'" + value.replace("'", "''") + "'"


class DefenderClient(VendorClient):
    """One Defender for Endpoint API client per `defender` connection."""

    vendor = "defender"
    request_id_headers = ("request-id", "client-request-id")
    connection_type = "defender"

    @property
    def base_url(self) -> str:
        return str(self.settings.get("base_url") or DEFAULT_BASE_URL).rstrip("/") + "/"

    @property
    def token_url(self) -> str:
        if self.settings.get("token_url"):
            return str(self.settings["token_url"])
        tenant = quote(str(self.settings.get("tenant_id", "")), safe="")
        return f"{AUTHORITY}/{tenant}/oauth2/v2.0/token"

    def make_auth(self) -> Auth:
        scope = str(self.settings.get("scope") or DEFAULT_SCOPE)
        if self.settings.get("private_key") is not None:
            client_id = str(self.settings["client_id"])
            # A certificate credential: Entra finds the key by the certificate's thumbprint.
            signer = assertion_signer(self.connection, client_id, thumbprint="x5t x5t#S256")
            return PrivateKeyJWT(self.token_url, client_id, signer, scope=scope)
        return OAuth2ClientCredentials(
            self.token_url, str(self.settings.get("client_id", "")),
            self.settings.get("client_secret", ""),
            scope=scope, style="body")

    # errors -----------------------------------------------------------------------------------

    def error_for(self, response: requests.Response, operation: str) -> VendorError:
        error = super().error_for(response, operation)
        status = response.status_code
        token_call = urlsplit(response.url)[:3] == urlsplit(self.token_url)[:3]
        if token_call and status in (400, 401, 403):
            # Entra answers a wrong tenant, client id, secret or scope with 400/401 AADSTS codes.
            detail = self.error_message(error.body, response) if error.body else ""
            what = ("private_key and certificate (is the certificate uploaded to the app?)"
                    if self.settings.get("private_key") is not None else "client_secret")
            error = AuthError(
                "Entra refused the app's credentials (check tenant_id/token_url, client_id, "
                f"{what} and scope)" + (f": {detail.splitlines()[0]}" if detail else ""),
                vendor=self.vendor, operation=operation, status=status,
                request_id=error.request_id, body=error.body)
        elif status == 403 and operation in PERMISSION_HINTS:
            error.args = (f"{error.args[0]}; the app needs the application permission "
                          f"{PERMISSION_HINTS[operation]}",)
        error.args = tuple(self.redactor.redact(str(a)) for a in error.args)
        return error

    # collections ------------------------------------------------------------------------------

    def collection(self, path: str, operation: str, params: dict[str, str] | None = None,
                   *, empty_on_404: bool = False) -> list[dict[str, Any]]:
        """Every entity of an OData collection, following `@odata.nextLink`."""
        items: list[dict[str, Any]] = []
        next_path: str | None = path
        query: dict[str, str] | None = params
        for _ in range(MAX_PAGES):
            if next_path is None:
                break
            try:
                body = self.request_json("GET", next_path, operation=operation, params=query)
            except NotFoundError:
                if not empty_on_404:
                    raise
                break  # "If no recent machines - 404 Not Found" (List machines API)
            if not isinstance(body, dict) or not isinstance(body.get("value"), list):
                raise BadResponse("the answer has no 'value' list", vendor=self.vendor,
                                  operation=operation)
            items.extend(v for v in body["value"] if isinstance(v, dict))
            link = body.get("@odata.nextLink")
            next_path, query = (str(link), None) if link else (None, None)
        return items

    def entity(self, path: str, operation: str) -> dict[str, Any]:
        body = self.request_json("GET", path, operation=operation)
        if not isinstance(body, dict):
            raise BadResponse("the answer is not an object", vendor=self.vendor,
                              operation=operation)
        return body

    # machines, actions, files -----------------------------------------------------------------

    def machine(self, machine_id: str) -> dict[str, Any]:
        return self.entity(f"/api/machines/{quote(machine_id, safe='')}", "get machine")

    def machines_named(self, name: str) -> list[dict[str, Any]]:
        """Machines whose DNS name is `name`, or (for a short host name) `name.<domain>`."""
        name = name.lower()
        found = self.collection("/api/machines", "list machines",
                                {"$filter": f"computerDnsName eq {odata_string(name)}"},
                                empty_on_404=True)
        if "." not in name:
            try:
                found += self.collection(
                    "/api/machines", "list machines",
                    {"$filter": f"startswith(computerDnsName,{odata_string(name + '.')})"},
                    empty_on_404=True)
            except ConflictError as exc:  # a tenant or proxy without startswith support
                if exc.status != 400:
                    raise
        unique = {str(m.get("id")): m for m in found}
        return [m for m in unique.values()
                if str(m.get("computerDnsName", "")).lower() in (name, "")
                or str(m.get("computerDnsName", "")).lower().startswith(name + ".")]

    def machine_actions(self, machine_id: str) -> list[dict[str, Any]]:
        return self.collection("/api/machineactions", "list machine actions",
                               {"$filter": f"machineId eq {odata_string(machine_id)}"})

    def machine_action(self, action_id: str) -> dict[str, Any]:
        return self.entity(f"/api/machineactions/{quote(action_id, safe='')}",
                           "get machine action")

    def submit(self, machine_id: str, verb: str, body: dict[str, Any],
               operation: str) -> dict[str, Any] | None:
        """POST a machine action; None when Defender says one is already in progress."""
        try:
            answer = self.request_json(
                "POST", f"/api/machines/{quote(machine_id, safe='')}/{verb}",
                operation=operation, json_body=body)
        except ConflictError as exc:
            if exc.status == 400 and any(s in str(exc) for s in ALREADY_RUNNING):
                return None
            raise
        if not isinstance(answer, dict) or not answer.get("id"):
            raise BadResponse("the answer is not a MachineAction", vendor=self.vendor,
                              operation=operation)
        return answer

    def file(self, sha: str) -> dict[str, Any]:
        return self.entity(f"/api/files/{quote(sha.lower(), safe='')}", "get file")
