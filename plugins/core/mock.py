"""A webhook receiver mock: what a SOC's chat or ticket webhook would be in the demo and tests."""

from __future__ import annotations

from typing import Any

from werkzeug import Request, Response

from crownguard.engine import MockServer, route


class WebhookMock(MockServer):
    """POST/PUT to /hooks/{name} records the JSON and answers `{"ok": true, "id": N}`;
    GET /hooks/{name} lists what that hook received; GET /status/{code} answers that status."""

    vendor = "webhook"

    def reset_state(self) -> None:
        self.received: dict[str, list[Any]] = {}

    def connection_settings(self) -> dict[str, Any]:
        return {"allowed_hosts": [f"{self.host}:{self.port}"]}

    @route("POST", "/hooks/{name}")
    @route("PUT", "/hooks/{name}")
    def receive(self, request: Request, name: str) -> Any:
        if not request.is_json:
            return self.json_response({"ok": False, "error": "expected application/json"}, 415)
        payload = request.get_json(silent=True)
        if payload is None:
            return self.json_response({"ok": False, "error": "invalid JSON"}, 400)
        items = self.received.setdefault(name, [])
        items.append(payload)
        return self.json_response({"ok": True, "id": len(items)}, 201)

    @route("GET", "/hooks/{name}")
    def list_received(self, request: Request, name: str) -> Any:
        return {"ok": True, "items": self.received.get(name, [])}

    @route("GET", "/status/{code}")
    def status(self, request: Request, code: str) -> Response:
        value = int(code) if code.isdigit() and 100 <= int(code) < 600 else 400
        return self.json_response({"status": value}, value)
