"""Contract tests: the mock and the samples against Code42's own Incydr SDK (`incydr` on PyPI,
MIT), which carries the vendor's paths, query parameters and pydantic response models.

The official client is pointed at the mock and must authenticate, page and parse every answer
into its models with no field it does not know; the samples must parse as `FileEventV2`; and
the query the plugin sends must be the one the SDK builds for the same search. Skipped when the
SDK is not installed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

incydr_sdk = pytest.importorskip("incydr")
# The SDK still calls pydantic's v1-style API; its deprecation warnings are not ours.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

from pydantic import BaseModel  # noqa: E402  (pydantic comes with the SDK)

from crownguard.plugins import incydr as incydr_plugin  # noqa: E402
from crownguard.plugins.incydr.mock import IncydrMock  # noqa: E402
from crownguard.plugins.incydr.mock.seed import (  # noqa: E402
    DANA,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEPARTING_LIST,
    MARCO,
    TENANT_ID,
)
from crownguard.plugins.incydr.query import file_event_query  # noqa: E402

SAMPLES = Path(incydr_plugin.__file__).parent / "samples"
USB_SESSION = "e1a0c3f5-7b9d-4c2e-8f1a-3b5d7f9e1c21"
USB_ALERT = "a7c41e02-5d3b-4f6a-9e8c-1b2d3f4a5c61"
MODEL_SUFFIXES = (".safetensors", ".gguf", ".pt", ".onnx", ".bin", ".pkl")


def unknown_fields(model: Any, where: str = "$") -> Iterator[str]:
    """Paths of fields the SDK's models do not declare (they land in model_extra)."""
    if isinstance(model, BaseModel):
        for key in model.model_extra or {}:
            yield f"{where}.{key}"
        for name in type(model).model_fields:
            yield from unknown_fields(getattr(model, name), f"{where}.{name}")
    elif isinstance(model, list):
        for index, item in enumerate(model):
            yield from unknown_fields(item, f"{where}[{index}]")


@pytest.fixture
def incydr(mock_server: Callable[..., Any]) -> IncydrMock:
    return mock_server(IncydrMock)


@pytest.fixture
def sdk(incydr: IncydrMock) -> Any:
    """Code42's client, authenticated against the mock (it calls POST /v1/oauth at once)."""
    return incydr_sdk.Client(url=incydr.base_url, api_client_id=DEFAULT_CLIENT_ID,
                             api_client_secret=DEFAULT_CLIENT_SECRET)


# samples -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(SAMPLES.glob("*.json")), ids=lambda p: p.stem)
def test_samples_are_incydr_v2_file_events(path: Path) -> None:
    from _incydr_sdk.file_events.models.event import FileEventV2

    raw = json.loads(path.read_text())
    event = FileEventV2.model_validate(raw)
    assert list(unknown_fields(event)) == []
    assert event.event.id and event.event.action and event.event.observer == "Endpoint"
    assert event.user.email.endswith("@example.com")
    assert len(event.file.hash.sha256) == 64 and len(event.file.hash.md5) == 32
    assert event.risk.score == sum(i.weight for i in event.risk.indicators)
    is_model = event.file.name.endswith(MODEL_SUFFIXES)
    assert is_model == (path.stem != "csv-export-not-model")


def test_samples_cover_the_four_movements() -> None:
    events = {p.stem: json.loads(p.read_text()) for p in SAMPLES.glob("*.json")}
    assert set(events) == {"model-to-removable-media", "model-to-personal-cloud",
                           "model-upload-genai-browser", "csv-export-not-model"}
    usb = events["model-to-removable-media"]
    assert usb["event"]["action"] == "removable-media-created"
    assert usb["destination"]["removableMedia"]["vendor"] == "SanDisk"
    cloud = events["model-to-personal-cloud"]
    assert (cloud["destination"]["category"], cloud["destination"]["accountType"]) == (
        "Cloud Storage", "PERSONAL")
    genai = events["model-upload-genai-browser"]
    assert genai["destination"]["category"] == "AI Tools"
    assert genai["destination"]["tabs"][0]["url"].startswith("https://chatgpt.com")
    csv = events["csv-export-not-model"]
    assert csv["file"]["mimeTypeByBytes"] == "text/csv"
    assert csv["risk"]["severity"] == "NO_RISK_INDICATED"


# the official SDK against the mock ---------------------------------------------------------------


def test_sdk_authenticates_with_basic_and_reads_the_tenant_from_the_jwt(
        incydr: IncydrMock, sdk: Any) -> None:
    assert sdk.tenant_id == TENANT_ID
    oauth = incydr.calls_to("POST", "/v1/oauth")
    assert len(oauth) == 1 and oauth[0].headers["Authorization"].startswith("Basic ")


def test_sdk_file_event_search_and_pg_token_paging(incydr: IncydrMock, sdk: Any) -> None:
    from incydr import EventQuery

    ids = incydr.add_file_events(5, user="pager@example.com")
    query = EventQuery(start_date="2026-11-01").equals("user.email", "pager@example.com")
    query.page_size = 2
    seen: list[str] = []
    for _ in range(10):
        page = sdk.file_events.v2.search(query)  # sets query.page_token from nextPgToken
        assert page.total_count == 5 and list(unknown_fields(page)) == []
        if not page.file_events:
            break
        seen.extend(e.event.id for e in page.file_events)
    assert sorted(seen) == sorted(ids)
    dana = sdk.file_events.v2.search(
        EventQuery(start_date="2026-11-01").equals("user.email", "dana.whitfield@example.com"))
    assert dana.file_events[0].destination.removable_media.vendor == "SanDisk"


def test_sdk_sessions_and_their_paging(incydr: IncydrMock, sdk: Any) -> None:
    session = sdk.sessions.v1.get_session_details(USB_SESSION)
    assert session.actor_id == DANA and list(unknown_fields(session)) == []
    assert session.triggered_alerts[0].alert_id == USB_ALERT
    incydr.add_sessions(7, actor_id=DANA)
    every = list(sdk.sessions.v1.iter_all(actor_id=DANA, page_size=3))
    assert len(every) == 8 and len({s.session_id for s in every}) == 8
    pages = incydr.calls_to("GET", "/v1/sessions")
    assert [c.arg("page_number") for c in pages] == ["0", "1", "2"]
    events = sdk.sessions.v1.get_session_events(USB_SESSION)
    assert events.file_events[0].file.name.endswith(".safetensors")
    sdk.sessions.v1.update_state_by_id(USB_SESSION, "IN_PROGRESS")
    sdk.sessions.v1.add_note(USB_SESSION, "Looking into it.")
    after = sdk.sessions.v1.get_session_details(USB_SESSION)
    assert after.states[-1].state_v2 == "IN_PROGRESS"
    assert after.notes[-1].content == "Looking into it." and list(unknown_fields(after)) == []


@pytest.mark.filterwarnings("ignore:Alerts are deprecated")
def test_sdk_alert_details(sdk: Any) -> None:
    (alert,) = sdk.alerts.v1.get_details([USB_ALERT])
    assert alert.actor_id == DANA and alert.state == "OPEN"
    assert alert.watchlists[0].type == "DEPARTING_EMPLOYEE"
    observed = alert.observations[0].data  # the SDK parses Incydr's JSON-in-a-string
    assert observed["exposureTypes"] == ["RemovableMedia"]
    assert observed["files"][0]["name"] == "acme-support-llama3-8b-ft.safetensors"
    assert list(unknown_fields(alert)) == []


def test_sdk_actors_and_departure_date(sdk: Any) -> None:
    actor = sdk.actors.v1.get_actor_by_name("dana.whitfield@example.com")
    assert (actor.actor_id, actor.end_date) == (DANA, "2026-12-18")
    assert list(unknown_fields(actor)) == []
    updated = sdk.actors.v1.update_actor(MARCO, end_date="2027-02-01", notes="Resigned")
    assert (updated.end_date, updated.notes) == ("2027-02-01", "Resigned")


def test_sdk_watchlists_members_and_included_actors(incydr: IncydrMock, sdk: Any) -> None:
    assert sdk.watchlists.v2.get_id_by_name("DEPARTING_EMPLOYEE") == DEPARTING_LIST
    mine = sdk.watchlists.v2.get_page(actor_id=DANA)
    assert [w.list_type for w in mine.watchlists] == ["DEPARTING_EMPLOYEE"]
    assert list(unknown_fields(mine)) == []
    sdk.watchlists.v2.add_included_actors(DEPARTING_LIST, MARCO)
    included = sdk.watchlists.v2.get_included_actor(DEPARTING_LIST, MARCO)
    assert included.actor_name == "marco.bianchi@example.com"
    members = list(sdk.watchlists.v2.iter_all_members(DEPARTING_LIST, page_size=1))
    assert [m.actor_id for m in members] == [DANA, MARCO]
    assert all(not list(unknown_fields(m)) for m in members)
    sdk.watchlists.v2.remove_included_actors(DEPARTING_LIST, MARCO)
    assert MARCO not in incydr.members_of(DEPARTING_LIST)
    created = sdk.watchlists.v2.create("FLIGHT_RISK")
    assert created.list_type == "FLIGHT_RISK" and sdk.watchlists.v2.get(
        created.watchlist_id).watchlist_id == created.watchlist_id


# the plugin's query is the SDK's query -----------------------------------------------------------


def test_plugin_query_equals_what_the_sdk_builds() -> None:
    from incydr import EventQuery

    sha = "9c4e1f7a2b8d3e6f0a5c7b9d1e3f5a7c9b2d4f6e8a0c2e4f6a8b0d2f4e6a8c0e"
    ours = file_event_query({"start_time": "2026-11-01T00:00:00Z",
                             "end_time": "2026-11-30T12:30:00Z",
                             "user": "dana.whitfield@example.com", "sha256": sha,
                             "event_actions": ["removable-media-created", "sync-app-created"]},
                            page_size=100)
    theirs = (EventQuery(start_date="2026-11-01 00:00:00", end_date="2026-11-30 12:30:00")
              .equals("user.email", "dana.whitfield@example.com")
              .equals("file.hash.sha256", sha)
              .equals("event.action", ["removable-media-created", "sync-app-created"])).dict()
    assert ours["groups"] == theirs["groups"]
    assert ours["groupClause"] == theirs["groupClause"] == "AND"
    assert {k: ours[k] for k in ("pgNum", "pgSize")} == {k: theirs[k] for k in ("pgNum",
                                                                                "pgSize")}
    EventQuery.model_validate({**ours, "pgToken": ""})  # the SDK's own model accepts it
