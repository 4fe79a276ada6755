"""The intake's fast paths give the answers of the slow ones: the Rust-compiled event schema
only ever says "valid" where the Python validator does, orjson falls back to the json module
where they differ, and the gate's plain-ASGI route answers like the FastAPI one."""

from __future__ import annotations

import asyncio
import copy
import json
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from servicetest import BASE_EVENT, SECRETS, new_event

from crownguard.engine.errors import EventError, JournalError
from crownguard.engine.plugins import PluginHost
from crownguard.engine.service.app import build_app
from crownguard.engine.service.intake import SQLiteIntakeStore, _dumps
from crownguard.engine.service.payloads import parse_json
from crownguard.engine.service.problems import ServiceProblem
from crownguard.engine.service.service import Options, Service
from crownguard.engine.service.signing import sign
from crownguard.engine.triage.events.model import _fast_validator, _validator, validate_event_dict

# --- the event schema: Rust says "valid" only where Python does -------------------------------

_PATHS = [("id",), ("time",), ("action",), ("actor", "email"), ("actor", "id"),
          ("actor", "departure_date"), ("actor", "watchlists"), ("file", "name"),
          ("file", "size"), ("file", "sha256"), ("file", "path"), ("destination", "kind"),
          ("destination", "domain"), ("device", "hostname"), ("source", "registry"), ("extra",)]
_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40),
                    st.floats(allow_nan=False), st.text(max_size=40),
                    st.sampled_from(["2026-01-02", "2026-01-02T03:04:05Z", "2026-13-45",
                                     "2026-01-02T03:04:05", "a@b", "a@b.example", "@",
                                     "x" * 400, "a" * 64, "A" * 64]),
                    st.lists(st.text(max_size=5), max_size=3),
                    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(_PATHS), _VALUES, st.booleans()), max_size=4))
def test_the_fast_validator_never_takes_what_the_python_one_refuses(
        changes: list[tuple[tuple[str, ...], Any, bool]]) -> None:
    event = copy.deepcopy(BASE_EVENT)
    for path, value, delete in changes:
        node = event
        for key in path[:-1]:
            node = node.setdefault(key, {}) if isinstance(node, dict) else node
        if not isinstance(node, dict):
            continue
        if delete:
            node.pop(path[-1], None)
        else:
            node[path[-1]] = value
    if _fast_validator().is_valid(event):
        assert not list(_validator().iter_errors(event)), event


def test_a_valid_event_is_valid_by_both_and_errors_still_name_the_field() -> None:
    assert _fast_validator().is_valid(BASE_EVENT)
    validate_event_dict(BASE_EVENT)
    broken = copy.deepcopy(BASE_EVENT)
    broken["file"]["size"] = "big"
    with pytest.raises(EventError) as caught:
        validate_event_dict(broken)
    assert "file.size" in str(caught.value)


def test_what_only_the_rust_validator_refuses_is_still_taken() -> None:
    # Python's format checker has no date-time check without rfc3339-validator; the Rust one
    # has. The Python validator decides, as it did before the fast path.
    event = copy.deepcopy(BASE_EVENT)
    event["time"] = "2026-01-02 03:04:05+00:00"
    if not list(_validator().iter_errors(event)):
        validate_event_dict(event)


# --- JSON: orjson where it agrees, the json module where it does not ---------------------------

@pytest.mark.parametrize("body", [b'{"a": NaN}', b'{"n": 123456789012345678901234567890}',
                                  b'[{"x": Infinity}]'])
def test_bodies_orjson_refuses_are_read_by_the_json_module(body: bytes) -> None:
    assert json.dumps(parse_json(body)) == json.dumps(json.loads(body))


def test_a_body_that_is_not_json_is_a_400_naming_line_and_column() -> None:
    with pytest.raises(ServiceProblem) as caught:
        parse_json(b'{"a": 1,\n "b": }')
    assert caught.value.status == 400 and caught.value.where == "line 2 column 7"


def test_stored_text_falls_back_for_what_orjson_cannot_write() -> None:
    assert json.loads(_dumps({"n": 2**70})) == {"n": 2**70}
    assert json.loads(_dumps({1: "a"})) == {"1": "a"}
    event = new_event("x")
    assert json.loads(_dumps(event)) == json.loads(json.dumps(event))


# --- the gate's route ---------------------------------------------------------------------------

async def _post(app: Any, path: str, body: bytes, headers: dict[str, str],
                chunks: int = 1, disconnect: bool = False) -> tuple[int, dict[str, Any]] | None:
    step = max(1, len(body) // chunks)
    parts = [body[i:i + step] for i in range(0, len(body), step)] or [b""]
    messages = [{"type": "http.request", "body": p, "more_body": i < len(parts) - 1}
                for i, p in enumerate(parts)]
    if disconnect:
        messages = messages[:1]
        messages[0]["more_body"] = True
        messages.append({"type": "http.disconnect"})
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "client": ("127.0.0.1", 1),
             "server": ("127.0.0.1", 80),
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}
    await app(scope, receive, send)
    if not sent:
        return None
    start = next(m for m in sent if m["type"] == "http.response.start")
    data = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], json.loads(data)


def _signed(body: bytes) -> dict[str, str]:
    ts = str(int(time.time()))
    return {"Content-Type": "application/json", "X-Crownguard-Timestamp": ts,
            "X-Crownguard-Signature": sign(SECRETS["siem"], ts, body)}


@pytest.fixture
def service(service_files: dict[str, Any], tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Any:
    for name, value in service_files["env"].items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CROWNGUARD_INTAKE_WORKERS", "0")
    started = Service.start(PluginHost.from_entry_points(),
                            Options(str(service_files["config"]), str(service_files["policy"]),
                                    str(tmp_path / "j.sqlite"), workers=0))
    yield started
    started.close()


def test_the_gate_stores_a_body_sent_in_chunks_and_answers_202(service: Any) -> None:
    events = [new_event() for _ in range(3)]
    body = json.dumps(events).encode()
    status, answer = asyncio.run(_post(build_app(service), "/v1/events/siem", body,
                                       _signed(body), chunks=5))
    assert status == 202
    assert [a["event_id"] for a in answer["accepted"]] == [e["id"] for e in events]
    assert service.store.counts()["pending"] == 3


def test_the_gate_refuses_like_the_api_and_stores_nothing(service: Any) -> None:
    app = build_app(service)
    body = json.dumps(new_event()).encode()
    status, answer = asyncio.run(_post(app, "/v1/events/siem", body, {}))
    assert status == 401 and answer["error"]["code"] == "unsigned"
    status, answer = asyncio.run(_post(app, "/v1/events/nobody", body, _signed(body)))
    assert status == 401 and answer["error"]["code"] == "unknown_source"
    assert asyncio.run(_post(app, "/v1/events/siem", body, _signed(body),
                             disconnect=True)) is None
    assert service.store.counts()["pending"] == 0
    # Not the intake's path: FastAPI answers (no such endpoint, wrong method).
    status, answer = asyncio.run(_post(app, "/v1/events/siem/extra", body, _signed(body)))
    assert status in (404, 405) and "error" in answer


def test_a_store_that_fails_is_a_503_to_retry(service: Any, monkeypatch: Any) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise JournalError("disk I/O error")

    monkeypatch.setattr(service.store, "submit", broken)
    body = json.dumps(new_event()).encode()
    status, answer = asyncio.run(_post(build_app(service), "/v1/events/siem", body,
                                       _signed(body)))
    assert status == 503 and answer["error"]["code"] == "not_stored"


def test_submit_answers_every_request_once_committed(tmp_path: Path) -> None:
    store = SQLiteIntakeStore(tmp_path / "j.sqlite")
    futures = [store.submit("siem", [(f"e{n}", {"n": n}), ("same", {})]) for n in range(50)]
    results = [f.result(timeout=10) for f in futures]
    assert [r[0].duplicate for r in results] == [False] * 50
    assert sum(not r[1].duplicate for r in results) == 1
    store.close()


@pytest.mark.parametrize("body", [b'{"n": 1234567890123456789}', b'[-12345678901234567890]',
                                  b'{"id": "1187294401563829104", "n":12345678901234567890123}'])
def test_long_integers_stay_integers(body: bytes) -> None:
    assert parse_json(body) == json.loads(body)
    assert all(not isinstance(v, float) for v in json.loads(body).values()) \
        if isinstance(json.loads(body), dict) else True


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(-10**30, 10**30)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30)
    | st.from_regex(r"\A[a-z_ -]{0,3}[0-9]{17,24}\Z"),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4), max_leaves=20)


def _typed(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_typed(v) for v in value]
    return (type(value).__name__, value)


@settings(max_examples=300, deadline=None)
@given(st.lists(_JSON, min_size=1, max_size=3) | st.dictionaries(st.text(max_size=8), _JSON),
       st.booleans())
def test_parse_json_reads_what_the_json_module_reads(document: Any, spaced: bool) -> None:
    body = json.dumps(document, separators=(", ", ": ") if spaced else (",", ":")).encode()
    assert _typed(parse_json(body)) == _typed(json.loads(body))
