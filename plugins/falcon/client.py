"""FalconClient: OAuth2 client credentials, the Falcon response envelope, host look-ups and
actions, and the Real Time Response calls. Paths are the ones in CrowdStrike's own SDK
(falconpy `_endpoint` tables); a contract test keeps them so."""

from __future__ import annotations

import time
from collections.abc import Collection, Iterator, Sequence
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from crownguard.engine import (
    Auth,
    AuthError,
    BadResponse,
    ConflictError,
    NotFoundError,
    OAuth2ClientCredentials,
    VendorClient,
    VendorError,
)

from .connection import DEFAULT_BASE_URL

DEVICE_QUERY = "/devices/queries/devices/v1"
DEVICE_ENTITIES = "/devices/entities/devices/v2"
DEVICE_ACTIONS = "/devices/entities/devices-actions/v2"
RTR_SESSIONS = "/real-time-response/entities/sessions/v1"
RTR_ACTIVE_RESPONDER = "/real-time-response/entities/active-responder-command/v1"
RTR_SESSION_FILES = "/real-time-response/entities/file/v2"

DETAILS_BATCH = 100  # GET /devices/entities/devices/v2 takes at most 100 ids
MAX_PAGES = 1000  # a vendor that never stops paging must not hang a step

# The API scope (as named in the console's API client page) each operation needs, for 403s.
SCOPE_HINTS = {
    "query devices": "Hosts: Read",
    "get device details": "Hosts: Read",
    "contain host": "Hosts: Write",
    "lift containment": "Hosts: Write",
    "start RTR session": "Real time response: Read",
    "close RTR session": "Real time response: Read",
    "list RTR session files": "Real time response: Read",
    "run RTR command": "Real time response: Write",
    "check RTR command": "Real time response: Write",
}


class FalconClient(VendorClient):
    """One Falcon API client per `falcon` connection."""

    vendor = "falcon"
    request_id_headers = ("X-Cs-Traceid", "X-Request-Id")
    connection_type = "falcon"

    # settings ---------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return str(self.settings.get("base_url") or DEFAULT_BASE_URL).rstrip("/") + "/"

    @property
    def token_url(self) -> str:
        return str(self.settings.get("token_url") or urljoin(self.base_url, "oauth2/token"))

    @property
    def page_size(self) -> int:
        return int(self.settings.get("page_size", 500))

    def make_auth(self) -> Auth:
        member = self.settings.get("member_cid")
        return OAuth2ClientCredentials(
            self.token_url, str(self.settings.get("client_id", "")),
            self.settings.get("client_secret", ""), style="body",
            extra={"member_cid": str(member)} if member else None)

    # errors -----------------------------------------------------------------------------------

    def _is_token_call(self, response: requests.Response) -> bool:
        return urlsplit(response.url)[:3] == urlsplit(self.token_url)[:3]

    def error_for(self, response: requests.Response, operation: str) -> VendorError:
        error = super().error_for(response, operation)
        status = response.status_code
        if self._is_token_call(response) and status in (400, 401, 403):
            detail = self.error_message(error.body, response) if error.body else ""
            error = AuthError(
                "the API client id or secret was refused (check the connection's client_id "
                f"and client_secret{', and member_cid' if self.settings.get('member_cid') else ''})"
                + (f": {detail}" if detail else ""),
                vendor=self.vendor, operation=operation, status=status,
                request_id=error.request_id, body=error.body)
        elif status == 403 and operation in SCOPE_HINTS:
            error.args = (f"{error.args[0]}; the API client needs the scope "
                          f"'{SCOPE_HINTS[operation]}'",)
        if status == 429 and error.retry_after is None:
            # Falcon announces the end of the rate-limit window as an epoch in its own header.
            reset = response.headers.get("X-Ratelimit-Retryafter")
            try:
                error.retry_after = max(0.0, float(reset) - time.time()) if reset else None
            except ValueError:
                pass
        error.args = tuple(self.redactor.redact(str(a)) for a in error.args)
        return error

    # the envelope -----------------------------------------------------------------------------

    def resources(self, body: Any, operation: str,
                  ignore_codes: Collection[int] = ()) -> list[Any]:
        """`resources` of a Falcon envelope; envelope `errors` in a 2xx answer are failures
        (except those whose code is in `ignore_codes`)."""
        if not isinstance(body, dict):
            raise BadResponse("the answer is not a Falcon response envelope", vendor=self.vendor,
                              operation=operation)
        errors = [e for e in body.get("errors") or []
                  if not (isinstance(e, dict) and e.get("code") in ignore_codes)]
        if errors:
            message = "; ".join(str(e.get("message", e)) if isinstance(e, dict) else str(e)
                                for e in errors)
            raise ConflictError(self.redactor.redact(message), vendor=self.vendor,
                                operation=operation, body=self.redactor.redact_value(body))
        found = body.get("resources")
        if found is None:
            return []
        if not isinstance(found, list):
            raise BadResponse("'resources' is not a list", vendor=self.vendor,
                              operation=operation)
        return found

    def first_resource(self, body: Any, operation: str) -> dict[str, Any]:
        found = self.resources(body, operation)
        if not found or not isinstance(found[0], dict):
            raise BadResponse("the answer has no resource", vendor=self.vendor,
                              operation=operation)
        return found[0]

    # hosts ------------------------------------------------------------------------------------

    def query_device_ids(self, fql: str, sort: str | None = None) -> list[str]:
        """Every AID matching an FQL filter, following offset/limit pagination."""
        ids: list[str] = []
        offset = 0
        for _ in range(MAX_PAGES):
            params: dict[str, Any] = {"filter": fql, "limit": self.page_size, "offset": offset}
            if sort:
                params["sort"] = sort
            body = self.request_json("GET", DEVICE_QUERY, operation="query devices",
                                     params=params)
            page = [str(i) for i in self.resources(body, "query devices")]
            ids.extend(page)
            offset += len(page)
            total = _pagination_total(body)
            if not page or total is None or offset >= total:
                break
        return ids

    def get_devices(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        """Host records for AIDs; unknown AIDs are left out (Falcon answers them with 404)."""
        found: list[dict[str, Any]] = []
        for chunk in _chunks(list(ids), DETAILS_BATCH):
            try:
                body = self.request_json("GET", DEVICE_ENTITIES, operation="get device details",
                                         params=[("ids", aid) for aid in chunk])
            except NotFoundError:
                continue
            # Some answers list unknown AIDs as envelope errors with code 404 beside a 200.
            found.extend(r for r in self.resources(body, "get device details", {404})
                         if isinstance(r, dict))
        return found

    def device(self, device_id: str) -> dict[str, Any]:
        for record in self.get_devices([device_id]):
            if str(record.get("device_id", "")).lower() == device_id.lower():
                return record
        raise NotFoundError(f"no host with device id {device_id}", vendor=self.vendor,
                            operation="get device details", status=404)

    def device_action(self, device_id: str, action_name: str, operation: str) -> None:
        """POST devices-actions/v2 (contain, lift_containment) for one host."""
        body = self.request_json("POST", DEVICE_ACTIONS, operation=operation,
                                 params={"action_name": action_name},
                                 json_body={"ids": [device_id]})
        acted = {str(r.get("id", "")).lower() for r in self.resources(body, operation)
                 if isinstance(r, dict)}
        if acted and device_id.lower() not in acted:
            raise BadResponse(f"the answer does not name host {device_id}", vendor=self.vendor,
                              operation=operation)

    # real time response -----------------------------------------------------------------------

    def start_session(self, device_id: str) -> str:
        body = self.request_json("POST", RTR_SESSIONS, operation="start RTR session",
                                 json_body={"device_id": device_id, "origin": "crownguard",
                                            "queue_offline": False})
        session_id = self.first_resource(body, "start RTR session").get("session_id")
        if not isinstance(session_id, str) or not session_id:
            raise BadResponse("the answer has no session_id", vendor=self.vendor,
                              operation="start RTR session")
        return session_id

    def close_session(self, session_id: str) -> None:
        self.request("DELETE", RTR_SESSIONS, operation="close RTR session",
                     params={"session_id": session_id})

    def run_command(self, session_id: str, device_id: str, base_command: str,
                    command_string: str) -> str:
        """Queue an active-responder command; its cloud_request_id."""
        body = self.request_json("POST", RTR_ACTIVE_RESPONDER, operation="run RTR command",
                                 json_body={"base_command": base_command,
                                            "command_string": command_string,
                                            "session_id": session_id,
                                            "device_id": device_id, "persist": False})
        request_id = self.first_resource(body, "run RTR command").get("cloud_request_id")
        if not isinstance(request_id, str) or not request_id:
            raise BadResponse("the answer has no cloud_request_id", vendor=self.vendor,
                              operation="run RTR command")
        return request_id

    def command_status(self, cloud_request_id: str) -> dict[str, Any]:
        body = self.request_json("GET", RTR_ACTIVE_RESPONDER, operation="check RTR command",
                                 params={"cloud_request_id": cloud_request_id,
                                         "sequence_id": 0})
        return self.first_resource(body, "check RTR command")

    def session_files(self, session_id: str) -> list[dict[str, Any]]:
        body = self.request_json("GET", RTR_SESSION_FILES, operation="list RTR session files",
                                 params={"session_id": session_id})
        return [r for r in self.resources(body, "list RTR session files") if isinstance(r, dict)]


def _pagination_total(body: Any) -> int | None:
    try:
        total = body["meta"]["pagination"]["total"]
    except (KeyError, TypeError):
        return None
    return total if isinstance(total, int) else None


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
