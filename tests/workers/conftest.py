"""Fixtures of the worker tests: a real Redis (tests/redis_server.py) for the session, and a
broker URL whose password reaches the code under test by the environment only."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "service"))  # servicetest


@pytest.fixture(scope="session")
def redis_server() -> Iterator[Any]:
    """A real Redis server for the session: Debian's package, installed as root when missing.
    Tests that need it skip, saying why, when none can be had here; in CI it must start."""
    from redis_server import RedisServer, Unavailable

    try:
        server = RedisServer.start()
    except Unavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"Redis must run in CI: {exc}")
        pytest.skip(f"no Redis server: {exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_db(redis_server: Any) -> Iterator[Any]:
    """The session's server, emptied for this test: (server, a redis client)."""
    import redis

    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    yield redis_server, client
    client.close()


@pytest.fixture
def broker(redis_db: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A Broker for the session's Redis: the URL without its password, the password from
    $CROWNGUARD_BROKER_PASSWORD (as a deployment passes it)."""
    from crownguard.engine.service.worker.broker import broker_from

    server, _ = redis_db
    monkeypatch.setenv("CROWNGUARD_BROKER_PASSWORD", server.password)
    return broker_from(f"redis://127.0.0.1:{server.port}/0")
