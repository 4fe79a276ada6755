"""The service's parts on their own: signatures, the intake table, the rate limit, --listen,
and the app in-process (an unexpected error, the drain) through a small ASGI driver."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from servicetest import TOKENS, new_event

from crownguard.engine.errors import UsageError
from crownguard.engine.plugins import PluginHost
from crownguard.engine.service.app import build_app
from crownguard.engine.service.intake import SQLiteIntakeStore
from crownguard.engine.service.problems import ServiceProblem
from crownguard.engine.service.serve import parse_listen
from crownguard.engine.service.service import Options, RateLimiter, Service
from crownguard.engine.service.signing import sign, verify

SECRET = "k" * 20


def test_verify_takes_a_good_signature_and_refuses_the_rest() -> None:
    body = b'{"a": 1}'
    verify(SECRET, "1000", sign(SECRET, 1000, body), body, now=1100)
    verify(SECRET, "1000", "v1=00, " + sign(SECRET, 1000, body), body, now=1100)  # rotation
    for timestamp, signature, now, code in [
            ("1000", sign(SECRET, 1000, body + b" "), 1000, "bad_signature"),
            ("1000", sign("other" * 4, 1000, body), 1000, "bad_signature"),
            ("1001", sign(SECRET, 1000, body), 1000, "bad_signature"),  # ts is signed
            ("1000", sign(SECRET, 1000, body), 1301, "stale_timestamp"),
            ("1000", sign(SECRET, 1000, body).replace("v1=", "v0="), 1000, "bad_signature"),
            ("", sign(SECRET, 1000, body), 1000, "unsigned"),
            ("1000", "", 1000, "unsigned"),
            ("10e3", sign(SECRET, 1000, body), 1000, "bad_timestamp")]:
        with pytest.raises(ServiceProblem) as caught:
            verify(SECRET, timestamp, signature, body, now=now)
        assert caught.value.status == 401 and caught.value.code == code
    verify(SECRET, "1000", sign(SECRET, 1000, body), body, now=1300)  # 300 s is allowed


def test_the_intake_table_dedupes_and_reclaims_what_a_dead_process_started(
        tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    store = SQLiteIntakeStore(path)
    accepted = store.add("siem", [("e1", {"n": 1}), ("e2", {"n": 2}), ("e1", {"n": 1})])
    assert [(a.event_id, a.duplicate) for a in accepted] == [
        ("e1", False), ("e2", False), ("e1", True)]
    [first] = store.take(1)
    assert (first.event_id, first.event) == ("e1", {"n": 1})
    assert store.counts() == {"pending": 1, "started": 1, "done": 0, "failed": 0}
    store.finish(first.id, ["run-1"])
    # An item started by a process that has exited is pending again for the next one.
    child = subprocess.run([sys.executable, "-c", (
        "import sys; from crownguard.engine.service.intake import SQLiteIntakeStore; "
        f"print(SQLiteIntakeStore({str(path)!r}).take(5)[0].event_id)")],
        capture_output=True, text=True, timeout=60, env=dict(os.environ))
    assert child.stdout.strip() == "e2", child.stderr
    [again] = store.take(5)
    assert again.event_id == "e2"
    store.take(5)  # taken by this live process: not taken twice
    assert store.take(5) == []
    store.release([again.id])
    assert [i.event_id for i in store.take(5)] == ["e2"]
    store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT runs FROM service_intake WHERE event_id = 'e1'"
                          ).fetchone() == ('["run-1"]',)


def test_the_rate_limit_refills_over_time(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [100.0]
    monkeypatch.setattr("crownguard.engine.service.service.time.monotonic", lambda: clock[0])
    limiter = RateLimiter()
    limiter.take("s", 2)
    limiter.take("s", 2)
    with pytest.raises(ServiceProblem) as caught:
        limiter.take("s", 2)
    assert caught.value.status == 429 and caught.value.headers == {"Retry-After": "30"}
    clock[0] += 30
    limiter.take("s", 2)
    limiter.take("other", 2)  # per source


def test_parse_listen() -> None:
    assert parse_listen("127.0.0.1:8760") == ("127.0.0.1", 8760)
    assert parse_listen("[::1]:9000") == ("::1", 9000)
    for bad in ("8760", "host:", ":80", "h:99999", "h:x"):
        with pytest.raises(UsageError, match="--listen takes HOST:PORT"):
            parse_listen(bad)


# --- the app in-process ------------------------------------------------------------------------


def _call(app: Any, method: str, path: str, headers: dict[str, str] | None = None
          ) -> tuple[int, dict[str, str], bytes]:
    """One request through an ASGI app, without a server."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    path, _, query = path.partition("?")
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": query.encode(), "root_path": "", "client": ("127.0.0.1", 1),
             "server": ("127.0.0.1", 80),
             "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]}
    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, body


@pytest.fixture
def service(service_files: dict[str, Any], tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Any:
    for name, value in service_files["env"].items():
        monkeypatch.setenv(name, value)
    started = Service.start(PluginHost.from_entry_points(),
                            Options(str(service_files["config"]), str(service_files["policy"]),
                                    str(tmp_path / "j.sqlite")))
    yield started
    started.close()


def test_an_unexpected_error_is_a_500_with_no_traceback_and_no_secret(
        service: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    token = TOKENS["siem-reader"][1]

    def broken(**_: Any) -> Any:
        raise RuntimeError(f"the database said {token}")

    monkeypatch.setattr(service.listing, "page", broken)
    with caplog.at_level(logging.ERROR, logger="crownguard.service"):
        status, _, body = _call(build_app(service), "GET", "/v1/runs",
                                {"Authorization": f"Bearer {token}"})
    assert status == 500
    assert json.loads(body) == {"error": {"code": "internal", "where": "",
                                          "message": "internal error (logged by the service)"}}
    assert "RuntimeError" in caplog.text and token not in caplog.text


def test_a_draining_service_answers_503_but_to_healthz(service: Any) -> None:
    app = build_app(service)
    service.draining.set()
    status, headers, body = _call(app, "GET", "/readyz")
    assert status == 503 and headers["retry-after"] == "5"
    assert json.loads(body)["error"]["code"] == "draining"
    assert _call(app, "GET", "/healthz")[0] == 200


def test_events_are_stored_before_the_answer(service: Any) -> None:
    # What 202 promises, seen from the store: add() commits before it returns.
    event = new_event()
    [accepted] = service.store.add("siem", [(event["id"], event)])
    with sqlite3.connect(service.journal.path) as db:
        assert db.execute("SELECT status FROM service_intake WHERE event_id = ?",
                          (event["id"],)).fetchone() == ("pending",)
    assert not accepted.duplicate


def test_the_listening_socket_says_it_is_tcp() -> None:
    # asyncio sets TCP_NODELAY on accepted connections only when the listening socket's proto
    # is IPPROTO_TCP; without it every keep-alive answer waited ~40 ms (delayed ACK + Nagle).
    import socket

    from crownguard.engine.service.serve import _bind

    sock = _bind("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()
