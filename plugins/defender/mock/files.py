"""File profiles in the Defender mock, by SHA-1, SHA-256 or MD5."""

from __future__ import annotations

from werkzeug import Request, Response

from crownguard.engine import route

from .base import DefenderMockBase


class FileRoutes(DefenderMockBase):
    """`/api/files/{id}`."""

    @route("GET", "/api/files/{file_id}")
    def get_file(self, request: Request, file_id: str) -> Response:
        if denied := self.authorize(request, "File.Read.All"):
            return denied
        key = file_id.lower()
        file = self.files.get(key) or next(
            (f for f in self.files.values() if key in (f.sha256, f.md5)), None)
        if file is None:
            return self.fail(404, "ResourceNotFound", f"File {file_id} was not found")
        return self.json_response({"@odata.context": f"{self.base_url}/api/$metadata"
                                                     "#Files/$entity", **file.entity()})
