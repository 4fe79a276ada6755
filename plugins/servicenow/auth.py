"""OAuth for ServiceNow: the instance's own token endpoint (`/oauth_token.do`).

The engine's `OAuth2ClientCredentials` knows only the client-credentials grant, while most
ServiceNow instances issue tokens to an integration user through the `password` grant (the
client-credentials grant exists only on newer releases). Both are supported here; a 401 from
the token endpoint is an AuthError naming `get OAuth token`.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from crownguard.engine import Auth, BadResponse, Secret

if TYPE_CHECKING:
    from crownguard.engine import VendorClient

TOKEN_OPERATION = "get OAuth token"  # noqa: S105 (an operation name, not a secret)


def _plain(value: Secret | str) -> str:
    return value.reveal() if isinstance(value, Secret) else value


class ServiceNowOAuth(Auth):
    """A bearer token from `oauth_token.do`, cached per connection and fetched again after a 401.

    With `username`/`password` the `password` grant is used (the integration user acts), without
    them the `client_credentials` grant.
    """

    EXPIRY_MARGIN = 30.0

    def __init__(self, token_url: str, client_id: str, client_secret: Secret | str, *,
                 username: str | None = None, password: Secret | str | None = None):
        self.token_url = token_url
        self.client_id = client_id
        self.client_secret = client_secret
        self.username = username
        self.password = password
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0
        self.fetches = 0

    def apply(self, headers: dict[str, str], client: VendorClient) -> None:
        headers["Authorization"] = f"Bearer {self._current(client)}"

    def invalidate(self) -> bool:
        with self._lock:
            self._token = None
            self._expires_at = 0.0
        return True

    def _current(self, client: VendorClient) -> str:
        with self._lock:
            if self._token is None or time.monotonic() >= self._expires_at:
                self._token, lifetime = self._fetch(client)
                self.fetches += 1
                self._expires_at = time.monotonic() + max(0.0, lifetime - self.EXPIRY_MARGIN)
            return self._token

    def _form(self) -> dict[str, str]:
        form = {"client_id": self.client_id, "client_secret": _plain(self.client_secret)}
        if self.username and self.password is not None:
            form.update(grant_type="password", username=self.username,
                        password=_plain(self.password))
        else:
            form["grant_type"] = "client_credentials"
        return form

    def _fetch(self, client: VendorClient) -> tuple[str, float]:
        response = client.send_raw("POST", self.token_url, operation=TOKEN_OPERATION,
                                   data=self._form(), headers={"Accept": "application/json"})
        if not 200 <= response.status_code < 300:
            raise client.error_for(response, TOKEN_OPERATION)
        body = client.parse_json(response, TOKEN_OPERATION)
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise BadResponse("the token answer has no access_token", vendor=client.vendor,
                              operation=TOKEN_OPERATION, status=response.status_code)
        client.redactor.add(token)
        refresh = body.get("refresh_token")
        if isinstance(refresh, str):
            client.redactor.add(refresh)
        try:
            lifetime = float(body.get("expires_in", 1800))
        except (TypeError, ValueError):
            lifetime = 1800.0
        return token, lifetime
