from __future__ import annotations

from typing import Any

import pytest
import requests
from werkzeug import Request, Response

from crownguard.engine import MockServer, route
from crownguard.engine.errors import MockServerError


class Store(MockServer):
    vendor = "store"

    def reset_state(self) -> None:
        self.items: list[Any] = []

    def before_route(self, request: Request) -> Response | None:
        if request.headers.get("Authorization") != "Bearer ok":
            return self.json_response({"error": "unauthorized"}, 401)
        return None

    def after_route(self, request: Request, response: Response) -> Response:
        response.headers["X-Request-Id"] = f"req-{len(self.calls)}"
        return response

    @route("POST", "/api/items")
    def add(self, request: Request) -> Any:
        self.items.append(request.get_json())
        return self.json_response({"id": len(self.items)}, 201)

    @route("GET", "/api/items/{item_id}")
    def get(self, request: Request, item_id: str) -> Any:
        return {"id": int(item_id)}


@pytest.fixture
def store(mock_server: Any) -> Store:
    return mock_server(Store)


def post(store: Store, timeout: float = 5) -> requests.Response:
    return requests.post(store.base_url + "/api/items", json={"a": 1},
                         headers={"Authorization": "Bearer ok"}, timeout=timeout)


def test_hooks_wrap_every_answer_and_calls_are_recorded(store: Store) -> None:
    denied = requests.post(store.base_url + "/api/items", json={}, timeout=5)
    assert denied.status_code == 401 and denied.headers["X-Request-Id"] == "req-1"
    assert post(store).status_code == 201
    assert [c.method for c in store.calls_to(path="/api/items")] == ["POST", "POST"]
    assert store.items == [{"a": 1}]
    assert requests.delete(store.base_url + "/api/items", headers={
        "Authorization": "Bearer ok"}, timeout=5).status_code == 405
    assert requests.get(store.base_url + "/nope", headers={"Authorization": "Bearer ok"},
                        timeout=5).status_code == 404


def test_lost_response_applies_then_fails(store: Store) -> None:
    store.inject("lost_response", path="/api/*", method="POST")
    answer = post(store)
    assert answer.status_code == 503
    assert store.items == [{"a": 1}]  # the change landed although the answer was lost
    assert post(store).status_code == 201


def test_lost_response_late_answer_and_statuses(store: Store) -> None:
    store.inject("lost_response", path="/api/items", seconds=0.3)
    with pytest.raises(requests.Timeout):
        post(store, timeout=0.1)
    store.inject("status", status=429, retry_after=3, path="/api/items/{item_id}",
                 headers={"X-Rate-Limit-Reset": "1"})
    answer = requests.get(store.base_url + "/api/items/7", headers={
        "Authorization": "Bearer ok"}, timeout=5)
    assert answer.status_code == 429 and answer.headers["Retry-After"] == "3"
    assert answer.headers["X-Rate-Limit-Reset"] == "1"
    with pytest.raises(MockServerError, match="unknown fault"):
        store.inject("explode")


def test_malformed_and_times(store: Store) -> None:
    store.inject("malformed", path="/api/items/{item_id}", times=2)
    url = store.base_url + "/api/items/1"
    headers = {"Authorization": "Bearer ok"}
    bodies = [requests.get(url, headers=headers, timeout=5).text for _ in range(3)]
    assert bodies[0] == bodies[1] == '{"truncated": '
    assert bodies[2] == '{"id": 1}'


def test_a_mock_seeds_itself_through_its_seed_methods() -> None:
    class WidgetMock(MockServer):
        def reset_state(self) -> None:
            self.widgets: list[str] = []

        def seed_widgets(self, items: list[dict[str, Any]]) -> None:
            self.widgets.extend(item["name"] for item in items)

    mock = WidgetMock()
    assert mock.seeding_sections() == ["widgets"]
    mock.seed("widgets", [{"name": "a"}, {"name": "b"}])
    assert mock.widgets == ["a", "b"]
    with pytest.raises(MockServerError, match=r"no seeding section 'gadgets' \(known: widgets\)"):
        mock.seed("gadgets", [])
    with pytest.raises(MockServerError):
        mock.seed("widgets; drop", [])


def test_a_mock_serves_on_werkzeug_in_a_daemon_thread_and_stops_fast(
        caplog: pytest.LogCaptureFixture) -> None:
    import logging
    import threading
    import time

    caplog.set_level(logging.DEBUG)
    server = Store()
    assert not server.is_running() and server.port == 0
    with server:
        assert server.is_running() and server.port > 0
        assert server.base_url == f"http://127.0.0.1:{server.port}"
        assert server.url_for("api/items") == server.base_url + "/api/items"
        assert post(server).status_code == 201
        [thread] = [t for t in threading.enumerate()
                    if t.name == f"mock-store-{server.port}"]
        assert thread.daemon
        # An answer held back by a fault does not hold up stop().
        server.inject("timeout", seconds=5)
        with pytest.raises(requests.Timeout):
            post(server, timeout=0.1)
        started = time.monotonic()
    assert time.monotonic() - started < 1.0 and not server.is_running()
    assert [r for r in caplog.records if r.name == "werkzeug"] == []  # no request log lines
    with pytest.raises(RuntimeError, match="not running"):
        server.stop()
    server.start()  # a stopped mock starts again, on the same port
    try:
        with pytest.raises(RuntimeError, match="already running"):
            server.start()
        assert post(server).status_code == 201 and len(server.items) == 2
    finally:
        server.stop()


def test_the_email_plugin_registers_an_smtp_mock_the_fleet_runs() -> None:
    import smtplib

    from crownguard.engine.plugins import PluginHost
    from crownguard.engine.scenarios import MockFleet

    with MockFleet(PluginHost.from_entry_points()) as fleet:
        sink: Any = fleet.get("email")
        settings = fleet.connections()["email"]
        assert settings["security"] == "none" and settings["port"] == sink.port
        with smtplib.SMTP(settings["host"], settings["port"], timeout=5) as smtp:
            smtp.sendmail("soc@crownguard.example", ["ada@example.com"],
                          b"Subject: hi\r\n\r\nhello\r\n")
        assert [m.rcpt_tos for m in sink.messages] == [["ada@example.com"]]
        fleet.reset()
        assert sink.messages == []
    assert not sink.is_running()
