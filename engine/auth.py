"""Credentials on a request: static headers, HTTP Basic, and cached bearer tokens.

An Auth is made once per connection (`VendorClient.make_auth`) and shared by its steps; the
HTTP layer calls `apply` before every send and `invalidate` once after a 401.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

from .assertion import ASSERTION_TYPE
from .errors import AuthError, BadResponse, ConfigError, VendorError
from .secrets import Secret, reveal

if TYPE_CHECKING:
    import requests

    from .assertion import AssertionSigner
    from .config import Connection
    from .secrets import Redactor

E = TypeVar("E", bound=Exception)


class TokenClient(Protocol):
    """What an Auth needs of the client it serves (a VendorClient): who the vendor is, the
    connection, the redactor, and one unauthenticated send with the client's error mapping."""

    vendor: str
    connection: Connection
    redactor: Redactor

    def url(self, path: str) -> str: ...

    def send_raw(self, method: str, url: str, *, operation: str,
                 headers: Mapping[str, str] | None = None, timeout: float | None = None,
                 **kwargs: Any) -> requests.Response: ...

    def error_for(self, response: requests.Response, operation: str) -> VendorError: ...

    def parse_json(self, response: requests.Response, operation: str) -> Any: ...

    def _redacted(self, error: E) -> E: ...

OAUTH_CREDENTIAL_ERRORS = frozenset({"invalid_client", "unauthorized_client", "invalid_scope",
                                     "invalid_grant"})


def basic_auth_header(username: str, password: str) -> str:
    raw = f"{username}:{password}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


class Auth:
    """Adds credentials to a request; `invalidate()` is called once after a 401."""

    def apply(self, headers: dict[str, str], client: TokenClient) -> None:
        raise NotImplementedError

    def invalidate(self) -> bool:
        """Forget cached credentials; True if a re-send could succeed."""
        return False


class NoAuth(Auth):
    def apply(self, headers: dict[str, str], client: TokenClient) -> None:
        return None


class HeaderAuth(Auth):
    """A static credential header: `Authorization: Bearer <token>`, `SSWS <token>`..."""

    def __init__(self, token: Secret | str, scheme: str = "Bearer",
                 header: str = "Authorization"):
        self.token = token
        self.scheme = scheme
        self.header = header

    def apply(self, headers: dict[str, str], client: TokenClient) -> None:
        value = reveal(self.token)
        headers[self.header] = f"{self.scheme} {value}" if self.scheme else value


class BasicAuth(Auth):
    def __init__(self, username: str, password: Secret | str):
        self.username = username
        self.password = password

    def apply(self, headers: dict[str, str], client: TokenClient) -> None:
        headers["Authorization"] = basic_auth_header(self.username, reveal(self.password))


class CachedTokenAuth(Auth):
    """A bearer token from a token endpoint, shared by every step of a connection: fetched on
    first use, again shortly before it expires, and once more after a 401.

    Subclasses say how to ask (`token_request`) and, where the vendor's answer differs from
    OAuth's `{access_token, expires_in}`, how to read it (`read_answer`). Every token and
    refresh token the endpoint hands out is known to the redactor before anything could print
    it. With a configured `token` (no known expiry) it is used until the vendor refuses it.
    """

    EXPIRY_MARGIN: ClassVar[float] = 30.0
    DEFAULT_LIFETIME: ClassVar[float] = 3600.0
    operation: ClassVar[str] = "get OAuth2 token"

    def __init__(self, token_url: str | None = None, *, token: Secret | str | None = None):
        self.token_url = token_url
        self._lock = threading.Lock()
        self._token: str | None = reveal(token) if token is not None else None
        self._expires_at: float | None = None if token is not None else 0.0
        self.fetches = 0

    # subclasses --------------------------------------------------------------------------------

    def token_request(self, client: TokenClient) -> tuple[dict[str, str], dict[str, str]]:
        """The form and the extra headers of one token request."""
        raise NotImplementedError

    def token_endpoint(self, client: TokenClient) -> str:
        if not self.token_url:
            raise ConfigError(f"connection '{client.connection.name}' has no token_url")
        return self.token_url

    def refused(self, client: TokenClient, response: requests.Response) -> VendorError:
        """The error for a non-2xx answer of the token endpoint."""
        return client.error_for(response, self.operation)

    def read_answer(self, client: TokenClient, body: Any, status: int) -> str:
        """The access token in a 2xx answer (BadResponse when there is none)."""
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise BadResponse("the token answer has no access_token", vendor=client.vendor,
                              operation=self.operation, status=status)
        return token

    # plumbing ----------------------------------------------------------------------------------

    def apply(self, headers: dict[str, str], client: TokenClient) -> None:
        headers["Authorization"] = f"Bearer {self._current(client)}"

    def invalidate(self) -> bool:
        with self._lock:
            self._token = None
            self._expires_at = 0.0
        return True

    def _current(self, client: TokenClient) -> str:
        with self._lock:
            fresh = self._expires_at is None or time.monotonic() < self._expires_at
            if self._token is None or not fresh:
                self._token, lifetime = self._fetch(client)
                self.fetches += 1
                self._expires_at = time.monotonic() + max(0.0, lifetime - self.EXPIRY_MARGIN)
            return self._token

    def _fetch(self, client: TokenClient) -> tuple[str, float]:
        form, extra_headers = self.token_request(client)
        response = client.send_raw("POST", self.token_endpoint(client), operation=self.operation,
                                   data=form or None,
                                   headers={"Accept": "application/json", **extra_headers})
        if not 200 <= response.status_code < 300:
            raise self.refused(client, response)
        body = client.parse_json(response, self.operation)
        if isinstance(body, dict):
            for key in ("access_token", "refresh_token"):
                if isinstance(body.get(key), str) and body[key]:
                    client.redactor.add(body[key])
        token = self.read_answer(client, body, response.status_code)
        client.redactor.add(token)
        try:
            lifetime = float(body.get("expires_in", self.DEFAULT_LIFETIME))
        except (TypeError, ValueError, AttributeError):
            lifetime = self.DEFAULT_LIFETIME
        return token, lifetime


class OAuth2ClientCredentials(CachedTokenAuth):
    """OAuth2 client-credentials grant.

    `style="body"` sends client_id/client_secret in the form (Falcon, Entra); `style="basic"`
    sends them as HTTP Basic (Incydr, many others).
    """

    def __init__(self, token_url: str, client_id: str, client_secret: Secret | str, *,
                 scope: str | None = None, style: str = "body",
                 extra: Mapping[str, str] | None = None):
        super().__init__(token_url)
        self.client_id = client_id
        self.client_secret = client_secret
        self.scope = scope
        self.style = style
        self.extra = dict(extra or {})

    def token_request(self, client: TokenClient) -> tuple[dict[str, str], dict[str, str]]:
        form = {"grant_type": "client_credentials", **self.extra}
        if self.scope:
            form["scope"] = self.scope
        if self.style == "basic":
            return form, {"Authorization": basic_auth_header(self.client_id,
                                                             reveal(self.client_secret))}
        form["client_id"] = self.client_id
        form["client_secret"] = reveal(self.client_secret)
        return form, {}

    def refused(self, client: TokenClient, response: requests.Response) -> VendorError:
        error = client.error_for(response, self.operation)
        body = error.body if isinstance(error.body, dict) else {}
        if response.status_code == 400 and body.get("error") in OAUTH_CREDENTIAL_ERRORS:
            # RFC 6749 5.2: a 400 that means the credentials or scope are wrong.
            return client._redacted(AuthError(
                f"{error.detail} (check the connection's client id, secret and scope)",
                vendor=client.vendor, operation=self.operation, status=400,
                request_id=error.request_id, body=error.body))
        return error


class PrivateKeyJWT(CachedTokenAuth):
    """OAuth2 client-credentials grant authenticated by a signed client assertion (RFC 7523)
    instead of a secret: Entra ID and Defender apps with a certificate, Okta service apps.

    Each token request carries a fresh assertion for the token endpoint
    (engine/assertion.py); it is a credential until it expires, so the redactor learns it.
    """

    def __init__(self, token_url: str, client_id: str, signer: AssertionSigner, *,
                 scope: str | None = None, extra: Mapping[str, str] | None = None):
        super().__init__(token_url)
        self.client_id = client_id
        self.signer = signer
        self.scope = scope
        self.extra = dict(extra or {})

    def token_request(self, client: TokenClient) -> tuple[dict[str, str], dict[str, str]]:
        assertion = self.signer.sign(self.token_endpoint(client))
        client.redactor.add(assertion)
        form = {"grant_type": "client_credentials", **self.extra, "client_id": self.client_id,
                "client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion}
        if self.scope:
            form["scope"] = self.scope
        return form, {}

    def refused(self, client: TokenClient, response: requests.Response) -> VendorError:
        error = client.error_for(response, self.operation)
        body = error.body if isinstance(error.body, dict) else {}
        if body.get("error") == "invalid_dpop_proof":
            # Okta service apps may demand DPoP-bound tokens (RFC 9449); none are sent here.
            return client._redacted(AuthError(
                f"{error.detail} (the app requires DPoP proofs, which are not sent: turn off "
                "the app's \"Require DPoP header\" setting)", vendor=client.vendor,
                operation=self.operation, status=response.status_code,
                request_id=error.request_id, body=error.body))
        if response.status_code not in (400, 401) or body.get("error") not in \
                OAUTH_CREDENTIAL_ERRORS or "private_key" in error.detail:
            return error  # not the credentials, or the client has named its settings already
        detail = error.detail.removesuffix(" (check the connection's credentials)")
        return client._redacted(AuthError(
            f"{detail} (check the connection's client_id, that the app has the public key of "
            "private_key registered, and the scope)", vendor=client.vendor,
            operation=self.operation, status=response.status_code,
            request_id=error.request_id, body=error.body))
