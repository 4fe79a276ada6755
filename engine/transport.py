"""Exchanges under one deadline: the transport beneath VendorClient (engine/http.py).

A socket timeout bounds each read, not an answer: a vendor (or anything in between) that sends
a byte every second keeps a read alive forever. Every request is therefore one `Exchange` with
a deadline for the whole of it (connect, headers, body). The session's connections tell the
exchange in progress on their thread which socket they use; a `Watchdog` thread shuts that
socket down at the deadline, so a blocked read returns at once, the worker thread is free and
nothing keeps reading in the background. Bodies are read here too, counted against a size
limit (Content-Length first, then every chunk), so an answer is never held past it.
"""

from __future__ import annotations

import heapq
import itertools
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from .errors import BodyTooLarge, Expired

CHUNK_BYTES = 64 * 1024
_current = threading.local()  # the exchange this thread is performing, if any


class Exchange:
    """One request and its answer, with a deadline (monotonic seconds) for all of it."""

    def __init__(self, watchdog: Watchdog, deadline: float | None):
        self.watchdog = watchdog
        self.deadline = deadline
        self.expired = False
        self._done = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def __enter__(self) -> Exchange:
        _current.exchange = self
        if self.deadline is not None:
            self.watchdog.watch(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self.finish()

    def attach(self, sock: socket.socket | None) -> None:
        """A socket this exchange reads or writes: shut down when the deadline passes."""
        if sock is None:
            return
        with self._lock:
            if self._done or any(s is sock for s in self._sockets):
                return
            self._sockets.append(sock)
            if self.expired:
                _shut(sock)

    def extend(self, deadline: float | None) -> None:
        """Move the deadline (a streamed body is bounded by the step, not by one request)."""
        with self._lock:
            self.deadline = deadline
        if deadline is not None:
            self.watchdog.watch(self)

    def expire(self, now: float) -> None:
        """Called by the watchdog: shut the sockets down if the deadline has really passed."""
        with self._lock:
            if self._done or self.deadline is None or now < self.deadline:
                return
            self.expired = True
            for sock in self._sockets:
                _shut(sock)

    def finish(self) -> None:
        """The exchange is over: its sockets go back to the pool and are no longer watched.
        Always before a connection is released, so no later deadline touches its next user."""
        with self._lock:
            self._done = True
            self._sockets.clear()
        if getattr(_current, "exchange", None) is self:
            _current.exchange = None

    def check(self) -> None:
        if self.expired or (self.deadline is not None and time.monotonic() >= self.deadline):
            raise Expired()


def _shut(sock: socket.socket) -> None:
    try:
        # The plain socket's shutdown, on the file descriptor: an SSLSocket's own would tear
        # down TLS state under the thread that is reading.
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass  # closed already, or detached into a TLS socket that is attached itself


class Watchdog:
    """One daemon thread per connection that expires exchanges at their deadlines."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Exchange]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    def watch(self, exchange: Exchange) -> None:
        if exchange.deadline is None:
            return
        with self._cond:
            heapq.heappush(self._heap, (exchange.deadline, next(self._seq), exchange))
            self._closed = False  # a connection used again after close()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="cg-http-watchdog",
                                                daemon=True)
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            while not self._closed:
                now = time.monotonic()
                while self._heap and self._heap[0][0] <= now:
                    _, _, exchange = heapq.heappop(self._heap)
                    exchange.expire(now)
                if not self._heap:
                    self._thread = None  # idle: the next watch() starts a thread again
                    return
                self._cond.wait(self._heap[0][0] - now)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._heap.clear()
            self._cond.notify()


def _attach(sock: Any) -> None:
    exchange = getattr(_current, "exchange", None)
    if exchange is not None and isinstance(sock, socket.socket):
        exchange.attach(sock)


class _Watched:
    """Connection methods that tell the thread's exchange which socket is in use."""

    sock: Any

    def _new_conn(self) -> socket.socket:
        sock: socket.socket = super()._new_conn()  # type: ignore[misc]
        _attach(sock)  # the TCP socket, while a TLS handshake runs over it
        return sock

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        _attach(self.sock)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _attach(self.sock)  # a pooled connection, reused
        super().request(*args, **kwargs)  # type: ignore[misc]

    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        _attach(self.sock)
        return super().getresponse(*args, **kwargs)  # type: ignore[misc]


class _WatchedHTTPConnection(_Watched, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, HTTPSConnection):
    pass


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class WatchedAdapter(HTTPAdapter):
    """requests' adapter over connections that report their sockets to the exchange."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _WatchedHTTPPool,
                                                   "https": _WatchedHTTPSPool}


def read_body(response: requests.Response, exchange: Exchange, limit: int | None) -> bytes:
    """The whole body, refused past `limit` bytes (declared or counted, after decoding)."""
    method = response.request.method if response.request is not None else None
    if method == "HEAD" or response.status_code in (204, 304):
        return b""  # no body, whatever Content-Length says
    declared = response.headers.get("Content-Length", "")
    if limit is not None and declared.strip().isdigit() and int(declared) > limit:
        raise BodyTooLarge(int(declared), limit, declared=True)
    chunks: list[bytes] = []
    size = 0
    for chunk in iter_body(response, exchange):
        size += len(chunk)
        if limit is not None and size > limit:
            raise BodyTooLarge(size, limit, declared=False)
        chunks.append(chunk)
    return b"".join(chunks)


def keep_body(response: requests.Response, body: bytes) -> None:
    """Make a body read here the response's `content` (and `json()`, `text`)."""
    response._content = body
    response._content_consumed = True  # type: ignore[attr-defined]


def iter_body(response: requests.Response, exchange: Exchange,
              chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
    """The body chunk by chunk; Expired once the deadline passed (a body that ended because
    the watchdog shut the socket is not a complete body)."""
    for chunk in response.iter_content(chunk_bytes):
        exchange.check()
        yield chunk
    exchange.check()
