"""Content checks from the source: an open model question decided by the file's first bytes,
fetched from Incydr by SHA-256 (the mock serves them as the real API does)."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from test_detection_files import docx_like, gguf_file, safetensors_file

from crownguard.engine import ContentSource, PluginError, hookimpl
from crownguard.engine.config import Config, Connections
from crownguard.engine.plugins import PluginHost
from crownguard.engine.triage import FingerprintIndex, normalise
from crownguard.engine.triage.detection import HEAD_BYTES, Method, ModelFormat, detect
from crownguard.engine.triage.detection.fetch import (
    ContentCache,
    ContentFetch,
    connected_sources,
    question_open,
)
from crownguard.plugins.incydr.mock import IncydrMock
from crownguard.plugins.incydr.mock.seed import DEFAULT_CLIENT_SECRET

MB = 1024 * 1024
FILES = "/v1/files/get-file-by-sha256/{sha256}"
SHA = "5" * 64


def ambiguous(sha256: str = SHA, *, name: str = "blob-7731.bin", size: int = 500 * MB,
              event_id: str = "e-1") -> Any:
    """A 500 MB octet-stream `.bin` to USB: metadata cannot say whether it is a model."""
    return normalise({
        "id": event_id, "time": "2026-11-24T10:15:00Z",
        "actor": {"email": "bob@example.com", "departing": True},
        "file": {"name": name, "size": size, "sha256": sha256,
                 "mime_type": "application/octet-stream",
                 "mime_type_by_bytes": "application/octet-stream"},
        "destination": {"kind": "removable_media"}})


@pytest.fixture
def incydr(mock_server: Callable[..., Any]) -> IncydrMock:
    return mock_server(IncydrMock)


@pytest.fixture
def host() -> PluginHost:
    return PluginHost.from_entry_points()


def config_for(mock: IncydrMock, **changes: Any) -> Config:
    return Config(connections=Connections({"incydr": {**mock.connection_settings(), **changes}}))


def fetcher(mock: IncydrMock, host: PluginHost, cache: ContentCache | None = None,
            **kwargs: Any) -> ContentFetch:
    return ContentFetch(connected_sources(host, config_for(mock)), cache, **kwargs)


def file_calls(mock: IncydrMock) -> int:
    return len(mock.calls_to("GET", FILES))


def test_the_incydr_plugin_registers_its_content_source(host: PluginHost) -> None:
    source = host.content_sources["incydr"]
    assert (source.connection, source.plugin) == ("incydr", "incydr")


def test_a_content_source_that_is_not_one_is_refused_naming_the_plugin() -> None:
    class Broken:
        @hookimpl
        def crownguard_register_content_sources(self, register: Any) -> None:
            register({"name": "edr"})

    class Twice:
        @hookimpl
        def crownguard_register_content_sources(self, register: Any) -> None:
            register(ContentSource("edr", "falcon", lambda *a: b""))

    host = PluginHost()
    host.add(Broken(), "broken")
    with pytest.raises(PluginError, match="plugin 'broken' registered .*not a ContentSource"):
        host.content_sources
    host = PluginHost()
    host.add(Twice(), "one")
    host.add(Twice(), "two")
    with pytest.raises(PluginError, match="'edr' is registered by both 'one' and 'two'"):
        host.content_sources


def test_an_ambiguous_bin_is_decided_by_its_fetched_gguf_head(
        incydr: IncydrMock, host: PluginHost, tmp_path: Path) -> None:
    head = gguf_file(tmp_path / "tiny.gguf").read_bytes()
    incydr.add_file(head, size=500 * MB, sha256=SHA)
    event = ambiguous()
    by_metadata = detect(event)
    assert not by_metadata.is_model and question_open(by_metadata)

    detection = fetcher(incydr, host).detect(event)

    assert detection.is_model and detection.format == ModelFormat.GGUF
    assert detection.method == Method.CONTENT
    assert detection.evidence[0].startswith("content fetched from incydr: 65,536 bytes: GGUF v3")
    assert detection.details["content_source"] == "incydr"
    assert file_calls(incydr) == 1
    # Streamed and closed at the budget: far less than the file was sent.
    time.sleep(0.2)
    assert HEAD_BYTES <= incydr.bytes_sent < 16 * MB < 500 * MB


def test_a_safetensors_head_makes_the_blob_a_model(incydr: IncydrMock, host: PluginHost,
                                                   tmp_path: Path) -> None:
    head = safetensors_file(tmp_path / "m.safetensors").read_bytes()
    sha = incydr.add_file(head)
    detection = fetcher(incydr, host).detect(ambiguous(sha, size=len(head)))
    assert detection.is_model and detection.format == ModelFormat.SAFETENSORS
    assert detection.evidence[0].startswith(f"content fetched from incydr: {len(head):,} bytes: "
                                            "safetensors header")


def test_a_docx_like_zip_head_is_not_a_model(incydr: IncydrMock, host: PluginHost,
                                             tmp_path: Path) -> None:
    head = docx_like(tmp_path / "q3.docx").read_bytes()
    sha = incydr.add_file(head, size=80 * MB, sha256="d" * 64)
    event = ambiguous(sha, name="weights-backup.zip", size=80 * MB)
    assert question_open(detect(event))
    detection = fetcher(incydr, host).detect(event)
    assert not detection.is_model and detection.method == Method.CONTENT
    assert detection.evidence[0].startswith("content fetched from incydr: 65,536 bytes: ")
    assert "suggests a model, but the content does not" in detection.evidence[-1]


def test_an_unknown_hash_falls_back_to_metadata_and_says_why(incydr: IncydrMock,
                                                             host: PluginHost) -> None:
    event = ambiguous()
    detection = fetcher(incydr, host).detect(event)
    assert detection.method == Method.METADATA
    assert detection.confidence == detect(event).confidence
    assert detection.evidence[0] == ("content not fetched from incydr: 404 unknown file; "
                                      "decided by metadata")


def test_a_batch_asks_once_for_a_file_the_source_does_not_hold(incydr: IncydrMock,
                                                               host: PluginHost) -> None:
    fetch = fetcher(incydr, host)
    events = [ambiguous(event_id=f"e-{n}") for n in range(5)]
    fetch.prefetch(events)
    assert all("404 unknown file" in fetch.detect(e).evidence[0] for e in events)
    assert file_calls(incydr) == 1


def test_a_fetch_that_times_out_falls_back_within_the_timeout(incydr: IncydrMock,
                                                              host: PluginHost) -> None:
    incydr.add_file(b"GGUF\x03\x00\x00\x00", size=10 * MB, sha256=SHA)
    incydr.inject("timeout", seconds=3, path="/v1/files/get-file-by-sha256/*")
    started = time.monotonic()
    detection = fetcher(incydr, host, timeout=0.5).detect(ambiguous())
    assert time.monotonic() - started < 2.5
    assert detection.method == Method.METADATA
    assert detection.evidence[0] == ("content not fetched from incydr: timed out after 0.5s; "
                                      "decided by metadata")


def test_refused_credentials_fall_back_and_no_secret_shows(incydr: IncydrMock,
                                                           host: PluginHost) -> None:
    incydr.add_file(b"GGUF\x03\x00\x00\x00", sha256=SHA)
    wrong = "not-the-secret-Zx81"
    config = config_for(incydr, client_secret=wrong)
    config.connections.redactor.add(wrong)
    detection = ContentFetch(connected_sources(host, config)).detect(ambiguous())
    assert detection.method == Method.METADATA
    assert detection.evidence[0].startswith("content not fetched from incydr: 401 ")
    text = json.dumps(detection.to_dict())
    assert wrong not in text and DEFAULT_CLIENT_SECRET not in text


def test_a_cached_verdict_makes_no_second_request(incydr: IncydrMock, host: PluginHost,
                                                  tmp_path: Path) -> None:
    incydr.add_file(gguf_file(tmp_path / "t.gguf").read_bytes(), size=500 * MB, sha256=SHA)
    path = tmp_path / "fingerprints.sqlite"
    FingerprintIndex(path).close()  # the cache lives in the index's file
    first = fetcher(incydr, host, ContentCache(path))
    first.detect(ambiguous())
    first.close()
    assert file_calls(incydr) == 1

    again = fetcher(incydr, host, ContentCache(path))
    detection = again.detect(ambiguous(event_id="e-2"))
    assert file_calls(incydr) == 1
    assert detection.is_model and detection.details["cached"] is True
    assert detection.evidence[0].startswith("content fetched from incydr (cached verdict): "
                                            "65,536 bytes: GGUF v3")
    with sqlite3.connect(path) as db:
        row = db.execute("SELECT sha256, source FROM content_verdicts").fetchone()
    assert row == (SHA, "incydr")
    FingerprintIndex(path).close()  # still the fingerprint index it was


def test_settled_metadata_and_registered_files_are_not_fetched(incydr: IncydrMock,
                                                               host: PluginHost) -> None:
    fetch = fetcher(incydr, host)
    assert fetch.detect(ambiguous(name="model.safetensors")).method == Method.METADATA
    assert fetch.detect(ambiguous(name="q3-report.docx", size=40_000)).method == \
        Method.METADATA
    index = FingerprintIndex()
    from crownguard.engine.triage import ModelVersionRef

    index.add_version(ModelVersionRef("mlflow", "fraud", "7"),
                      [{"path": "model/blob.bin", "sha256": SHA, "size": 1}])
    assert fetch.detect(ambiguous(), index).method == Method.FINGERPRINT
    assert file_calls(incydr) == 0


def test_a_batch_is_fetched_at_most_concurrency_at_a_time() -> None:
    class Slow:
        name = "slow"

        def __init__(self) -> None:
            self.running = self.most = 0
            self.lock = threading.Lock()

        def fetch_head(self, sha256: str, file_name: str | None, limit: int,
                       timeout: float) -> bytes:
            with self.lock:
                self.running += 1
                self.most = max(self.most, self.running)
            time.sleep(0.1)
            with self.lock:
                self.running -= 1
            return b"GGUF\x03\x00\x00\x00" + bytes(16)

    source = Slow()
    fetch = ContentFetch([source], concurrency=3)
    events = [ambiguous(f"{n:064x}", event_id=f"e-{n}") for n in range(9)]
    started = time.monotonic()
    fetch.prefetch(events)
    assert source.most == 3
    assert time.monotonic() - started < 0.9 * 0.9  # three rounds, not nine
    assert fetch.requests == 9
    fetch.prefetch(events)  # every verdict cached now
    assert fetch.requests == 9


# --- the commands ------------------------------------------------------------------------------


@pytest.fixture
def cli_setup(incydr: IncydrMock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
              ) -> tuple[Path, Path]:
    incydr.add_file(gguf_file(tmp_path / "t.gguf").read_bytes(), size=500 * MB, sha256=SHA)
    monkeypatch.setenv("CG_TEST_INCYDR_SECRET", DEFAULT_CLIENT_SECRET)
    settings = {**incydr.connection_settings(), "client_secret": "${env:CG_TEST_INCYDR_SECRET}"}
    config = tmp_path / "connections.yaml"
    config.write_text(json.dumps({"connections": {"incydr": settings}}))
    event = tmp_path / "event.json"
    event.write_text(json.dumps(ambiguous().to_dict()))
    return config, event


def test_triage_fetches_through_the_connections_file_and_no_fetch_turns_it_off(
        run_cli: Callable[..., tuple[int, str, str]], incydr: IncydrMock,
        cli_setup: tuple[Path, Path]) -> None:
    config, event = cli_setup
    code, out, err = run_cli("triage", event, "--config", config, "--no-fetch")
    assert code == 0, err
    assert file_calls(incydr) == 0 and "content fetched" not in out

    code, out, err = run_cli("triage", event, "--config", config)
    assert code == 0, err
    assert "detection  model, gguf (confidence" in out
    assert "content fetched from incydr: 65,536 bytes: GGUF v3" in out
    assert file_calls(incydr) == 1
    tokens = list(incydr.tokens)
    for secret in (DEFAULT_CLIENT_SECRET, *tokens):
        assert secret not in out + err


def test_respond_dry_run_decides_by_content_too(run_cli: Callable[..., tuple[int, str, str]],
                                                incydr: IncydrMock,
                                                cli_setup: tuple[Path, Path]) -> None:
    config, event = cli_setup
    code, out, err = run_cli("respond", event, "--config", config, "--dry-run", "--json")
    assert code in (0, 3), err
    detection = json.loads(out)[0]["detection"]
    assert detection["method"] == "content" and detection["format"] == "gguf"
    assert file_calls(incydr) == 1
    for secret in (DEFAULT_CLIENT_SECRET, *incydr.tokens):
        assert secret not in out + err

    code, out, err = run_cli("respond", event, "--config", config, "--dry-run", "--json",
                             "--no-fetch")
    assert json.loads(out)[0]["detection"]["method"] == "metadata"
    assert file_calls(incydr) == 1


# --- the mock against Code42's own SDK -------------------------------------------------------


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the SDK's pydantic v1-style calls
def test_the_sdk_downloads_a_file_from_the_mock(incydr: IncydrMock) -> None:
    incydr_sdk = pytest.importorskip("incydr")
    from crownguard.plugins.incydr.mock.seed import DEFAULT_CLIENT_ID

    sha = incydr.add_file(b"test data")
    client = incydr_sdk.Client(url=incydr.base_url, api_client_id=DEFAULT_CLIENT_ID,
                               api_client_secret=DEFAULT_CLIENT_SECRET)
    response = client.files.v1.stream_file_by_sha256(sha)
    assert b"".join(response.iter_content(chunk_size=128)) == b"test data"
    assert response.headers["Content-Type"] == "application/octet-stream"
    for sha256, status in (("e" * 64, 404), ("asdf", 400)):  # the SDK raises on both
        with pytest.raises(requests.HTTPError) as error:
            client.files.v1.stream_file_by_sha256(sha256)
        assert error.value.response.status_code == status


def test_triage_keeps_verdicts_beside_the_dedupe_store_without_an_index(
        run_cli: Callable[..., tuple[int, str, str]], incydr: IncydrMock,
        cli_setup: tuple[Path, Path], tmp_path: Path) -> None:
    from crownguard.engine.triage.dedupe import SQLiteDedupe, dedupe_path_beside

    config, event = cli_setup
    journal = tmp_path / "journal.sqlite"
    SQLiteDedupe(dedupe_path_beside(journal)).close()
    for _ in range(2):
        code, out, err = run_cli("triage", event, "--config", config, "--journal", journal)
        assert code == 0, err
    assert "content fetched from incydr (cached verdict): 65,536 bytes: GGUF v3" in out
    assert file_calls(incydr) == 1
    assert (tmp_path / "journal.sqlite.dedupe.content.db").is_file()


def test_an_unknown_file_is_cached_as_such_for_a_while(incydr: IncydrMock, host: PluginHost,
                                                      tmp_path: Path) -> None:
    path = tmp_path / "verdicts.db"
    fetcher(incydr, host, ContentCache(path)).detect(ambiguous())
    detection = fetcher(incydr, host, ContentCache(path)).detect(ambiguous(event_id="e-2"))
    assert file_calls(incydr) == 1
    assert detection.evidence[0] == ("content not fetched from incydr: 404 unknown file "
                                      "(cached); decided by metadata")
    # Past the time to live, the source is asked again (it may hold the file by now).
    incydr.add_file(b"GGUF\x03\x00\x00\x00" + bytes(64), sha256=SHA)
    later = fetcher(incydr, host, ContentCache(path, unknown_ttl=0)).detect(ambiguous())
    assert file_calls(incydr) == 2 and later.method == Method.CONTENT


def test_a_timeout_is_not_cached_across_commands(incydr: IncydrMock, host: PluginHost,
                                                 tmp_path: Path) -> None:
    incydr.add_file(b"GGUF\x03\x00\x00\x00" + bytes(64), sha256=SHA)
    incydr.inject("timeout", seconds=2, path="/v1/files/get-file-by-sha256/*")
    path = tmp_path / "verdicts.db"
    fetcher(incydr, host, ContentCache(path), timeout=0.3).detect(ambiguous())
    detection = fetcher(incydr, host, ContentCache(path)).detect(ambiguous())
    assert detection.method == Method.CONTENT and file_calls(incydr) == 2


def test_a_body_that_trickles_is_cut_off_at_the_timeout(incydr: IncydrMock,
                                                        host: PluginHost) -> None:
    # The answer starts at once, but 64 KiB would take 4 x 0.4 s: the deadline covers the body.
    incydr.add_file(b"GGUF\x03\x00\x00\x00", size=10 * MB, sha256=SHA, seconds_per_chunk=0.4)
    started = time.monotonic()
    detection = fetcher(incydr, host, timeout=0.6).detect(ambiguous())
    assert time.monotonic() - started < 1.2
    assert detection.method == Method.METADATA
    assert detection.evidence[0] == ("content not fetched from incydr: timed out after 0.6s; "
                                     "decided by metadata")


def test_the_cache_file_is_private_and_another_tools_database_is_refused(
        tmp_path: Path) -> None:
    path = tmp_path / "state" / "verdicts.db"
    path.parent.mkdir()
    ContentCache(path).close()
    assert path.stat().st_mode & 0o777 == 0o600
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE photos (id INTEGER)")
    from crownguard.engine.errors import FingerprintIndexError

    with pytest.raises(FingerprintIndexError, match="is not a crownguard content cache"):
        ContentCache(other)
    with sqlite3.connect(other) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    assert tables == {"photos"}


def test_a_scenario_seeds_files_into_the_mock(incydr: IncydrMock, host: PluginHost) -> None:
    import base64

    incydr.seed("files", [{"content_base64": base64.b64encode(b"GGUF\x03\x00\x00\x00"
                                                              + bytes(24)).decode(),
                           "size": 200 * MB, "sha256": SHA}])
    assert fetcher(incydr, host).detect(ambiguous()).format == ModelFormat.GGUF


def test_a_fetched_head_that_is_a_resaved_registered_model_is_a_structural_match(
        incydr: IncydrMock, host: PluginHost, tmp_path: Path) -> None:
    import hashlib

    from test_structure import model, registered, safetensors_bytes

    tensors = model()
    original = safetensors_bytes(tensors, metadata={"format": "pt"})
    copy = safetensors_bytes(dict(reversed(tensors.items())), metadata={"note": "mine now"})
    sha = hashlib.sha256(copy).hexdigest()
    incydr.add_file(copy, size=500 * MB, sha256=sha)
    cache = ContentCache(tmp_path / "cache.db")
    with FingerprintIndex() as index:
        registered(index, original)
        assert index.best_match(sha) is None  # a new hash: only its structure can tell
        detection = fetcher(incydr, host, cache).detect(ambiguous(sha), index=index)
        assert detection.method == Method.STRUCTURAL_FINGERPRINT
        assert detection.strength == "strong" and detection.match is not None
        assert detection.match.model == "fraud-model" and detection.match.version == "7"
        assert detection.evidence[0] == (
            "tensor structure of the content fetched from incydr: re-saved or converted copy of "
            "fraud-model v7 (mlflow, restricted): model/model.safetensors, 20 of 20 tensors")
        # The cached verdict keeps the listing: the next command matches without a request.
        again = fetcher(incydr, host, cache).detect(ambiguous(sha), index=index)
        assert again.method == Method.STRUCTURAL_FINGERPRINT and file_calls(incydr) == 1
    # Without an index holding structures the content decides, as before.
    plain = fetcher(incydr, host, ContentCache()).detect(ambiguous(sha))
    assert plain.method == Method.CONTENT and plain.format == ModelFormat.SAFETENSORS
