"""The files of a model version, each with its size and SHA-256.

The version's artifact location comes from `get-download-uri` (the same call MLflow's own
client makes for `models:/name/version`). Its files are listed and streamed through the
tracking server's artifact proxy (`mlflow-artifacts:`, the default of `mlflow server`), so only
the connection's own host is ever contacted and each file is downloaded exactly once.
"""

from __future__ import annotations

import base64
import posixpath
from typing import Any
from urllib.parse import urlsplit

from crownguard.engine import ActionContext, ActionError, BadResponse, ConflictError

from .client import MlflowRegistryClient

PROXY_SCHEME = "mlflow-artifacts"
PENDING = "PENDING_REGISTRATION"
FAILED = "FAILED_REGISTRATION"


def proxied_path(client: MlflowRegistryClient, uri: str) -> str:
    """The artifact-proxy path of an `mlflow-artifacts:` URI on this server."""
    parts = urlsplit(uri)
    if parts.scheme != PROXY_SCHEME:
        # Only the scheme: a store URI can carry an account name or a signed query.
        raise ActionError(f"mlflow list_model_files: the version's artifacts are in a "
                          f"'{parts.scheme or 'local'}' store that this tracking server does not "
                          "proxy; list_model_files needs `mlflow server --serve-artifacts` "
                          "(the default) so files are fetched through the server")
    if parts.netloc and parts.netloc != urlsplit(client.base_url).netloc:
        raise ActionError("mlflow list_model_files: the version's artifacts are proxied by "
                          f"another server ({parts.netloc}); point the connection at it")
    return parts.path.strip("/")


def list_files(client: MlflowRegistryClient, root: str, max_files: int,
               operation: str) -> list[dict[str, Any]]:
    """Every file under `root` (depth first), paths relative to it, with the listed size."""
    files: list[dict[str, Any]] = []
    pending = [""]
    while pending:
        folder = pending.pop()
        for entry in client.list_artifacts(posixpath.join(root, folder).rstrip("/"), operation):
            # The proxy lists names relative to the folder; take the last part either way.
            name = posixpath.basename(str(entry.get("path", "")).rstrip("/"))
            if name in ("", ".", ".."):
                raise BadResponse(f"unusable artifact name {entry.get('path')!r}",
                                  vendor=client.vendor, operation=operation)
            relative = posixpath.join(folder, name) if folder else name
            if entry.get("is_dir"):
                pending.append(relative)
                continue
            files.append({"path": relative, "listed_size": entry.get("file_size")})
            if len(files) > max_files:
                raise ActionError(f"mlflow list_model_files: more than {max_files} files; raise "
                                  "max_files to index this version")
    return sorted(files, key=lambda f: f["path"])


def wait_until_registered(ctx: ActionContext, client: MlflowRegistryClient, name: str,
                          version: str) -> None:
    """Registration is asynchronous: a version is PENDING_REGISTRATION while its files are
    still being copied, and hashing it then would index a half-written model."""
    interval = float(client.settings.get("poll_interval_seconds", 1))
    max_wait = float(client.settings.get("max_wait_seconds", 300))
    waited = 0.0
    while True:
        info = client.get_version(name, version, "get model version")
        status = info.get("status")
        if status == FAILED:
            raise ConflictError(f"version {version} of '{name}' failed registration: "
                                f"{info.get('status_message') or 'no reason given'}",
                                vendor=client.vendor, operation="get model version")
        if status != PENDING:
            return
        if waited >= max_wait:
            raise ConflictError(f"version {version} of '{name}' is still {PENDING} after "
                                f"{max_wait:g}s", vendor=client.vendor,
                                operation="get model version")
        ctx.sleep(interval)
        waited += interval


def model_files(ctx: ActionContext, client: MlflowRegistryClient, name: str, version: str,
                max_files: int, head_bytes: int = 0) -> dict[str, Any]:
    wait_until_registered(ctx, client, name, version)
    uri = client.download_uri(name, version, "get model download URI")
    root = proxied_path(client, uri)
    listed = list_files(client, root, max_files, "list model artifacts")
    files = []
    for item in listed:
        size, sha256, head = client.artifact_digest(posixpath.join(root, item["path"]),
                                                    "download model artifact", head_bytes)
        expected = item["listed_size"]
        if expected is not None and int(expected) != size:
            raise BadResponse(f"{item['path']} is listed with {expected} bytes but {size} arrived",
                              vendor=client.vendor, operation="download model artifact")
        record: dict[str, Any] = {"path": item["path"], "size": size, "sha256": sha256}
        if head_bytes:
            record["head"] = base64.b64encode(head).decode("ascii")
        files.append(record)
    return {"name": name, "version": version, "artifact_uri": uri, "files": files,
            "count": len(files), "total_bytes": sum(f["size"] for f in files)}
