"""Credentials stay on their vendor's host, and the allow-list means what it says: every URL is
read the way the transport reads it, and anything parsers could read differently is refused."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug import Request

from crownguard.engine import (
    ActionError,
    HeaderAuth,
    HostNotAllowed,
    MockServer,
    Origin,
    UnsafeURL,
    VendorClient,
    host_allowed,
    origin_of,
    route,
)
from crownguard.engine.config import Connections
from crownguard.engine.http import new_session

TOKEN = "tok-4f9a8b7c6d5e4f3a2b1c"


class Recorder(MockServer):
    """A vendor (or an attacker's host) that records every call and answers a page."""

    def reset_state(self) -> None:
        self.next_link: str | None = None

    @route("GET", "/items")
    def items(self, request: Request) -> Any:
        return {"items": [1], "next": self.next_link}

    @route("GET", "/anything")
    def anything(self, request: Request) -> Any:
        return {"ok": True}


class PagingClient(VendorClient):
    vendor = "pager"

    def make_auth(self) -> HeaderAuth:
        return HeaderAuth(TOKEN)

    def all_pages(self) -> list[Any]:
        found: list[Any] = []
        path: str | None = "items"
        while path:
            body = self.request_json("GET", path, operation="list items")
            found += body["items"]
            path = body["next"]
        return found


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[Recorder, Recorder]]:
    vendor, other = Recorder(), Recorder()
    vendor.start()
    other.start()
    yield vendor, other
    vendor.stop()
    other.stop()


@pytest.fixture
def vendor_and_other(servers: tuple[Recorder, Recorder]) -> tuple[Recorder, Recorder]:
    for server in servers:
        with server.state_lock:
            server.reset_state()
            server.calls.clear()
    return servers


def _client(base_url: str) -> PagingClient:
    connections = Connections({"pager": {"base_url": base_url, "token": TOKEN}})
    connections.redactor.add(TOKEN)
    return PagingClient(connections.get("pager"))


def _link_forms(other: str) -> list[str]:
    """Every way seen of writing a next-page link to `other` (host:port)."""
    return [
        f"http://{other}/anything",
        f"HTTP://{other}/anything",
        f"Http://{other}/anything",
        f" http://{other}/anything",
        f"\thttp://{other}/anything",
        f"\nhttp://{other}/anything",
        f"\x00http://{other}/anything",
        f"\x7fhttp://{other}/anything",
        f"//{other}/anything",
        f"http:\\\\{other}/anything",
        f"http://{other}\\@127.0.0.1/anything",
        f"http://x@{other}/anything",
        f"https://{other}/anything",
        f"ftp://{other}/anything",
        f"file:///etc/passwd#{other}",
    ]


@pytest.mark.parametrize("index", range(len(_link_forms("h:1"))))
def test_no_next_link_form_takes_the_token_to_another_host(
        vendor_and_other: tuple[Recorder, Recorder], index: int) -> None:
    vendor, other = vendor_and_other
    vendor.next_link = _link_forms(other.base_url.split("://", 1)[1])[index]
    client = _client(vendor.base_url)
    try:
        client.all_pages()
    except ActionError as exc:  # refused, or (scheme-relative) kept on the vendor's host
        assert TOKEN not in str(exc)
    assert other.calls == [], f"{vendor.next_link!r} reached the other host"
    assert all(TOKEN not in str(call.headers) for call in other.calls)


def test_a_link_on_the_vendors_own_host_is_followed(
        vendor_and_other: tuple[Recorder, Recorder]) -> None:
    vendor, _ = vendor_and_other
    vendor.next_link = None
    first = vendor.base_url.upper().replace("HTTP://", "http://")  # host case does not matter
    with vendor.state_lock:
        vendor.next_link = f"{first}/anything-else"
    client = _client(vendor.base_url)
    with pytest.raises(Exception):
        client.all_pages()
    assert [c.path for c in vendor.calls] == ["/items", "/anything-else"]


def test_a_vendor_client_sends_only_to_configured_hosts(
        vendor_and_other: tuple[Recorder, Recorder]) -> None:
    vendor, other = vendor_and_other
    client = _client(vendor.base_url)
    with pytest.raises(HostNotAllowed, match="not a host of the 'pager' connection"):
        client.send_raw("GET", f"{other.base_url}/anything", operation="probe")
    assert other.calls == []


@pytest.mark.parametrize(("url", "origin"), [
    ("https://Hooks.Example.com/x", Origin("https", "hooks.example.com", 443)),
    ("HTTP://hooks.example.com:8080", Origin("http", "hooks.example.com", 8080)),
    ("http://[::1]:9000/x", Origin("http", "::1", 9000)),
    ("https://bücher.example/x", Origin("https", "xn--bcher-kva.example", 443)),
])
def test_origin_of(url: str, origin: Origin) -> None:
    assert origin_of(url) == origin


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:18081\\@127.0.0.1:18080/",
    "http://user:pw@hooks.example.com/",
    "http://hooks.example.com@evil.example/",
    " http://hooks.example.com/",
    "http://hooks.example.com/\r\nHost: evil",
    "http://hooks.example.com\t.evil/",
    "javascript:alert(1)",
    "ftp://hooks.example.com/",
    "http:///nohost",
    "http://hooks.example.com:99999/",
    "",
])
def test_unsafe_urls_are_refused(url: str) -> None:
    with pytest.raises(UnsafeURL):
        origin_of(url)
    assert host_allowed(url, ["hooks.example.com", "127.0.0.1", "evil.example"]) is False


@pytest.mark.parametrize(("url", "allowed", "ok"), [
    ("https://hooks.example.com/x", ["hooks.example.com"], True),
    ("https://hooks.example.com:8443/x", ["hooks.example.com"], True),   # any port
    ("HTTPS://HOOKS.example.com/x", ["hooks.example.com"], True),
    ("https://evil.example.com/x", ["hooks.example.com"], False),
    ("https://hooks.example.com.evil.io/x", ["hooks.example.com"], False),
    ("https://hooks.example.com@evil.io/x", ["hooks.example.com"], False),
    ("https://internal.example.com.evil.io/x", ["*.internal.example.com"], False),
    ("http://127.0.0.1/x", ["127.0.0.1:8080"], False),
    ("https://hooks.example.com/x", [], False),
    ("https://a.internal.example.com/x", ["*.internal.example.com"], True),
    ("https://internal.example.com/x", ["*.internal.example.com"], False),
    ("http://127.0.0.1:8080/x", ["127.0.0.1:8080"], True),
    ("http://127.0.0.1:9090/x", ["127.0.0.1:8080"], False),
    ("http://[::1]:8080/x", ["[::1]:8080"], True),
    ("http://[::1]:8081/x", ["[::1]:8080"], False),
])
def test_allow_list_entries(url: str, allowed: list[str], ok: bool) -> None:
    assert host_allowed(url, allowed) is ok


# --- differential: the host the check allowed is the host the connection was made to ----------

@st.composite
def _urls(draw: st.DrawFn, ports: tuple[int, int]) -> str:
    """URLs that put the allowed and the other host:port side by side with the separators on
    which parsers are known to disagree."""
    allowed, other = ports
    hosts = [f"127.0.0.1:{allowed}", f"localhost:{allowed}", f"127.0.0.1:{other}",
             f"localhost:{other}", "127.0.0.1", f"[::1]:{allowed}"]
    separators = ["", "\\@", "@", "#@", "?@", "/", "\\", "%40", ":@", ";", "%2f@", "\t@", " @",
                  "\\\\", "/@", "&@"]
    scheme = draw(st.sampled_from(["http://", "HTTP://", "hTtP://", " http://", "\thttp://",
                                   "http:\\\\", "http:/", "http:"]))
    first = draw(st.sampled_from(hosts))
    parts = [scheme, first]
    for _ in range(draw(st.integers(0, 2))):
        parts += [draw(st.sampled_from(separators)), draw(st.sampled_from(hosts))]
    parts.append(draw(st.sampled_from(["", "/", "/anything", "/x?y=1", "#frag", "\\x"])))
    return "".join(parts)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_allowed_urls_reach_only_the_allowed_host(servers: tuple[Recorder, Recorder],
                                                   data: st.DataObject) -> None:
    allowed_server, other_server = servers
    allowed_port = int(allowed_server.base_url.rsplit(":", 1)[1])
    other_port = int(other_server.base_url.rsplit(":", 1)[1])
    url = data.draw(_urls((allowed_port, other_port)))
    if not host_allowed(url, [f"127.0.0.1:{allowed_port}", f"localhost:{allowed_port}"]):
        return
    before, reached = len(other_server.calls), len(allowed_server.calls)
    session = new_session()
    try:
        session.get(url, timeout=2, allow_redirects=False)
    finally:
        session.close()
    assert len(other_server.calls) == before, f"{url!r} was allowed but reached the other port"
    assert len(allowed_server.calls) == reached + 1, f"{url!r} did not reach the allowed host"
