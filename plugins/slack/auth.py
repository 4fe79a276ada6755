"""Slack token rotation: an access token that expires (12 h) and a single-use refresh token.

Slack answers an expired token with HTTP 200 and `{"ok": false, "error": "token_expired"}`, not
with a 401, so the client calls `invalidate()` itself on that answer and re-sends once; the
next `apply()` exchanges the refresh token at `oauth.v2.access`. Slack revokes a refresh token
once it is used: the new one is kept here, in memory, for the life of the connection.

Kept apart from client.py: it is the one place that knows Slack's refresh grant, and the
client only needs to know that `invalidate()` makes the next call refresh.
"""

from __future__ import annotations

from typing import Any

from crownguard.engine import AuthError, CachedTokenAuth, Secret, VendorClient, reveal

REFRESH_OPERATION = "oauth.v2.access (refresh token)"


class SlackTokenRotation(CachedTokenAuth):
    """Bearer auth with Slack's refresh-token grant, on the engine's cached-token base.

    A configured access token has no known expiry: it is used until Slack says it expired."""

    EXPIRY_MARGIN = 60.0
    DEFAULT_LIFETIME = 43200.0
    operation = REFRESH_OPERATION

    def __init__(self, *, refresh_token: Secret | str, client_id: str,
                 client_secret: Secret | str, token: Secret | str | None = None):
        super().__init__(token=token)
        self._refresh_token = reveal(refresh_token)
        self._client_id = client_id
        self._client_secret = client_secret

    def token_endpoint(self, client: VendorClient) -> str:
        return client.url("oauth.v2.access")

    def token_request(self, client: VendorClient) -> tuple[dict[str, str], dict[str, str]]:
        return {"grant_type": "refresh_token", "refresh_token": self._refresh_token or "",
                "client_id": self._client_id,
                "client_secret": reveal(self._client_secret) or ""}, {}

    def read_answer(self, client: VendorClient, body: Any, status: int) -> str:
        # Slack refuses a refresh with HTTP 200 and `ok: false`, not with an OAuth error status.
        if not isinstance(body, dict) or body.get("ok") is not True \
                or not isinstance(body.get("access_token"), str):
            code = body.get("error") if isinstance(body, dict) else None
            raise AuthError(f"could not refresh the Slack token ({code or 'no access_token'}); "
                            "check refresh_token, client_id and client_secret",
                            vendor="slack", operation=REFRESH_OPERATION, status=status)
        if isinstance(body.get("refresh_token"), str):
            self._refresh_token = body["refresh_token"]  # the old one is revoked now
        return str(body["access_token"])
