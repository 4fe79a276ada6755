"""HttpClient: the engine's HTTP layer for arbitrary URLs, kept to the hosts that the `http`
connection's `allowed_hosts` names (read the way the transport reads them), with the named
credentials of the connection sent only to the hosts each is bound to."""

from __future__ import annotations

from typing import Any

from crownguard.engine import (
    ActionError,
    HostNotAllowed,
    UnsafeURL,
    VendorClient,
    host_allowed,
    origin_of,
    reveal,
)

from .connection import DEFAULT_HEADER


class HttpClient(VendorClient):
    """A client for arbitrary allowed URLs (the `http` connection)."""

    vendor = "http"
    connection_type = "http"

    def url(self, path: str) -> str:
        return path

    def check_target(self, url: str) -> None:
        """Only hosts of `connections.http.allowed_hosts`, read as the transport reads them."""
        refuse_unless_allowed(url, self.allowed_hosts)

    @property
    def allowed_hosts(self) -> list[str]:
        return list(self.settings.get("allowed_hosts") or [])

    def credential_header(self, name: str, url: str, step_id: str) -> tuple[str, str]:
        """The (header, value) of credential `name` for a request to `url`. Refused, with
        nothing sent, unless `url`'s host is one the credential is bound to (its `hosts`, by
        default the connection's `allowed_hosts`)."""
        credentials: dict[str, Any] = self.settings.get("credentials") or {}
        spec = credentials.get(name)
        if not isinstance(spec, dict):
            known = ", ".join(sorted(credentials)) or "none"
            raise ActionError(f"core.http_request: step '{step_id}' names credential "
                              f"'{name}', which connections.http.credentials of the connections "
                              f"file does not have (configured: {known})")
        hosts = list(spec.get("hosts") or self.allowed_hosts)
        if not host_allowed(url, hosts):
            raise HostNotAllowed(f"core.http_request: credential '{name}' is not sent to "
                                 f"{_where(url)}: it is bound to {', '.join(hosts)} "
                                 f"(connections.http.credentials.{name}.hosts)")
        value = str(reveal(spec["value"]))
        # Known to the redactor before it is sent, even when it was written literally in the
        # connections file: an echo of it (an error page, a response body) is masked.
        self.redactor.add(value)
        return str(spec.get("header") or DEFAULT_HEADER), value


def refuse_unless_allowed(url: str, allowed: list[str]) -> None:
    if not host_allowed(url, allowed):
        raise HostNotAllowed(f"core.http_request: {_where(url)} is not in "
                             "connections.http.allowed_hosts of the connections file")


def _where(url: str) -> str:
    try:
        return f"host '{origin_of(url)}'"
    except UnsafeURL as exc:
        return f"the URL (it {exc})"
