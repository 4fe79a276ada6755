"""The artifact proxy: listing a version's files and downloading one."""

from __future__ import annotations

from typing import Any

from werkzeug import Request, Response

from crownguard.engine import route

from .base import ARTIFACTS, HTML_404, MlflowMockBase


class ArtifactRoutes(MlflowMockBase):
    """`/api/2.0/mlflow-artifacts/artifacts[/<path>]`."""

    def not_found(self, request: Request) -> Response:
        if request.path.startswith(ARTIFACTS + "/") and request.method == "GET":
            with self.state_lock:
                return self.download_artifact(request, request.path[len(ARTIFACTS) + 1:])
        return Response(HTML_404, status=404, content_type="text/html; charset=utf-8")

    @route("GET", ARTIFACTS)
    def list_artifacts(self, request: Request) -> Any:
        denied = self.guard(request, None, "read")
        if denied:
            return denied
        prefix = request.args.get("path", "").strip("/")
        prefix = f"{prefix}/" if prefix else ""
        entries: dict[str, dict[str, Any]] = {}
        for path, content in self.artifacts.items():
            if not path.startswith(prefix):
                continue
            head, _, rest = path[len(prefix):].partition("/")
            entries[head] = ({"path": head, "is_dir": True} if rest else
                             {"path": head, "is_dir": False, "file_size": len(content)})
        return {"files": [entries[k] for k in sorted(entries)]} if entries else {}

    def download_artifact(self, request: Request, path: str) -> Response:
        denied = self.guard(request, None, "read")
        if denied:
            return denied
        content = self.artifacts.get(path)
        if content is None:
            return self.mlflow_error(404, f"No such artifact: '{path}'")
        return Response(content, content_type="application/octet-stream",
                        headers={"Content-Disposition":
                                 f"attachment; filename={path.rsplit('/', 1)[-1]}"})
