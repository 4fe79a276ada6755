"""HttpClient: the engine's HTTP layer for arbitrary URLs, and the allowed-hosts check that
keeps it to the hosts the `http` connection names."""

from __future__ import annotations

import fnmatch
from urllib.parse import urlsplit

from crownguard.engine import VendorClient


class HttpClient(VendorClient):
    """A client for arbitrary allowed URLs (the `http` connection)."""

    vendor = "http"
    connection_type = "http"

    def url(self, path: str) -> str:
        return path


def host_allowed(url: str, allowed: list[str]) -> bool:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    port = parts.port
    for entry in allowed:
        entry = entry.lower().strip()
        if entry.startswith("[") or entry.count(":") == 1:
            name, _, entry_port = entry.rpartition(":")
            if port is None or str(port) != entry_port:
                continue
            entry = name.strip("[]")
        if fnmatch.fnmatchcase(host, entry) if "*" in entry else host == entry:
            return True
    return False
