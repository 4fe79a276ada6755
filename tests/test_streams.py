"""engine.streams.read_head: the head of a streamed download, and a download that breaks
off named as such (a retryable TransportError), for every plugin that reads file heads."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from crownguard.engine import TransportError, VendorClient, read_head
from crownguard.engine.config import Connections
from crownguard.engine.secrets import Redactor


@pytest.fixture
def server() -> Iterator[Any]:
    """Answers each connection with a declared 1,000,000-byte body; `cut` bytes are sent and
    the connection closed (None: all of it)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    state: dict[str, Any] = {"cut": None, "sent": 0}

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                             b"Content-Length: 1000000\r\n\r\n")
                body = bytes(range(256)) * 3907
                try:
                    conn.sendall(body[:state["cut"]] if state["cut"] else body[:1000000])
                except OSError:
                    pass

    threading.Thread(target=serve, daemon=True).start()
    state["url"] = f"http://127.0.0.1:{listener.getsockname()[1]}"
    yield state
    listener.close()


def client(url: str) -> VendorClient:
    return VendorClient(Connections({"http": {"base_url": url}}, Redactor([])).get("http"))


def test_the_head_is_cut_at_the_limit(server: Any) -> None:
    vendor = client(server["url"])
    with vendor.stream("GET", vendor.url("/f"), operation="download") as body:
        head = read_head(body, 1000)
    assert head == (bytes(range(256)) * 4)[:1000]


def test_a_download_that_breaks_off_is_a_retryable_transport_error(server: Any) -> None:
    server["cut"] = 300
    vendor = client(server["url"])
    with pytest.raises(TransportError, match=r"download \(HTTP 200\): the download broke off after \d+ bytes") as info:
        with vendor.stream("GET", vendor.url("/f"), operation="download") as body:
            read_head(body, 65536)
    assert info.value.retryable
