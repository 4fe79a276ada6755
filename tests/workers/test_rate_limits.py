"""Rate limits per connection: the in-process bucket, the Redis bucket every worker shares,
and the HTTP layer's hook (a token before each request; a 429's Retry-After holds them all)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from crownguard.engine.config import config_from_mapping
from crownguard.engine.errors import RateLimited, SpecError
from crownguard.engine.plugins import PluginHost
from crownguard.engine.ratelimit import LocalLimiter, Rate
from crownguard.engine.service.worker.limiter import RedisLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_local_bucket_gives_the_burst_then_paces_within_the_budget() -> None:
    clock = Clock()
    limiter = LocalLimiter(clock, clock.sleep)
    rate = Rate(per_second=2.0, burst=3.0)
    assert [limiter.acquire("okta", rate, 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire("okta", rate, 0.1) == pytest.approx(0.5)  # too long: not waited
    assert clock.slept == []
    assert limiter.acquire("okta", rate, 1.0) == 0.0  # waited half a second for it
    assert clock.slept == [pytest.approx(0.5)]
    assert limiter.acquire("falcon", rate, 0.0) == 0.0  # every connection has its own


def test_local_hold_stops_every_request_until_retry_after() -> None:
    clock = Clock()
    limiter = LocalLimiter(clock, clock.sleep)
    rate = Rate(per_second=100.0, burst=100.0)
    limiter.hold("okta", 5.0)
    assert limiter.acquire("okta", rate, 1.0) == pytest.approx(5.0)
    assert limiter.acquire("okta", rate, 10.0) == 0.0
    assert sum(clock.slept) == pytest.approx(5.0)
    limiter.hold("okta", 10_000.0)  # a bogus header is believed for five minutes at most
    assert limiter.acquire("okta", rate, 0.0) == pytest.approx(300.0)


def test_rate_limit_setting_is_checked_like_any_setting() -> None:
    host = PluginHost.from_entry_points()
    with pytest.raises(SpecError, match="rate_limit"):
        config_from_mapping({"connections": {"okta": {
            "base_url": "http://127.0.0.1:1", "token": "t" * 20,
            "rate_limit": {"requests_per_second": 0}}}}, host.connection_types)


def test_workers_share_one_bucket_and_one_hold_in_redis(redis_db: Any) -> None:
    import redis

    server, _ = redis_db
    # Two clients, two limiters: as two workers on two machines.
    first = RedisLimiter(redis.Redis.from_url(server.url))
    second = RedisLimiter(redis.Redis.from_url(server.url))
    rate = Rate(per_second=1.0, burst=4.0)
    taken = [limiter.acquire("falcon", rate, 0.0) for limiter in (first, second) * 2]
    assert taken == [0.0] * 4
    assert first.acquire("falcon", rate, 0.0) > 0.5  # the bucket is empty for both
    assert second.acquire("falcon", rate, 0.0) > 0.5
    assert first.acquire("okta", rate, 0.0) == 0.0
    second.hold("okta", 30.0)  # worker two got a 429 with Retry-After: 30
    assert 25.0 < first.acquire("okta", rate, 1.0) <= 30.0
    first.hold("okta", 1.0)  # a shorter hold does not shorten it
    assert second.acquire("okta", rate, 0.0) > 25.0


def test_redis_down_falls_back_to_pacing_in_this_process() -> None:
    from redis_server import free_port

    from crownguard.engine.service.worker.queue import redis_client

    limiter = RedisLimiter(redis_client(f"redis://127.0.0.1:{free_port()}/0"))
    rate = Rate(per_second=0.01, burst=1.0)
    started = time.monotonic()
    assert limiter.acquire("okta", rate, 0.0) == 0.0
    assert limiter.acquire("okta", rate, 0.0) > 50
    assert time.monotonic() - started < 2  # Redis is asked once, not at every request


@pytest.fixture(scope="module")
def okta_server() -> Any:
    server = PluginHost.from_entry_points().mock_servers["okta"].factory()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def okta(okta_server: Any) -> Any:
    okta_server.clear_faults()
    with okta_server.state_lock:
        okta_server.calls.clear()
    return okta_server


def _client(okta_mock: Any, rate: dict[str, Any], **extra: Any) -> Any:
    from crownguard.plugins.okta.client import OktaClient

    host = PluginHost.from_entry_points()
    config = config_from_mapping({"connections": {"okta": {
        **okta_mock.connection_settings(), "rate_limit": rate, **extra}}},
        host.connection_types)
    return OktaClient(config.connections.get("okta")), config


def test_http_layer_takes_a_token_before_each_request(okta: Any) -> None:
    client, _ = _client(okta, {"requests_per_second": 2, "burst": 1}, timeout_seconds=0.2)
    client.request("GET", "/api/v1/users", operation="list users")
    with pytest.raises(RateLimited, match=r"rate_limit \(2/s\)") as raised:
        client.request("GET", "/api/v1/users", operation="list users")
    assert raised.value.retryable and 0 < raised.value.retry_after <= 0.5
    assert len(okta.calls_to("GET", "/api/v1/users")) == 1  # the second was never sent


def test_a_429s_retry_after_holds_every_step_of_the_connection(okta: Any) -> None:
    client, config = _client(okta, {"requests_per_second": 100}, timeout_seconds=5)
    okta.inject("status", path="/api/v1/users", status=429, retry_after=1, times=1)
    with pytest.raises(RateLimited):
        client.request("GET", "/api/v1/users", operation="list users")
    from crownguard.plugins.okta.client import OktaClient

    other = OktaClient(config.connections.get("okta"))  # another step, same connection
    started = time.monotonic()
    other.request("GET", "/api/v1/users", operation="list users")
    assert time.monotonic() - started >= 0.9  # it waited out the vendor's Retry-After
    assert len(okta.calls_to("GET", "/api/v1/users")) == 2


def test_without_rate_limit_nothing_is_held(okta: Any) -> None:
    from crownguard.plugins.okta.client import OktaClient

    host = PluginHost.from_entry_points()
    config = config_from_mapping({"connections": {"okta": okta.connection_settings()}},
                                 host.connection_types)
    client = OktaClient(config.connections.get("okta"))
    okta.inject("status", path="/api/v1/users", status=429, retry_after=30, times=1)
    with pytest.raises(RateLimited):
        client.request("GET", "/api/v1/users", operation="list users")
    started = time.monotonic()
    client.request("GET", "/api/v1/users", operation="list users")
    assert time.monotonic() - started < 5  # as before: the step's retry policy waits
