"""Local stand-ins for a company network, for the egress and client-assertion tests: a
threaded forward proxy (CONNECT for HTTPS, absolute-form for HTTP) that records what went
through it and may demand credentials, and a mock server served over TLS by a private CA."""

from __future__ import annotations

import base64
import select
import socket
import socketserver
import ssl
import threading
from typing import Any
from urllib.parse import urlsplit

from crownguard.engine.mocks import MockServer


class ForwardProxy:
    """A forward proxy on 127.0.0.1. `hosts` maps the names it resolves (the vendor names a
    test uses, which the client itself cannot resolve) to loopback; `seen` holds each request
    line ("CONNECT host:port", "GET http://..."); `credentials` ("user:password") makes it
    answer 407 to anyone without them."""

    def __init__(self, hosts: dict[str, str] | None = None, credentials: str | None = None):
        self.hosts = {"localhost": "127.0.0.1", "127.0.0.1": "127.0.0.1", **(hosts or {})}
        self.credentials = credentials
        self.seen: list[str] = []
        self.proxy_authorizations: list[str] = []
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                proxy._handle(self.request)

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url_with(self, userinfo: str) -> str:
        return f"http://{userinfo}@127.0.0.1:{self.port}"

    def __enter__(self) -> ForwardProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handle(self, client: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(65536)
            if not chunk:
                return
            head += chunk
        header_block, _, rest = head.partition(b"\r\n\r\n")
        lines = header_block.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
        self.seen.append(f"{method} {target}")
        auth = headers.get("Proxy-Authorization", "")
        self.proxy_authorizations.append(auth)
        if self.credentials is not None:
            expected = "Basic " + base64.b64encode(self.credentials.encode()).decode()
            if auth != expected:
                client.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                               b'Proxy-Authenticate: Basic realm="corp"\r\n'
                               b"Content-Length: 0\r\nConnection: close\r\n\r\n")
                return
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
        else:
            parts = urlsplit(target)
            host, port = parts.hostname or "", str(parts.port or 80)
        address = self.hosts.get(host.strip("[]"))
        if address is None:
            client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n"
                           b"Connection: close\r\n\r\n")
            return
        upstream = socket.create_connection((address, int(port)), timeout=10)
        with upstream:
            if method == "CONNECT":
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                if rest:
                    upstream.sendall(rest)
            else:
                upstream.sendall(head)
            _relay(client, upstream)


def _relay(a: socket.socket, b: socket.socket) -> None:
    sockets = [a, b]
    while True:
        ready, _, _ = select.select(sockets, [], [], 10)
        if not ready:
            return
        for source in ready:
            data = source.recv(65536)
            if not data:
                return
            (b if source is a else a).sendall(data)


def serve_tls(mock: MockServer, context: ssl.SSLContext) -> MockServer:
    """Start `mock` and put its listening socket behind TLS (what werkzeug's ssl_context does);
    its URL is then https://<name>:<mock.port>."""
    mock.start()
    server: Any = mock._server
    server.socket = context.wrap_socket(server.socket, server_side=True)
    return mock
