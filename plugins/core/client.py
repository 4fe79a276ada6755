"""HttpClient: the engine's HTTP layer for arbitrary URLs, kept to the hosts that the `http`
connection's `allowed_hosts` names (read the way the transport reads them)."""

from __future__ import annotations

from crownguard.engine import HostNotAllowed, UnsafeURL, VendorClient, host_allowed, origin_of


class HttpClient(VendorClient):
    """A client for arbitrary allowed URLs (the `http` connection)."""

    vendor = "http"
    connection_type = "http"

    def url(self, path: str) -> str:
        return path

    def check_target(self, url: str) -> None:
        """Only hosts of `connections.http.allowed_hosts`, read as the transport reads them."""
        refuse_unless_allowed(url, list(self.settings.get("allowed_hosts") or []))


def refuse_unless_allowed(url: str, allowed: list[str]) -> None:
    if not host_allowed(url, allowed):
        raise HostNotAllowed(f"core.http_request: {_where(url)} is not in "
                             "connections.http.allowed_hosts of the connections file")


def _where(url: str) -> str:
    try:
        return f"host '{origin_of(url)}'"
    except UnsafeURL as exc:
        return f"the URL (it {exc})"
