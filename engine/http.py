"""The one HTTP layer every plugin uses.

One `requests.Session` per connection (pooled, no automatic retries, no redirects followed),
connect/read timeouts capped by the step's deadline, errors classified into the VendorError
tree (429, 5xx and transport errors retryable, carrying the vendor's Retry-After), OAuth2
client-credentials tokens cached until shortly before expiry and refreshed once after a 401,
and every error message scrubbed of the connection's secrets.

The layer never re-sends a request on its own except that single re-send after a token refresh:
retries belong to the step's retry policy.
"""

from __future__ import annotations

import base64
import email.utils
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter

from .errors import (
    AuthError,
    BadResponse,
    ConfigError,
    ConflictError,
    NotFoundError,
    RateLimited,
    ServerError,
    TransportError,
    VendorError,
)
from .secrets import Redactor, Secret, reveal

if TYPE_CHECKING:
    from .config import Connection

T = TypeVar("T")

DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_READ_TIMEOUT = 30.0
POOL_SIZE = 64
OAUTH_CREDENTIAL_ERRORS = frozenset({"invalid_client", "unauthorized_client", "invalid_scope",
                                     "invalid_grant"})
USER_AGENT = "crownguard/0.1"


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


def new_session() -> requests.Session:
    """A pooled session that never retries by itself."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=8, pool_maxsize=POOL_SIZE, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    # Proxy and netrc settings from the environment must not decide where secrets go.
    session.trust_env = False
    return session


def basic_auth_header(username: str, password: str) -> str:
    raw = f"{username}:{password}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


# --- authentication ---------------------------------------------------------------------------


class Auth:
    """Adds credentials to a request; `invalidate()` is called once after a 401."""

    def apply(self, headers: dict[str, str], client: VendorClient) -> None:
        raise NotImplementedError

    def invalidate(self) -> bool:
        """Forget cached credentials; True if a re-send could succeed."""
        return False


class NoAuth(Auth):
    def apply(self, headers: dict[str, str], client: VendorClient) -> None:
        return None


class HeaderAuth(Auth):
    """A static credential header: `Authorization: Bearer <token>`, `SSWS <token>`..."""

    def __init__(self, token: Secret | str, scheme: str = "Bearer",
                 header: str = "Authorization"):
        self.token = token
        self.scheme = scheme
        self.header = header

    def apply(self, headers: dict[str, str], client: VendorClient) -> None:
        value = reveal(self.token)
        headers[self.header] = f"{self.scheme} {value}" if self.scheme else value


class BasicAuth(Auth):
    def __init__(self, username: str, password: Secret | str):
        self.username = username
        self.password = password

    def apply(self, headers: dict[str, str], client: VendorClient) -> None:
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

    def token_request(self, client: VendorClient) -> tuple[dict[str, str], dict[str, str]]:
        """The form and the extra headers of one token request."""
        raise NotImplementedError

    def token_endpoint(self, client: VendorClient) -> str:
        if not self.token_url:
            raise ConfigError(f"connection '{client.connection.name}' has no token_url")
        return self.token_url

    def refused(self, client: VendorClient, response: requests.Response) -> VendorError:
        """The error for a non-2xx answer of the token endpoint."""
        return client.error_for(response, self.operation)

    def read_answer(self, client: VendorClient, body: Any, status: int) -> str:
        """The access token in a 2xx answer (BadResponse when there is none)."""
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise BadResponse("the token answer has no access_token", vendor=client.vendor,
                              operation=self.operation, status=status)
        return token

    # plumbing ----------------------------------------------------------------------------------

    def apply(self, headers: dict[str, str], client: VendorClient) -> None:
        headers["Authorization"] = f"Bearer {self._current(client)}"

    def invalidate(self) -> bool:
        with self._lock:
            self._token = None
            self._expires_at = 0.0
        return True

    def _current(self, client: VendorClient) -> str:
        with self._lock:
            fresh = self._expires_at is None or time.monotonic() < self._expires_at
            if self._token is None or not fresh:
                self._token, lifetime = self._fetch(client)
                self.fetches += 1
                self._expires_at = time.monotonic() + max(0.0, lifetime - self.EXPIRY_MARGIN)
            return self._token

    def _fetch(self, client: VendorClient) -> tuple[str, float]:
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

    def token_request(self, client: VendorClient) -> tuple[dict[str, str], dict[str, str]]:
        form = {"grant_type": "client_credentials", **self.extra}
        if self.scope:
            form["scope"] = self.scope
        if self.style == "basic":
            return form, {"Authorization": basic_auth_header(self.client_id,
                                                             reveal(self.client_secret))}
        form["client_id"] = self.client_id
        form["client_secret"] = reveal(self.client_secret)
        return form, {}

    def refused(self, client: VendorClient, response: requests.Response) -> VendorError:
        error = client.error_for(response, self.operation)
        body = error.body if isinstance(error.body, dict) else {}
        if response.status_code == 400 and body.get("error") in OAUTH_CREDENTIAL_ERRORS:
            # RFC 6749 5.2: a 400 that means the credentials or scope are wrong.
            return client._redacted(AuthError(
                f"{error.detail} (check the connection's client id, secret and scope)",
                vendor=client.vendor, operation=self.operation, status=400,
                request_id=error.request_id, body=error.body))
        return error


# --- the client base ----------------------------------------------------------------------------


class StepContext(Protocol):
    """What a client needs of the step it serves (an ActionContext): the time left, and a
    wait that the step's timeout and cancellation end."""

    def remaining(self) -> float | None: ...

    def check_deadline(self) -> None: ...

    def poll(self, probe: Callable[[], T | None], *, interval: float, max_wait: float,
             waiting_for: str, vendor: str) -> T: ...


class VendorClient:
    """Base for one vendor's API client. Subclasses set `vendor` and `connection_type`, build
    their `auth`, and may override `error_message` to read the vendor's error body."""

    vendor: ClassVar[str] = "http"
    connection_type: ClassVar[str] = "http"
    # The pace of `wait_for`, unless the connection sets poll_interval_seconds/max_wait_seconds.
    poll_interval: ClassVar[float] = 2.0
    max_wait: ClassVar[float] = 600.0
    request_id_headers: ClassVar[tuple[str, ...]] = ("X-Request-Id", "X-Cs-Traceid",
                                                     "request-id", "X-Okta-Request-Id",
                                                     "client-request-id")

    def __init__(self, connection: Connection, ctx: StepContext | None = None):
        self.connection = connection
        self.ctx = ctx
        self.settings = connection.settings
        self.redactor: Redactor = connection.redactor
        self.session: requests.Session = connection.cached("session", new_session)

    # subclasses --------------------------------------------------------------------------------

    def make_auth(self) -> Auth:
        """The connection's Auth; called once per connection and cached there."""
        return NoAuth()

    def error_message(self, body: Any, response: requests.Response) -> str:
        """A readable message from a vendor error body (common shapes understood)."""
        return describe_error_body(body) or response.reason or "request failed"

    # plumbing ----------------------------------------------------------------------------------

    @property
    def auth(self) -> Auth:
        return self.connection.cached("auth", self.make_auth)

    @property
    def base_url(self) -> str:
        return str(self.settings.get("base_url", "")).rstrip("/") + "/"

    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            # Only links the vendor gave us (pagination) on the connection's own host.
            if urlsplit(path).netloc != urlsplit(self.base_url).netloc:
                other = urlsplit(path).netloc
                raise BadResponse(f"refusing to follow a link to another host ({other})",
                                  vendor=self.vendor, operation="follow link")
            return path
        return urljoin(self.base_url, path.lstrip("/"))

    def timeouts(self, read: float | None = None) -> tuple[float, float]:
        connect = float(self.settings.get("connect_timeout_seconds", DEFAULT_CONNECT_TIMEOUT))
        read_t = float(read or self.settings.get("timeout_seconds", DEFAULT_READ_TIMEOUT))
        remaining = self.ctx.remaining() if self.ctx else None
        if remaining is not None:
            if remaining <= 0 and self.ctx is not None:
                self.ctx.check_deadline()
            connect, read_t = min(connect, remaining), min(read_t, remaining)
        return connect, read_t

    def send_raw(self, method: str, url: str, *, operation: str,
                 headers: Mapping[str, str] | None = None, timeout: float | None = None,
                 **kwargs: Any) -> requests.Response:
        """Send once; map transport failures to TransportError. No status handling."""
        try:
            return self.session.request(method, url, headers=dict(headers or {}),
                                        timeout=self.timeouts(timeout), allow_redirects=False,
                                        **kwargs)
        except requests.Timeout:
            raise self._redacted(TransportError("timed out waiting for the vendor",
                                                vendor=self.vendor, operation=operation)) from None
        except requests.RequestException as exc:
            reason = type(exc).__name__
            where = urlsplit(url).netloc
            raise self._redacted(TransportError(f"could not reach {where} ({reason})",
                                                vendor=self.vendor, operation=operation)) from None

    def wait_for(self, probe: Callable[[], T | None], waiting_for: str) -> T:
        """Call `probe` until it returns something other than None: how an action waits for
        the vendor's asynchronous work, at the connection's `poll_interval_seconds` and for at
        most its `max_wait_seconds` (the step's timeout also ends the wait)."""
        if self.ctx is None:
            raise ConfigError(f"{self.vendor}: waiting for {waiting_for} needs a step context")
        return self.ctx.poll(
            probe, interval=float(self.settings.get("poll_interval_seconds", self.poll_interval)),
            max_wait=float(self.settings.get("max_wait_seconds", self.max_wait)),
            waiting_for=waiting_for, vendor=self.vendor)

    def request(self, method: str, path: str, *, operation: str,
                params: Mapping[str, Any] | Iterable[tuple[str, Any]] | None = None,
                json_body: Any = None, data: Any = None,
                headers: Mapping[str, str] | None = None, timeout: float | None = None,
                ok: Iterable[int] = ()) -> requests.Response:
        """Send an authenticated request; raise the classified VendorError unless 2xx or in `ok`.

        A 401 triggers one token refresh and one re-send when the auth can refresh.
        """
        allowed = set(ok)
        refreshed = False
        while True:
            all_headers = {"Accept": "application/json", **(headers or {})}
            self.auth.apply(all_headers, self)
            kwargs: dict[str, Any] = {"params": params}
            if json_body is not None:
                kwargs["json"] = json_body
            if data is not None:
                kwargs["data"] = data
            response = self.send_raw(method, self.url(path), operation=operation,
                                     headers=all_headers, timeout=timeout, **kwargs)
            if response.status_code == 401 and not refreshed and self.auth.invalidate():
                refreshed = True
                continue
            if 200 <= response.status_code < 300 or response.status_code in allowed:
                return response
            raise self.error_for(response, operation)

    def request_json(self, method: str, path: str, *, operation: str, **kwargs: Any) -> Any:
        response = self.request(method, path, operation=operation, **kwargs)
        return self.parse_json(response, operation)

    def parse_json(self, response: requests.Response, operation: str) -> Any:
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            if not 200 <= response.status_code < 300:
                raise self.error_for(response, operation) from None
            raise self._redacted(BadResponse(
                "the vendor's answer is not valid JSON", vendor=self.vendor, operation=operation,
                status=response.status_code, request_id=self._request_id(response))) from None

    def _request_id(self, response: requests.Response) -> str | None:
        for name in self.request_id_headers:
            if response.headers.get(name):
                return response.headers[name]
        return None

    def error_for(self, response: requests.Response, operation: str) -> VendorError:
        """The classified, redacted error for a non-2xx response."""
        status = response.status_code
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text[:500]
        message = self.error_message(body, response) if body else (response.reason or "")
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        cls: type[VendorError]
        if status in (401, 403):
            cls = AuthError
            hint = ("check the connection's credentials" if status == 401
                    else "the credentials lack a permission this call needs")
            message = f"{message} ({hint})" if message else hint
        elif status == 404:
            cls = NotFoundError
        elif status == 429:
            cls = RateLimited
        elif status >= 500:
            cls = ServerError
        elif 300 <= status < 400:
            cls = ConflictError
            message = f"unexpected redirect to {response.headers.get('Location', '?')}"
        else:
            cls = ConflictError
        error = cls(message or f"HTTP {status}", vendor=self.vendor, operation=operation,
                    status=status, request_id=self._request_id(response),
                    retry_after=retry_after, body=self.redactor.redact_value(body))
        return self._redacted(error)

    def _redacted(self, error: VendorError) -> VendorError:
        error.args = tuple(self.redactor.redact(str(a)) for a in error.args)
        return error


def describe_error_body(body: Any) -> str:
    """The human message from the common vendor error shapes."""
    if isinstance(body, str):
        return body.strip()[:300]
    if not isinstance(body, dict):
        return ""
    for key in ("errorSummary", "error_description", "message", "detail", "title"):
        value = body.get(key)
        if isinstance(value, str) and value:
            extra = ""
            causes = body.get("errorCauses")
            if isinstance(causes, list) and causes:
                extra = "; " + "; ".join(str(c.get("errorSummary", c)) for c in causes
                                         if isinstance(c, dict))
            return value + extra
    error = body.get("error")
    if isinstance(error, dict):
        inner = describe_error_body(error)
        code = error.get("code")
        if code and inner and str(code) not in inner:
            return f"{code}: {inner}"
        return inner or str(code or "")
    if isinstance(error, str):
        return error
    errors = body.get("errors") or body.get("errorMessages")
    if isinstance(errors, list) and errors:
        parts = [describe_error_body(e) if isinstance(e, dict) else str(e) for e in errors]
        return "; ".join(p for p in parts if p)
    if isinstance(errors, dict) and errors:
        return "; ".join(f"{k}: {v}" for k, v in errors.items())
    return json.dumps(body)[:300]
