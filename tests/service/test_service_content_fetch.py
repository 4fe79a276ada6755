"""The service's triage asks the alert source for bytes as `respond` does (issue 15)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from crownguard.engine.config import Config, Connections
from crownguard.engine.plugins import PluginHost
from crownguard.engine.service.service import _triage
from crownguard.engine.triage import load_policy, normalise
from crownguard.plugins.incydr.mock import IncydrMock

MB = 1024 * 1024
SHA = "6" * 64
GGUF_HEAD = (b"GGUF" + (3).to_bytes(4, "little") + (0).to_bytes(8, "little")
             + (0).to_bytes(8, "little"))


def ambiguous() -> Any:
    return normalise({
        "id": "svc-1", "time": "2026-11-24T10:15:00Z",
        "actor": {"email": "bob@example.com"},
        "file": {"name": "blob-7731.bin", "size": 500 * MB, "sha256": SHA,
                 "mime_type": "application/octet-stream"},
        "destination": {"kind": "removable_media"}})


def test_the_service_triage_fetches_an_open_question_from_incydr(
        mock_server: Callable[..., Any], tmp_path: Path) -> None:
    incydr = mock_server(IncydrMock)
    incydr.add_file(GGUF_HEAD, size=500 * MB, sha256=SHA)
    host = PluginHost.from_entry_points()
    config = Config(connections=Connections({"incydr": incydr.connection_settings()}))
    triage = _triage(load_policy(None), host, tmp_path / "journal.sqlite", config)
    try:
        assert triage.fetch is not None
        verdict = triage.triage_event(ambiguous())
    finally:
        triage.close()
    assert verdict.detection.is_model, verdict.detection.evidence
    assert verdict.detection.evidence[0].startswith("content fetched from incydr")
    assert len(incydr.calls_to("GET", f"/v1/files/get-file-by-sha256/{SHA}")) == 1


def test_without_the_source_the_service_never_fetches(tmp_path: Path) -> None:
    triage = _triage(load_policy(None), PluginHost.from_entry_points(),
                     tmp_path / "journal.sqlite", Config())
    try:
        assert triage.fetch is None
    finally:
        triage.close()
