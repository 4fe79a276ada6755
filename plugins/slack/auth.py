"""Slack token rotation: an access token that expires (12 h) and a single-use refresh token.

Slack answers an expired token with HTTP 200 and `{"ok": false, "error": "token_expired"}`, not
with a 401, so the client calls `invalidate()` itself on that answer and re-sends once; the
next `apply()` exchanges the refresh token at `oauth.v2.access`. Slack revokes a refresh token
once it is used: the new one is kept here, in memory, for the life of the connection.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from crownguard.engine import Auth, AuthError, Secret, VendorClient

REFRESH_OPERATION = "oauth.v2.access (refresh token)"


def _plain(value: Secret | str | None) -> str | None:
    if isinstance(value, Secret):
        return value.reveal()
    return value


class SlackTokenRotation(Auth):
    """Bearer auth with Slack's refresh-token grant."""

    EXPIRY_MARGIN = 60.0

    def __init__(self, *, refresh_token: Secret | str, client_id: str,
                 client_secret: Secret | str, token: Secret | str | None = None):
        self._token = _plain(token)
        self._refresh_token = _plain(refresh_token)
        self._client_id = client_id
        self._client_secret = client_secret
        # A configured access token has no known expiry: use it until Slack says it expired.
        self._expires_at: float | None = None
        self._lock = threading.Lock()
        self.refreshes = 0

    def apply(self, headers: dict[str, str], client: VendorClient) -> None:
        headers["Authorization"] = f"Bearer {self._current(client)}"

    def invalidate(self) -> bool:
        with self._lock:
            self._token = None
        return True

    def _current(self, client: VendorClient) -> str:
        with self._lock:
            fresh = self._expires_at is None or time.monotonic() < self._expires_at
            if self._token is None or not fresh:
                self._refresh(client)
            assert self._token is not None
            return self._token

    def _refresh(self, client: VendorClient) -> None:
        form = {"grant_type": "refresh_token", "refresh_token": self._refresh_token or "",
                "client_id": self._client_id, "client_secret": _plain(self._client_secret) or ""}
        response = client.send_raw("POST", client.url("oauth.v2.access"),
                                   operation=REFRESH_OPERATION, data=form,
                                   headers={"Accept": "application/json"})
        if response.status_code >= 400:
            raise client.error_for(response, REFRESH_OPERATION)
        body: Any = client.parse_json(response, REFRESH_OPERATION)
        if not isinstance(body, dict) or body.get("ok") is not True \
                or not isinstance(body.get("access_token"), str):
            code = body.get("error") if isinstance(body, dict) else None
            raise AuthError(f"could not refresh the Slack token ({code or 'no access_token'}); "
                            "check refresh_token, client_id and client_secret",
                            vendor="slack", operation=REFRESH_OPERATION,
                            status=response.status_code)
        # Known to the redactor before anything could print them.
        client.redactor.add(body["access_token"])
        if isinstance(body.get("refresh_token"), str):
            client.redactor.add(body["refresh_token"])
            self._refresh_token = body["refresh_token"]
        self._token = body["access_token"]
        try:
            lifetime = float(body.get("expires_in", 43200))
        except (TypeError, ValueError):
            lifetime = 43200.0
        self._expires_at = time.monotonic() + max(0.0, lifetime - self.EXPIRY_MARGIN)
        self.refreshes += 1
