"""What the service answers when it refuses: `{"error": {"code", "message", "where"}}`."""

from __future__ import annotations

from typing import Any


class ServiceProblem(Exception):
    """A refusal with its HTTP status, a stable `code`, a message for people and `where` (the
    header, field or item at fault; "" when it is the request as a whole)."""

    def __init__(self, status: int, code: str, message: str, where: str = "",
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.where = status, code, message, where
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.code, self.message, self.where)


def error_body(code: str, message: str, where: str = "") -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "where": where}}
