"""The one HTTP layer every plugin uses (credentials: engine/auth.py).

One `requests.Session` per connection (pooled, no automatic retries, no redirects followed),
every exchange (connect, headers, body) bounded by one deadline, the connection's
`timeout_seconds` capped by the step's (engine/transport.py ends it and frees the thread), every
body read within the connection's `max_response_bytes`, errors classified into the VendorError
tree (429, 5xx and transport errors retryable, carrying the vendor's Retry-After), OAuth2
client-credentials tokens cached until shortly before expiry and refreshed once after a 401,
and every error message scrubbed of the connection's secrets.

The layer never re-sends a request on its own except that single re-send after a token refresh:
retries belong to the step's retry policy.
"""

from __future__ import annotations

import email.utils
import json
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar
from urllib.parse import urljoin

import requests

from .auth import Auth, NoAuth
from .egress import (
    configure_session,
    egress_failure,
    learn_proxy_credentials,
    request_proxies,
)
from .errors import (
    AuthError,
    BadResponse,
    BodyTooLarge,
    ConfigError,
    ConflictError,
    Expired,
    HostNotAllowed,
    NotFoundError,
    RateLimited,
    ServerError,
    TransportError,
    VendorError,
)
from .ratelimit import hold, pace
from .secrets import Redactor, redact_logger, reveal
from .transport import (
    Exchange,
    Watchdog,
    iter_body,
    keep_body,
    read_body,
)
from .urls import Origin, UnsafeURL, origin_of

if TYPE_CHECKING:
    from .config import Connection

T = TypeVar("T")
E = TypeVar("E", bound=Exception)
_ABSOLUTE = re.compile(r"^[\x00-\x20]*[A-Za-z][A-Za-z0-9+.-]*:")  # has a scheme, as urljoin sees it

DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_READ_TIMEOUT = 30.0  # the whole exchange, not one read
DEFAULT_MAX_RESPONSE_BYTES = 8 * 1024 * 1024
# A timeout this close to the step's deadline is the step's timeout, not the vendor's.
STEP_END_SLACK = 0.05
POOL_SIZE = 64
USER_AGENT = "crownguard/0.1"
ADAPTER_OPTIONS: dict[str, Any] = {"pool_connections": 8, "pool_maxsize": POOL_SIZE,
                                   "max_retries": 0}


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


def new_session(settings: Mapping[str, Any] | None = None, name: str = "") -> requests.Session:
    """A pooled session that never retries by itself, whose request lines (urllib3 logs them
    at DEBUG, query strings and all) pass through the redactors, with the connection's egress
    settings (proxy, CA bundle, trust store, client certificate: engine/egress.py)."""
    redact_logger("urllib3.connectionpool")
    session = requests.Session()
    configure_session(session, settings or {}, ADAPTER_OPTIONS, name)
    session.headers["User-Agent"] = USER_AGENT
    # Proxy and netrc settings from the environment must not decide where secrets go; a
    # connection's `trust_env: true` lets in the proxies and CA bundle (never netrc).
    session.trust_env = False
    return session


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

    vendor: str = "http"
    connection_type: ClassVar[str] = "http"
    # The pace of `wait_for`, unless the connection sets poll_interval_seconds/max_wait_seconds.
    poll_interval: ClassVar[float] = 2.0
    max_wait: ClassVar[float] = 600.0
    # Where the vendor puts the id of a request (quoted in errors); a client names its own.
    request_id_headers: ClassVar[tuple[str, ...]] = ("X-Request-Id", "Request-Id")

    def __init__(self, connection: Connection, ctx: StepContext | None = None):
        self.connection = connection
        self.ctx = ctx
        self.settings = connection.settings
        self.redactor: Redactor = connection.redactor
        self.session: requests.Session = connection.cached(
            "session", lambda: new_session(connection.settings, connection.name))

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
        """The URL of an API path, or a link the vendor gave (a next page, a Location) when it
        goes to the connection's own origin: credentials never follow a link elsewhere."""
        if not _ABSOLUTE.match(path):
            return urljoin(self.base_url, path.lstrip("/"))
        try:
            origin = origin_of(path)
        except UnsafeURL as exc:
            raise self._redacted(BadResponse(f"refusing to follow an unsafe link ({_shown(path)}: "
                                             f"it {exc})", vendor=self.vendor,
                                             operation="follow link")) from None
        if origin != _origin_or_none(self.base_url):
            where = str(origin).split("://", 1)[1]
            raise self._redacted(BadResponse(f"refusing to follow a link to another host "
                                             f"({where})", vendor=self.vendor,
                                             operation="follow link"))
        return path

    def allowed_origins(self) -> frozenset[Origin]:
        """Where this client may send requests: the origins of the connection's configured
        URLs (`base_url`, `token_url`, any `*_url`). Outbound hosts come from configuration."""
        def make() -> frozenset[Origin]:
            found = set()
            for key, value in self.settings.items():
                if key == "url" or key.endswith("_url"):
                    try:
                        found.add(origin_of(str(reveal(value))))
                    except UnsafeURL:
                        continue
            return frozenset(found)

        return self.connection.cached(f"origins:{type(self).__qualname__}", make)

    def check_target(self, url: str) -> None:
        """Refuse, before anything is sent, a request whose scheme, host or port is not one the
        connection allows, read the way the transport will read it."""
        try:
            origin = origin_of(url)
        except UnsafeURL as exc:
            raise self._redacted(HostNotAllowed(
                f"{self.vendor}: refusing to send to {_shown(url)}: the URL {exc}")) from None
        if origin not in self.allowed_origins():
            raise self._redacted(HostNotAllowed(
                f"{self.vendor}: refusing to send to {origin}: not a host of the "
                f"'{self.connection.name}' connection"))

    @property
    def watchdog(self) -> Watchdog:
        """The connection's watchdog: it ends every exchange of its steps at the deadline."""
        return self.connection.cached("watchdog", Watchdog)

    @property
    def max_response_bytes(self) -> int:
        return int(self.settings.get("max_response_bytes", DEFAULT_MAX_RESPONSE_BYTES))

    def budget(self, timeout: float | None = None) -> float:
        """Seconds for one whole exchange (connect, headers, body): the call's `timeout`, else
        the connection's `timeout_seconds`, and never past the step's deadline."""
        total = float(timeout or self.settings.get("timeout_seconds", DEFAULT_READ_TIMEOUT))
        remaining = self.ctx.remaining() if self.ctx else None
        if remaining is not None:
            if remaining <= 0 and self.ctx is not None:
                self.ctx.check_deadline()
            total = min(total, remaining)
        return max(total, 0.001)

    def timeouts(self, read: float | None = None) -> tuple[float, float]:
        """(connect, read) socket timeouts: each within the exchange's budget."""
        budget = self.budget(read)
        connect = float(self.settings.get("connect_timeout_seconds", DEFAULT_CONNECT_TIMEOUT))
        return min(connect, budget), budget

    def send_raw(self, method: str, url: str, *, operation: str,
                 headers: Mapping[str, str] | None = None, timeout: float | None = None,
                 **kwargs: Any) -> requests.Response:
        """Send once and read the answer, all of it within one deadline (`budget`) and at most
        `max_response_bytes` of body; map transport failures to TransportError and an answer
        over the limit to BadResponse. No status handling. The target is checked first
        (`check_target`): nothing goes to a host not configured."""
        self.check_target(url)
        pace(self.connection, self.vendor, operation, self.budget())
        connect, budget = self.timeouts(timeout)
        exchange = Exchange(self.watchdog, time.monotonic() + budget)
        with exchange:
            response = self._open(exchange, method, url, operation, headers, (connect, budget),
                                  kwargs)
            try:
                body = read_body(response, exchange, self.max_response_bytes)
            except Exception as exc:
                response.close()  # half read: the connection is not reused
                raise self._body_error(exc, exchange, response, url, operation, budget) from None
        keep_body(response, body)
        response.close()  # back to the pool, after the exchange let go of its socket
        return response

    @contextmanager
    def stream(self, method: str, url: str, *, operation: str,
               headers: Mapping[str, str] | None = None,
               **kwargs: Any) -> Iterator[BodyStream]:
        """Send once and hand the answer over unread, for a body too large to hold (a model
        file to hash): the headers come within the exchange's budget, the body is read with
        `BodyStream.chunks()` until the step's deadline, without a size limit. An answer that
        is not 2xx is read (within the limit) before it is handed over, for `error_for`."""
        self.check_target(url)
        pace(self.connection, self.vendor, operation, self.budget())
        connect, budget = self.timeouts()
        exchange = Exchange(self.watchdog, time.monotonic() + budget)
        with exchange:
            response = self._open(exchange, method, url, operation, headers, (connect, budget),
                                  kwargs)
            try:
                if not 200 <= response.status_code < 300:
                    try:
                        body = read_body(response, exchange, self.max_response_bytes)
                    except Exception as exc:
                        raise self._body_error(exc, exchange, response, url, operation,
                                               budget) from None
                    keep_body(response, body)
                remaining = self.ctx.remaining() if self.ctx is not None else None
                exchange.extend(None if remaining is None else time.monotonic() + remaining)
                yield BodyStream(self, response, exchange, operation, budget)
            finally:
                exchange.finish()
                response.close()

    def _open(self, exchange: Exchange, method: str, url: str, operation: str,
              headers: Mapping[str, str] | None, timeouts: tuple[float, float],
              kwargs: dict[str, Any]) -> requests.Response:
        proxies = request_proxies(self.settings, url)
        if proxies:
            for proxy in proxies.values():
                learn_proxy_credentials(proxy, self.redactor)  # HTTPS_PROXY's are secrets too
            kwargs = {**kwargs, "proxies": proxies}
        try:
            return self.session.request(method, url, headers=dict(headers or {}),
                                        timeout=timeouts, allow_redirects=False, stream=True,
                                        **kwargs)
        except requests.RequestException as exc:
            raise self._transport_error(exc, exchange, url, operation, timeouts[1]) from None

    def _transport_error(self, exc: BaseException, exchange: Exchange, url: str,
                         operation: str, budget: float) -> TransportError:
        if exchange.expired or isinstance(exc, requests.Timeout | Expired):
            remaining = self.ctx.remaining() if self.ctx is not None else None
            if self.ctx is not None and remaining is not None and remaining <= STEP_END_SLACK:
                # The exchange was cut short by the step's own deadline: say that (the
                # StepTimeout naming timeout_seconds), not that the vendor was slow.
                time.sleep(max(remaining, 0.0))
                self.ctx.check_deadline()
            return self._redacted(TransportError(
                f"timed out waiting for the vendor (the whole exchange may take {budget:g}s)",
                vendor=self.vendor, operation=operation))
        message = egress_failure(exc, self.settings, url)
        return self._redacted(TransportError(message, vendor=self.vendor, operation=operation))

    def _body_error(self, exc: BaseException, exchange: Exchange, response: requests.Response,
                    url: str, operation: str, budget: float) -> BaseException:
        if isinstance(exc, BodyTooLarge):
            size = (f"its Content-Length is {exc.size}" if exc.declared
                    else f"reading stopped after {exc.size}")
            return self._redacted(BadResponse(
                f"the answer is larger than the connection's max_response_bytes "
                f"({exc.limit} bytes): {size} bytes", vendor=self.vendor, operation=operation,
                status=response.status_code, request_id=self._request_id(response)))
        if isinstance(exc, requests.RequestException | Expired):
            return self._transport_error(exc, exchange, url, operation, budget)
        return exc

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
            error = self.error_for(response, operation)
            if isinstance(error, RateLimited):  # the vendor's wait holds the whole connection
                hold(self.connection, error.retry_after)
            raise error

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
            body: Any = self.redactor.redact_value(response.json())
        except ValueError:
            # Redacted whole before it is cut: a vendor page echoing a header must not leave
            # all but the last characters of a token behind.
            body = self.redactor.cut(response.text, 500)
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
                    retry_after=retry_after, body=body)
        return self._redacted(error)

    def _redacted(self, error: E) -> E:
        error.args = tuple(self.redactor.redact(str(a)) for a in error.args)
        return error


class BodyStream:
    """An answer handed over unread by `VendorClient.stream`: its body, chunk by chunk."""

    def __init__(self, client: VendorClient, response: requests.Response, exchange: Exchange,
                 operation: str, budget: float):
        self.client, self.response, self.exchange = client, response, exchange
        self.operation, self.budget = operation, budget

    def chunks(self, chunk_bytes: int = 1024 * 1024) -> Iterator[bytes]:
        """The body; at the step's deadline StepTimeout (or a timeout TransportError), and a
        broken download raises requests' error for the caller to name."""
        try:
            yield from iter_body(self.response, self.exchange, chunk_bytes)
        except (Expired, requests.RequestException) as exc:
            if not self.exchange.expired and not isinstance(exc, Expired):
                raise
            if self.client.ctx is not None:
                self.client.ctx.check_deadline()
            raise self.client._transport_error(exc, self.exchange, self.response.url,
                                               self.operation, self.budget) from None


def _origin_or_none(url: str) -> Origin | None:
    try:
        return origin_of(url)
    except UnsafeURL:
        return None


def _shown(url: str) -> str:
    """A URL for a message: scheme, host and path, no query (where tokens travel), cut short."""
    cut = url.split("?", 1)[0].split("#", 1)[0]
    text = cut.encode("unicode_escape").decode("ascii")
    return text if len(text) <= 120 else text[:117] + "..."


def describe_error_body(body: Any) -> str:
    """The human message from the common vendor error shapes."""
    if isinstance(body, str):
        return body.strip()[:300]
    if not isinstance(body, dict):
        return ""
    # The shapes many APIs share (RFC 6749 and RFC 7807 among them); a client reads its
    # vendor's own shape in its error_message (Okta's errorSummary, Jira's errorMessages).
    for key in ("error_description", "message", "detail", "title"):
        value = body.get(key)
        if isinstance(value, str) and value:
            return value
    error = body.get("error")
    if isinstance(error, dict):
        inner = describe_error_body(error)
        code = error.get("code")
        if code and inner and str(code) not in inner:
            return f"{code}: {inner}"
        return inner or str(code or "")
    if isinstance(error, str):
        return error
    errors = body.get("errors")
    if isinstance(errors, list) and errors:
        parts = [describe_error_body(e) if isinstance(e, dict) else str(e) for e in errors]
        return "; ".join(p for p in parts if p)
    if isinstance(errors, dict) and errors:
        return "; ".join(f"{k}: {v}" for k, v in errors.items())
    return json.dumps(body)[:300]
