"""The Incydr alerts feed (`service.incydr_poll.alerts`) against the Incydr mock's sessions, in
process: a session's file events stored with the alert's context, its own cursor, paging past
50, a session that gains events, a malformed session set aside, a restart in the middle, a
late-indexed session, a 429 honoured; the mock's refusals; the settings."""

from __future__ import annotations

import copy
import dataclasses
import json
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from crownguard.engine.config import config_from_mapping, load_config
from crownguard.engine.errors import ConfigError, SpecError
from crownguard.engine.plugins import PluginHost
from crownguard.engine.scenarios import MockFleet
from crownguard.engine.service.intake import SQLiteIntakeStore
from crownguard.engine.service.metrics import ServiceMetrics
from crownguard.engine.service.poller import (
    ALERTS_POLLER,
    SOURCE,
    IntakePoller,
    PollerGroup,
    incydr_poller,
)
from crownguard.engine.service.settings import IncydrPoll, incydr_poll_settings, service_settings
from crownguard.engine.triage import default_policy_data, policy_from_mapping
from crownguard.plugins.incydr.mock import seed
from crownguard.plugins.incydr.poller import SessionPoll, sessions_query

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = json.loads((ROOT / "plugins" / "incydr" / "samples" /
                       "model-to-removable-media.json").read_text())
POLICY = policy_from_mapping(default_policy_data())
RULE = "Departing employee: removable media"


def file_event(at: datetime, **changes: Any) -> dict[str, Any]:
    """The removable-media sample (a model file) at `at`, with an id of its own."""
    event = copy.deepcopy(TEMPLATE)
    event["@timestamp"] = at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    event["event"]["id"] = f"sess-{uuid.uuid4().hex}"
    event.update(changes)
    return event


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@pytest.fixture
def incydr(service_fleet: MockFleet) -> Any:
    service_fleet.reset()
    mock = service_fleet.get("incydr")
    mock.file_events.clear()
    return mock


@pytest.fixture
def parts(service_fleet: MockFleet, tmp_path: Path) -> Iterator[dict[str, Any]]:
    host = service_fleet.host
    config_file = tmp_path / "connections.yaml"
    config_file.write_text(json.dumps({"connections": {
        "incydr": service_fleet.connections()["incydr"]}}))
    config = load_config(config_file, host.connection_types)
    stores: list[SQLiteIntakeStore] = []

    def poller(**options: Any) -> IntakePoller:
        """The alerts feed as a new process would make it (a SessionPoll of its own)."""
        store = SQLiteIntakeStore(tmp_path / "journal.sqlite")
        stores.append(store)
        real = host.pollers[ALERTS_POLLER]
        return IntakePoller(options.pop("poller", dataclasses.replace(real, poll=SessionPoll())),
                            config, store, POLICY, host.event_sources.values(),
                            ServiceMetrics(store.counts), 1.0, dead_source=ALERTS_POLLER,
                            **options)

    yield {"poller": poller, "config": config, "host": host,
           "journal": tmp_path / "journal.sqlite"}
    for store in stores:
        store.close()
    config.connections.close()


def stored(journal: Path) -> list[str]:
    with sqlite3.connect(journal) as db:
        return [row[0] for row in db.execute(
            "SELECT event_id FROM service_intake WHERE source = ? ORDER BY id", (SOURCE,))]


def stored_event(journal: Path, event_id: str) -> dict[str, Any]:
    with sqlite3.connect(journal) as db:
        [(text,)] = db.execute("SELECT event FROM service_intake WHERE event_id = ?",
                               (event_id,)).fetchall()
    return dict(json.loads(text))


def session_at(incydr: Any, at: datetime, count: int = 1, **options: Any) -> tuple[str, list[
        dict[str, Any]]]:
    events = [file_event(at + timedelta(milliseconds=n)) for n in range(count)]
    return incydr.add_session(seed.DANA, events, rule=options.pop("rule", RULE), **options), \
        events


def test_an_alerting_sessions_events_are_stored_with_the_alert_context(
        incydr: Any, parts: dict[str, Any]) -> None:
    session_id, events = session_at(incydr, datetime.now(UTC) - timedelta(seconds=30), 2,
                                    severity=4)
    quiet = incydr.add_session(seed.SAM, [file_event(datetime.now(UTC))], rule="none")
    incydr.sessions[quiet]["triggeredAlerts"] = []  # no alert: not this feed's
    poller = parts["poller"]()
    result = poller.poll_once()
    assert (result.stored, result.dead) == (2, 0)
    ids = [f"{session_id}:{e['event']['id']}" for e in events]
    assert stored(parts["journal"]) == ids
    event = stored_event(parts["journal"], ids[0])
    assert (event["origin"], event["incident"]) == ("incydr.session_event", session_id)
    assert event["file"]["name"] == TEMPLATE["file"]["name"]
    assert event["actor"]["email"] == TEMPLATE["user"]["email"]
    alert = event["raw"]["session"]["triggeredAlerts"][0]
    assert alert["ruleName"] == RULE
    assert event["raw"]["session"]["scores"][-1]["severity"] == 4
    assert event["raw"]["fileEvent"] == events[0]
    # Its own cursor; the file events feed's is untouched.
    assert poller.store.cursor(ALERTS_POLLER) is not None
    assert poller.store.cursor("incydr") is None
    [listing] = incydr.calls_to("GET", "/v1/sessions")
    assert listing.query["has_alerts"] == ["true"]
    assert (listing.query["order_by"], listing.query["sort_direction"]) == (["end_time"],
                                                                            ["asc"])
    assert [c.path for c in incydr.calls_to("GET", "/v1/sessions/{id}/events")] == [
        f"/v1/sessions/{session_id}/events"]


def test_an_unchanged_session_is_not_asked_for_again_and_one_that_gains_events_is(
        incydr: Any, parts: dict[str, Any]) -> None:
    session_id, events = session_at(incydr, datetime.now(UTC) - timedelta(seconds=30), 2)
    poller = parts["poller"]()
    assert poller.poll_once().stored == 2
    assert poller.poll_once().stored == 0  # listed again in the overlap: same lastUpdated
    assert len(incydr.calls_to("GET", "/v1/sessions/{id}/events")) == 1
    incydr.sessions[session_id]["states"].append({"state": "CLOSED", "stateV2": "CLOSED_TP",
                                                  "sourceTimestamp": 0, "userId": None})
    more = [file_event(datetime.now(UTC))]
    incydr.add_session_events(session_id, more)
    assert incydr.session_state(session_id) == "OPEN_NEW_DATA"
    result = poller.poll_once()
    assert (result.stored, result.duplicates) == (1, 2)  # the stored two are not stored twice
    assert stored(parts["journal"]) == [f"{session_id}:{e['event']['id']}"
                                        for e in (*events, *more)]
    assert len(incydr.calls_to("GET", "/v1/sessions/{id}/events")) == 2


def test_sessions_are_paged_past_50(incydr: Any, parts: dict[str, Any]) -> None:
    start = datetime.now(UTC) - timedelta(seconds=200)
    made = [session_at(incydr, start + timedelta(seconds=n)) for n in range(120)]
    poller = parts["poller"]()
    result = poller.poll_once()
    assert (result.stored, result.pages) == (120, 3)
    assert sorted(stored(parts["journal"])) == sorted(
        f"{sid}:{events[0]['event']['id']}" for sid, events in made)
    pages = incydr.calls_to("GET", "/v1/sessions")
    assert [(c.query["page_number"], c.query["page_size"]) for c in pages] == [
        (["0"], ["50"]), (["1"], ["50"]), (["2"], ["50"])]


def test_a_malformed_session_is_set_aside_and_the_others_go_on(
        incydr: Any, parts: dict[str, Any]) -> None:
    now = datetime.now(UTC)
    first, first_events = session_at(incydr, now - timedelta(seconds=40))
    broken, _ = session_at(incydr, now - timedelta(seconds=30))
    incydr.sessions[broken]["lastUpdated"] = "yesterday"
    gone, _ = session_at(incydr, now - timedelta(seconds=25))
    incydr.inject("status", status=404, path=f"/v1/sessions/{gone}/events", times=None)
    mixed, mixed_events = session_at(incydr, now - timedelta(seconds=20), 2)
    incydr.file_events[-1]["file"] = "not an object"
    last, last_events = session_at(incydr, now - timedelta(seconds=10))
    poller = parts["poller"]()
    result = poller.poll_once()
    assert (result.stored, result.dead) == (3, 3)
    assert stored(parts["journal"]) == [
        f"{first}:{first_events[0]['event']['id']}",
        f"{mixed}:{mixed_events[0]['event']['id']}", f"{last}:{last_events[0]['event']['id']}"]
    letters = {letter["event_id"]: letter for letter in poller.store.dead_letters()}
    assert all(letter["source"] == ALERTS_POLLER for letter in letters.values())
    assert letters[f"{broken}@yesterday"]["reason"] == \
        "endTime and lastUpdated must be epoch milliseconds"
    assert letters[f"{broken}@yesterday"]["event"]["session"]["sessionId"] == broken
    assert letters[f"{gone}@{incydr.sessions[gone]['lastUpdated']}"]["reason"].startswith(
        "its file events could not be read: ")
    bad = letters[f"{mixed}:{mixed_events[1]['event']['id']}"]
    assert bad["reason"] == "fileEvent.file: expected an object, got str"
    # Listed again (for a day): neither asked for again nor set aside (or logged) again.
    asked = len(incydr.calls_to("GET", "/v1/sessions/{id}/events"))
    assert poller.poll_once().dead == 0
    assert len(incydr.calls_to("GET", "/v1/sessions/{id}/events")) == asked
    assert poller.store.dead_letter_counts() == {ALERTS_POLLER: 3}
    # A new process reads them again: still each set aside once.
    assert parts["poller"]().poll_once().dead == 3
    assert poller.store.dead_letter_counts() == {ALERTS_POLLER: 3}
    metrics = poller.metrics
    metrics.dead_letter_counts = poller.store.dead_letter_counts
    metrics.poller_lag = PollerGroup([poller], 1.0).lag_seconds
    shown = metrics.render().decode()
    assert f'crownguard_dead_letters{{source="{ALERTS_POLLER}"}} 3.0' in shown
    assert 'crownguard_dead_letters{source="incydr-poll"} 0.0' in shown
    assert f'crownguard_poller_lag_seconds{{poller="{ALERTS_POLLER}"}}' in shown


def test_a_session_without_an_id_is_set_aside(incydr: Any, parts: dict[str, Any]) -> None:
    session_id, _ = session_at(incydr, datetime.now(UTC) - timedelta(seconds=5))
    incydr.sessions[session_id]["sessionId"] = None
    poller = parts["poller"]()
    assert poller.poll_once().dead == 1
    [letter] = poller.store.dead_letters()
    assert (letter["event_id"], letter["reason"]) == (None, "the session has no sessionId")


def test_a_restart_in_the_middle_neither_skips_nor_repeats(incydr: Any,
                                                          parts: dict[str, Any]) -> None:
    start = datetime.now(UTC) - timedelta(seconds=200)
    made = [session_at(incydr, start + timedelta(seconds=n)) for n in range(120)]
    for sid, events in made:  # updated as they ended: the page a restart goes on from shows
        incydr.sessions[sid]["lastUpdated"] = incydr.sessions[sid]["endTime"] + 1000
    ids = [f"{sid}:{events[0]['event']['id']}" for sid, events in made]

    def killed_after_one_page(connections: Any, since: datetime, size: int
                              ) -> Iterator[list[dict[str, Any]]]:
        pages = SessionPoll()(connections, since, size)
        yield next(pages)
        raise RuntimeError("the process was killed here")

    real = parts["host"].pollers[ALERTS_POLLER]
    overlap = timedelta(seconds=10)
    first = parts["poller"](poller=dataclasses.replace(real, poll=killed_after_one_page),
                            overlap=timedelta(minutes=5))
    with pytest.raises(RuntimeError):
        first.poll_once()
    assert stored(parts["journal"]) == ids[:50]
    cursor = datetime.fromisoformat(str(first.store.cursor(ALERTS_POLLER)).replace("Z",
                                                                                    "+00:00"))
    assert ms(cursor) == incydr.sessions[made[49][0]]["endTime"]
    before = len(incydr.calls_to("GET", "/v1/sessions/{id}/events"))
    result = parts["poller"](overlap=overlap).poll_once()
    # It went on from the stored page: the 70 left, and the 12 updated within the overlap
    # (10 s) of the cursor read again and known: each event stored once.
    assert (result.stored, result.duplicates) == (70, 12)
    assert stored(parts["journal"]) == ids
    assert len(incydr.calls_to("GET", "/v1/sessions/{id}/events")) - before == \
        70 + result.duplicates


def test_a_late_indexed_session_inside_the_overlap_is_caught(incydr: Any,
                                                            parts: dict[str, Any]) -> None:
    session_at(incydr, datetime.now(UTC) - timedelta(seconds=5))
    poller = parts["poller"]()
    assert poller.poll_once().stored == 1
    cursor = datetime.fromisoformat(str(poller.store.cursor(ALERTS_POLLER)).replace("Z",
                                                                                     "+00:00"))
    # Listed only now, though Incydr last updated them before the cursor.
    late, late_events = session_at(incydr, cursor - timedelta(minutes=3))
    incydr.sessions[late]["lastUpdated"] = ms(cursor - timedelta(minutes=2))
    too_late, _ = session_at(incydr, cursor - timedelta(minutes=8))
    incydr.sessions[too_late]["lastUpdated"] = ms(cursor - timedelta(minutes=6))
    result = poller.poll_once()
    assert result.stored == 1
    assert f"{late}:{late_events[0]['event']['id']}" in stored(parts["journal"])
    assert not any(e.startswith(too_late) for e in stored(parts["journal"]))


def test_a_session_that_began_a_day_before_is_listed(incydr: Any, parts: dict[str, Any]) -> None:
    session_id, _ = session_at(incydr, datetime.now(UTC) - timedelta(hours=20))
    incydr.add_session_events(session_id, [file_event(datetime.now(UTC))])
    assert parts["poller"]().poll_once().stored == 2
    [listing] = incydr.calls_to("GET", "/v1/sessions")
    since = int(listing.query["on_or_after"][0])
    assert ms(datetime.now(UTC)) - since > 24 * 3600 * 1000


def test_sessions_moving_while_listed_are_listed_again(incydr: Any,
                                                       parts: dict[str, Any]) -> None:
    start = datetime.now(UTC) - timedelta(seconds=200)
    made = [session_at(incydr, start + timedelta(seconds=n)) for n in range(60)]
    pages = SessionPoll()(parts["config"].connections, datetime.now(UTC) - timedelta(minutes=5),
                          50)
    seen = [item["id"] for item in next(pages)]
    # One read session gains an event and moves to the end: the 51st moves onto page 0.
    incydr.add_session_events(made[0][0], [file_event(datetime.now(UTC))])
    for page in pages:
        seen.extend(item["id"] for item in page)
    assert {f"{sid}:{events[0]['event']['id']}" for sid, events in made} <= set(seen)
    assert [c.query["page_number"] for c in incydr.calls_to("GET", "/v1/sessions")] == [
        ["0"], ["1"], ["0"], ["1"]]


def test_a_429_is_honoured_and_moves_no_cursor(incydr: Any, parts: dict[str, Any]) -> None:
    session_at(incydr, datetime.now(UTC) - timedelta(seconds=5))
    incydr.inject("status", status=429, retry_after=7, path="/v1/sessions")
    poller = parts["poller"]()
    assert poller.poll_logged(threading.Event(), lambda: None) == 7.0
    assert poller.store.cursor(ALERTS_POLLER) is None and poller.completed == 0
    assert poller.metrics.poll_failures._value.get() == 1
    assert poller.poll_once().stored == 1


def test_a_feed_told_to_wait_is_not_polled_before_then() -> None:
    clock = [0.0]
    polls: list[tuple[str, float]] = []
    stop = threading.Event()

    class Feed:
        def __init__(self, name: str, waits: list[float]):
            self.poller = type("P", (), {"name": name})()
            self.waits = waits

        def poll_logged(self, stop_: Any, wake: Any) -> float:
            polls.append((self.poller.name, clock[0]))
            if len(polls) >= 8:
                stop.set()
            return self.waits.pop(0) if self.waits else 0.0

        def lags(self) -> dict[str, float]:
            return {self.poller.name: 0.0}

    class Stop:
        def is_set(self) -> bool:
            return stop.is_set()

        def wait(self, seconds: float) -> None:
            clock[0] += seconds

    group = PollerGroup([Feed("incydr", []), Feed("incydr_alerts", [5.0])],
                        1.0, monotonic=lambda: clock[0])
    group.run(Stop(), lambda: None)
    alerts = [at for name, at in polls if name == "incydr_alerts"]
    files = [at for name, at in polls if name == "incydr"]
    assert alerts[:2] == [0.0, 5.0]  # the 429's Retry-After, not the interval
    assert files[:3] == [0.0, 1.0, 2.0]
    assert group.lag_seconds() == {"incydr": 0.0, "incydr_alerts": 0.0}


def test_the_pollers_are_picked_by_the_settings(parts: dict[str, Any]) -> None:
    host, config = parts["host"], parts["config"]
    store = SQLiteIntakeStore(Path(str(parts["journal"]) + ".other"))
    try:
        def names(settings: IncydrPoll) -> list[str]:
            group = incydr_poller(host, config, store, POLICY, ServiceMetrics(store.counts),
                                  settings.interval_seconds, settings)
            return [feed.poller.name for feed in group.feeds]

        assert names(IncydrPoll(60)) == ["incydr"]
        assert names(IncydrPoll(60, alerts=True)) == ["incydr", ALERTS_POLLER]
        assert names(IncydrPoll(60, file_events=False, alerts=True)) == [ALERTS_POLLER]
        group = incydr_poller(host, config, store, POLICY, ServiceMetrics(store.counts), 60,
                              IncydrPoll(60, alerts=True))
        assert [f.dead_source for f in group.feeds] == ["incydr-poll", ALERTS_POLLER]
    finally:
        store.close()
    assert incydr_poll_settings({"incydr_poll": {"interval_seconds": 30, "alerts": True}}) == \
        IncydrPoll(30.0, True, True)
    assert incydr_poll_settings({"incydr_poll": {}}) == IncydrPoll()
    assert incydr_poll_settings({}) is None


def test_the_alerts_poller_needs_the_incydr_plugin(parts: dict[str, Any]) -> None:
    host = PluginHost()  # nothing installed
    store = SQLiteIntakeStore(Path(str(parts["journal"]) + ".bare"))
    try:
        with pytest.raises(ConfigError, match="'incydr_alerts': is the incydr plugin"):
            incydr_poller(host, parts["config"], store, POLICY, ServiceMetrics(store.counts),
                          60, IncydrPoll(60, file_events=False, alerts=True))
    finally:
        store.close()


# --- the mock, as Incydr answers -----------------------------------------------------------------


def _token(incydr: Any) -> dict[str, str]:
    answer = requests.post(f"{incydr.base_url}/v1/oauth", auth=(seed.DEFAULT_CLIENT_ID,
                                                               seed.DEFAULT_CLIENT_SECRET),
                           timeout=10)
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


@pytest.mark.parametrize(("name", "value", "message"), [
    ("has_alerts", "yes", "has_alerts must be true or false"),
    ("order_by", "begin_time", "order_by must be one of end_time, score"),
    ("sort_direction", "up", "sort_direction must be asc or desc"),
    ("state", "DONE", "state must be one of OPEN"),
    ("severity", "9", "severity must be 0 to 4, not 9"),
    ("page_size", "51", "page_size must be between 1 and 50"),
    ("on_or_after", "yesterday", "must be integers"),
])
def test_the_mock_refuses_a_bad_listing_parameter_as_incydr_does(
        incydr: Any, name: str, value: str, message: str) -> None:
    answer = requests.get(f"{incydr.base_url}/v1/sessions", params={name: value},
                          headers=_token(incydr), timeout=10)
    assert answer.status_code == 400
    body = answer.json()
    assert (body["code"], body["details"]) == (3, [])  # google.rpc.Status INVALID_ARGUMENT
    assert message in body["message"]


def test_the_mock_needs_a_token_and_says_429_with_retry_after(incydr: Any) -> None:
    assert requests.get(f"{incydr.base_url}/v1/sessions", timeout=10).status_code == 401
    incydr.inject("status", status=429, retry_after=3, path="/v1/sessions")
    answer = requests.get(f"{incydr.base_url}/v1/sessions", headers=_token(incydr), timeout=10)
    assert answer.status_code == 429 and answer.headers["Retry-After"] == "3"
    assert answer.json()["code"] == 8  # RESOURCE_EXHAUSTED


def test_the_mock_serves_a_sessions_events_as_the_sdk_reads_them(incydr: Any) -> None:
    session_id, events = session_at(incydr, datetime.now(UTC), 2)
    answer = requests.get(f"{incydr.base_url}/v1/sessions/{session_id}/events",
                          headers=_token(incydr), timeout=10).json()
    assert [e["event"]["id"] for e in answer["queryResult"]["fileEvents"]] == [
        e["event"]["id"] for e in events]
    assert answer["queryResult"]["totalCount"] == 2
    sdk = pytest.importorskip("incydr")
    del sdk
    from _incydr_sdk.sessions.models.response import SessionEvents, SessionsPage

    SessionEvents.model_validate(answer)
    listing = requests.get(f"{incydr.base_url}/v1/sessions", params={"has_alerts": "true"},
                           headers=_token(incydr), timeout=10).json()
    page = SessionsPage.model_validate(listing)
    assert session_id in [s.session_id for s in page.items]


def test_the_seeded_alerting_sessions_are_about_model_files(incydr: Any) -> None:
    alerting = [s for s in incydr.sessions.values() if s["triggeredAlerts"]]
    assert len(alerting) >= 2
    names = {e["event"]["id"]: e["file"]["name"] for e in incydr.samples.values()}
    for session in alerting:
        [event_id] = incydr.session_events[session["sessionId"]]
        assert names[event_id].endswith((".safetensors", ".gguf", ".bin", ".pt", ".ckpt",
                                         ".pth", ".onnx"))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_the_sessions_query_is_the_one_the_incydr_sdk_builds() -> None:
    pytest.importorskip("incydr")
    from _incydr_sdk.sessions.models.models import SessionsQueryRequest

    since = datetime(2026, 12, 2, 6, 0, 0, tzinfo=UTC)
    ours = {**sessions_query(since), "page_number": 2, "page_size": 50}
    theirs = SessionsQueryRequest(on_or_after=ms(since - timedelta(hours=24)),
                                  has_alerts="true", order_by="end_time",
                                  sort_direction="asc", page_number=2, page_size=50)
    assert ours == {k: v for k, v in theirs.model_dump().items() if v is not None}


@pytest.mark.parametrize(("poll", "message"), [
    ({"interval_seconds": 60, "alerts": "yes"},
     r"service.incydr_poll.alerts: .*'yes' is not of type 'boolean'"),
    ({"file_events": False}, "service.incydr_poll: polls nothing: file_events is false and "
                             "alerts is not true"),
    ({"alert": True}, "alert"),
])
def test_a_bad_incydr_poll_is_refused_naming_where(poll: dict[str, Any], message: str) -> None:
    config = config_from_mapping({"connections": {}, "service": {"incydr_poll": poll}}, {},
                                 env={})
    with pytest.raises(SpecError, match=message):
        service_settings(config, env={})


def test_the_design_key_still_works_and_alerts_are_added_to_it() -> None:
    for poll, expected in (({"interval_seconds": 60}, IncydrPoll(60.0)),
                           ({"interval_seconds": 5, "alerts": True, "file_events": False},
                            IncydrPoll(5.0, False, True))):
        config = config_from_mapping({"connections": {}, "service": {"incydr_poll": poll}},
                                     {}, env={})
        assert service_settings(config, env={}).incydr_poll_seconds == expected.interval_seconds
        assert incydr_poll_settings(config.service) == expected
