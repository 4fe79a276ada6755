"""Where a request really goes: a URL read the way the transport will read it.

Every check of an outbound URL (a vendor's next-page link, a `core.http_request` target against
`allowed_hosts`) must decide on the host the connection is then made to. Parsers disagree on
odd URLs (`HTTP://other`, leading whitespace, `http://a\\@b/`, userinfo, control characters),
so `origin_of` reads a URL with requests' own preparation and urllib3's parser, the pair that
sends it, and refuses any URL that the standard library would read differently or that holds
a character on which parsers are known to disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from urllib3.util import parse_url

from .errors import UnsafeURL

DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, order=True)
class Origin:
    """Scheme, host and port: where a connection is made (host lower-case, IDNA-encoded)."""

    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = DEFAULT_PORTS.get(self.scheme)
        return f"{self.scheme}://{host}" + ("" if self.port == default else f":{self.port}")


def _suspicious(url: str) -> str | None:
    for char in url:
        if ord(char) <= 0x20 or ord(char) == 0x7F:
            return "whitespace or a control character"
    if "\\" in url:
        return "a backslash"
    return None


def origin_of(url: str) -> Origin:
    """The origin the transport will connect to for `url`; UnsafeURL when it is not an
    http(s) URL with a host, carries userinfo, or could be read as another host."""
    if not isinstance(url, str) or not url:
        raise UnsafeURL("is empty")
    problem = _suspicious(url)
    if problem:
        raise UnsafeURL(f"holds {problem}")
    try:
        prepared = requests.Request("GET", url).prepare().url or ""
        parsed = parse_url(prepared)
        plain = urlsplit(url)
        plain_port = plain.port
    except (requests.RequestException, ValueError) as exc:
        raise UnsafeURL(f"cannot be parsed ({type(exc).__name__})") from None
    scheme = (parsed.scheme or "").lower()
    if scheme not in DEFAULT_PORTS:
        raise UnsafeURL(f"has scheme '{scheme or 'none'}' (only http and https are sent)")
    if parsed.auth is not None or "@" in plain.netloc:
        raise UnsafeURL("carries user information before the host")
    host = (parsed.host or "").lower().strip("[]")
    if not host:
        raise UnsafeURL("names no host")
    port = parsed.port or DEFAULT_PORTS[scheme]
    # The standard library's reading must agree, else some parser on the way reads another host.
    plain_host = (plain.hostname or "").lower()
    if plain_host != host and _idna(plain_host) != host:
        raise UnsafeURL("is read as different hosts by different parsers")
    if (plain_port or DEFAULT_PORTS[scheme]) != port or plain.scheme.lower() != scheme:
        raise UnsafeURL("is read as different ports or schemes by different parsers")
    return Origin(scheme, host, port)


def _idna(host: str) -> str:
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host


def host_allowed(url: str, allowed: list[str]) -> bool:
    """Whether an allow-list (`connections.http.allowed_hosts`) admits the host the transport
    will connect to for `url`. Entries are host names (any port), `host:port` (that port only),
    `[v6]:port`, or `*.domain` (subdomains). An unsafe URL is never allowed."""
    try:
        origin = origin_of(url)
    except UnsafeURL:
        return False
    for raw in allowed:
        entry = raw.lower().strip()
        port: int | None = None
        if entry.startswith("["):
            name, _, rest = entry[1:].partition("]")
            entry = name
            if rest.startswith(":") and rest[1:].isdigit():
                port = int(rest[1:])
        elif entry.count(":") == 1:
            name, _, text = entry.partition(":")
            if not text.isdigit():
                continue
            entry, port = name, int(text)
        if port is not None and port != origin.port:
            continue
        if entry.startswith("*."):
            if origin.host.endswith(entry[1:]) and origin.host != entry[2:]:
                return True
        elif origin.host == entry or (_idna(entry) == origin.host):
            return True
    return False


def same_origin(url: str, other: str) -> bool:
    """Both URLs go to the same scheme, host and port (False when either is unsafe)."""
    try:
        return origin_of(url) == origin_of(other)
    except UnsafeURL:
        return False
