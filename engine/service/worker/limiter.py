"""A connection's rate limit shared by every worker: one token bucket per connection in Redis.

One Lua script does the whole decision atomically on the Redis server, with Redis's own clock
(workers' clocks may differ): a Retry-After hold first (`crownguard:hold:<connection>`, set by
any worker that got a 429, expiring by itself), then the bucket (`crownguard:bucket:<name>`,
tokens and when they were counted, expiring once full again). The answer is 0 (a token was
taken) or how many milliseconds to wait. When Redis cannot be reached the worker falls back
to its own in-process bucket for the connection and says so once: a response action is not
held up because the broker is away.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from ...ratelimit import MAX_HOLD_SECONDS, LocalLimiter, Rate

log = logging.getLogger("crownguard.worker")
RETRY_REDIS_SECONDS = 5.0

_TAKE = """
local hold = redis.call('PTTL', KEYS[2])
if hold > 0 then return hold end
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local rate = tonumber(ARGV[1]) / 1000.0
local burst = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or ms
tokens = math.min(burst, tokens + math.max(0, ms - at) * rate)
local ttl = math.ceil(burst / rate) + 1000
if tokens >= 1 then
  redis.call('HSET', KEYS[1], 'tokens', tokens - 1, 'at', ms)
  redis.call('PEXPIRE', KEYS[1], ttl)
  return 0
end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', ms)
redis.call('PEXPIRE', KEYS[1], ttl)
return math.ceil((1 - tokens) / rate)
"""

_HOLD = """
local left = redis.call('PTTL', KEYS[1])
if tonumber(ARGV[1]) > left then redis.call('SET', KEYS[1], '1', 'PX', ARGV[1]) end
return 1
"""


class RedisLimiter:
    """`ratelimit.Limiter` over Redis: the buckets and holds of all workers are the same."""

    def __init__(self, client: Any, *, prefix: str = "crownguard:",
                 sleep: Any = time.sleep) -> None:
        self.client = client
        self.prefix = prefix
        self._sleep = sleep
        self._take = client.register_script(_TAKE)
        self._hold = client.register_script(_HOLD)
        self._fallback = LocalLimiter()
        self._down_until = 0.0  # while Redis is away, it is asked again every few seconds

    def _keys(self, connection: str) -> list[str]:
        return [f"{self.prefix}bucket:{connection}", f"{self.prefix}hold:{connection}"]

    def _unreachable(self, exc: Exception) -> None:
        if not self._down_until:
            log.warning("rate limits: Redis cannot be reached (%s): each worker paces its "
                        "own requests until it is back", type(exc).__name__)
        self._down_until = time.monotonic() + RETRY_REDIS_SECONDS

    def acquire(self, connection: str, rate: Rate, budget: float) -> float:
        import redis

        deadline = time.monotonic() + budget
        while True:
            if self._down_until > time.monotonic():
                return self._fallback.acquire(connection, rate,
                                              max(deadline - time.monotonic(), 0.0))
            try:
                wait = int(self._take(keys=self._keys(connection),
                                      args=[rate.per_second, rate.burst])) / 1000.0
                if self._down_until:
                    log.warning("rate limits: Redis is back: the buckets are shared again")
                self._down_until = 0.0
            except (redis.RedisError, OSError) as exc:
                self._unreachable(exc)
                continue
            if wait <= 0:
                return 0.0
            left = deadline - time.monotonic()
            if wait > left:
                return wait
            self._sleep(wait)

    def hold(self, connection: str, seconds: float) -> None:
        import redis

        millis = int(min(max(seconds, 0.0), MAX_HOLD_SECONDS) * 1000)
        self._fallback.hold(connection, seconds)
        if millis <= 0:
            return
        try:
            self._hold(keys=[self._keys(connection)[1]], args=[millis])
        except (redis.RedisError, OSError) as exc:
            self._unreachable(exc)
