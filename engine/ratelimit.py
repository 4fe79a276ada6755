"""How fast a connection may be called: a token bucket per connection, and the vendor's own
Retry-After honoured by every step that uses the connection.

A connection opts in with `rate_limit: {requests_per_second: 10, burst: 20}` in the
connections file. Before each request the HTTP layer asks the connection's limiter for a
token (`acquire`); after a 429 it tells the limiter how long the vendor asked to wait
(`hold`), and every later request of that connection waits that long first, not only the
step that got the 429. A wait that would run past the exchange's budget is not waited: the
request fails at once with RateLimited (retryable), and the step's retry policy takes over.

`LocalLimiter` keeps the buckets in this process (the default). A worker fleet shares one
bucket per connection through Redis (`crownguard.engine.service.worker.limiter`): any object
with the two methods of `Limiter` will do (`Connections.use_limiter`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from .errors import RateLimited

# A vendor's Retry-After is believed up to this long: a bogus header must not stop a
# connection for a day.
MAX_HOLD_SECONDS = 300.0


@dataclass(frozen=True)
class Rate:
    """A connection's `rate_limit`: tokens per second and the bucket's size."""

    per_second: float
    burst: float

    @classmethod
    def of(cls, settings: Mapping[str, Any]) -> Rate | None:
        """The rate a connection's settings ask for, or None (no limit)."""
        raw = settings.get("rate_limit")
        if not isinstance(raw, Mapping) or not raw.get("requests_per_second"):
            return None
        per_second = float(raw["requests_per_second"])
        return cls(per_second, float(raw.get("burst") or max(1.0, per_second)))


class Limiter(Protocol):
    def acquire(self, connection: str, rate: Rate, budget: float) -> float:
        """Take one token of `connection`'s bucket, waiting at most `budget` seconds; return
        0.0, or the seconds still to wait when that is more than `budget` (nothing taken)."""

    def hold(self, connection: str, seconds: float) -> None:
        """The vendor asked to wait `seconds` (Retry-After): no request of `connection` goes
        out before then, from any step."""


class LocalLimiter:
    """Token buckets in this process, one per connection name."""

    def __init__(self, clock: Any = time.monotonic, sleep: Any = time.sleep) -> None:
        self._clock, self._sleep = clock, sleep
        self._buckets: dict[str, tuple[float, float]] = {}  # name -> (tokens, at)
        self._held: dict[str, float] = {}  # name -> not before (clock)
        self._lock = threading.Lock()

    def _take(self, connection: str, rate: Rate) -> float:
        """Take a token now (0.0), or the seconds until one is there."""
        now = self._clock()
        with self._lock:
            held = self._held.get(connection, 0.0) - now
            if held > 0:
                return held
            tokens, at = self._buckets.get(connection, (rate.burst, now))
            tokens = min(rate.burst, tokens + (now - at) * rate.per_second)
            if tokens >= 1.0:
                self._buckets[connection] = (tokens - 1.0, now)
                return 0.0
            self._buckets[connection] = (tokens, now)
            return (1.0 - tokens) / rate.per_second

    def acquire(self, connection: str, rate: Rate, budget: float) -> float:
        deadline = self._clock() + budget
        while True:
            wait = self._take(connection, rate)
            if wait <= 0:
                return 0.0
            left = deadline - self._clock()
            if wait > left:
                return wait
            self._sleep(wait)

    def hold(self, connection: str, seconds: float) -> None:
        until = self._clock() + min(max(seconds, 0.0), MAX_HOLD_SECONDS)
        with self._lock:
            self._held[connection] = max(self._held.get(connection, 0.0), until)


class Paced(Protocol):
    """What pacing needs of a connection (config.Connection)."""

    @property
    def name(self) -> str: ...

    @property
    def settings(self) -> Mapping[str, Any]: ...

    @property
    def limiter(self) -> Limiter: ...


def pace(connection: Paced, vendor: str, operation: str, budget: float) -> None:
    """Before a request: wait for a token of the connection's `rate_limit` within `budget`
    seconds; RateLimited (retryable, with the wait as retry_after) when it would be longer."""
    rate = Rate.of(connection.settings)
    if rate is None:
        return
    wait = connection.limiter.acquire(connection.name, rate, budget)
    if wait > 0:
        raise RateLimited(f"the connection's rate_limit ({rate.per_second:g}/s) or the "
                          f"vendor's Retry-After holds requests for another {wait:.1f}s",
                          vendor=vendor, operation=operation, retry_after=wait)


def hold(connection: Paced, retry_after: float | None) -> None:
    """After a 429: a connection with a `rate_limit` sends nothing more until Retry-After."""
    if retry_after and Rate.of(connection.settings) is not None:
        connection.limiter.hold(connection.name, retry_after)
