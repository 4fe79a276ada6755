"""The Incydr poller against the Incydr mock (its Forensic Search and pgToken paging), in
process: pages stored with their cursor, a restart in the middle of a poll, a malformed event
set aside once, a late-indexed event caught by the overlap, the lag."""

from __future__ import annotations

import copy
import dataclasses
import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from crownguard.engine.config import load_config
from crownguard.engine.errors import ConfigError
from crownguard.engine.plugins import PluginHost
from crownguard.engine.scenarios import MockFleet
from crownguard.engine.service.intake import SQLiteIntakeStore
from crownguard.engine.service.metrics import ServiceMetrics
from crownguard.engine.service.poller import SOURCE, IntakePoller, incydr_poller
from crownguard.engine.triage import default_policy_data, policy_from_mapping

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = json.loads((ROOT / "plugins" / "incydr" / "samples" /
                       "model-to-removable-media.json").read_text())
POLICY = policy_from_mapping(default_policy_data())


def file_event(at: datetime, **changes: Any) -> dict[str, Any]:
    """The removable-media sample at `at`, with an id of its own."""
    event = copy.deepcopy(TEMPLATE)
    event["@timestamp"] = at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    event["event"]["id"] = f"poll-{uuid.uuid4().hex}"
    event.update(changes)
    return event


@pytest.fixture
def incydr(service_fleet: MockFleet) -> Any:
    service_fleet.reset()
    mock = service_fleet.get("incydr")
    mock.file_events.clear()  # the shipped samples are weeks old: outside any window anyway
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
        store = SQLiteIntakeStore(tmp_path / "journal.sqlite")
        stores.append(store)
        return IntakePoller(options.pop("poller", host.pollers["incydr"]), config, store,
                            POLICY, host.event_sources.values(), ServiceMetrics(store.counts),
                            1.0, **{"page_size": 2, **options})

    yield {"poller": poller, "config": config, "host": host, "journal": tmp_path /
           "journal.sqlite"}
    for store in stores:
        store.close()
    config.connections.close()


def stored(journal: Path) -> list[str]:
    with sqlite3.connect(journal) as db:
        return [row[0] for row in db.execute(
            "SELECT event_id FROM service_intake WHERE source = ? ORDER BY id", (SOURCE,))]


def test_pages_are_stored_with_their_cursor(incydr: Any, parts: dict[str, Any]) -> None:
    now = datetime.now(UTC)
    events = [file_event(now - timedelta(seconds=60 - n)) for n in range(5)]
    for event in events:
        incydr.add_file_event(event)
    poller = parts["poller"]()
    result = poller.poll_once()
    assert (result.stored, result.duplicates, result.dead, result.pages) == (5, 0, 0, 3)
    assert stored(parts["journal"]) == [e["event"]["id"] for e in events]
    [search, *_] = incydr.calls_to("POST", "/v2/file-events")
    [[window]] = [g["filters"] for g in search.json["groups"]]
    assert window["operator"] == "ON_OR_AFTER"  # five minutes back from the first poll
    assert abs(datetime.fromisoformat(window["value"].replace("Z", "+00:00"))
               - (now - timedelta(minutes=5))).total_seconds() < 5
    again = poller.poll_once()  # the overlap reads them again: known, not stored twice
    assert (again.stored, again.duplicates) == (0, 5)
    assert len(stored(parts["journal"])) == 5
    assert poller.lag_seconds() < 5


def test_a_restart_in_the_middle_neither_skips_nor_repeats(incydr: Any,
                                                          parts: dict[str, Any]) -> None:
    now = datetime.now(UTC)
    events = [file_event(now - timedelta(seconds=60 - n)) for n in range(5)]
    for event in events:
        incydr.add_file_event(event)
    real = parts["host"].pollers["incydr"]

    def killed_after_one_page(connections: Any, since: datetime, size: int
                              ) -> Iterator[list[dict[str, Any]]]:
        pages = real.poll(connections, since, size)
        yield next(pages)
        raise RuntimeError("the process was killed here")

    first = parts["poller"](poller=dataclasses.replace(real, poll=killed_after_one_page))
    with pytest.raises(RuntimeError):
        first.poll_once()
    assert stored(parts["journal"]) == [e["event"]["id"] for e in events[:2]]
    assert first.store.cursor("incydr") == events[1]["@timestamp"].replace("Z", "000Z")
    # A new process on the same journal goes on from the stored page.
    result = parts["poller"]().poll_once()
    assert (result.stored, result.duplicates) == (3, 2)
    assert stored(parts["journal"]) == [e["event"]["id"] for e in events]


def test_a_malformed_event_is_set_aside_once_and_the_rest_go_on(
        incydr: Any, parts: dict[str, Any]) -> None:
    now = datetime.now(UTC)
    good = [file_event(now - timedelta(seconds=30)), file_event(now - timedelta(seconds=10))]
    bad = file_event(now - timedelta(seconds=20), file="not an object")
    for event in (good[0], bad, good[1]):
        incydr.add_file_event(event)
    poller = parts["poller"]()
    result = poller.poll_once()
    assert (result.stored, result.dead) == (2, 1)
    assert stored(parts["journal"]) == [e["event"]["id"] for e in good]
    [letter] = poller.store.dead_letters()
    assert letter["source"] == SOURCE
    assert letter["event_id"] == bad["event"]["id"]
    assert letter["reason"] == "file: expected an object, got str"
    assert letter["event"] == bad
    poller.poll_once()  # read again in the overlap: still one dead letter
    assert len(poller.store.dead_letters()) == 1
    assert poller.store.dead_letter_counts() == {SOURCE: 1}
    metrics = poller.metrics
    metrics.dead_letter_counts = poller.store.dead_letter_counts
    assert f'crownguard_dead_letters{{source="{SOURCE}"}} 1.0' in metrics.render().decode()


def test_a_stop_ends_a_poll_after_the_page_in_hand(incydr: Any, parts: dict[str, Any]) -> None:
    now = datetime.now(UTC)
    for n in range(5):
        incydr.add_file_event(file_event(now - timedelta(seconds=60 - n)))
    stop = threading.Event()
    stop.set()
    poller = parts["poller"]()
    assert poller.poll_once(stop).pages == 0
    assert poller.store.cursor("incydr") is None and poller.completed == 0
    assert poller.poll_once().stored == 5


def test_an_event_without_an_id_is_set_aside_too(incydr: Any, parts: dict[str, Any]) -> None:
    event = file_event(datetime.now(UTC) - timedelta(seconds=5))
    incydr.add_file_event(event)
    incydr.file_events[-1]["event"]["id"] = None
    poller = parts["poller"]()
    assert poller.poll_once().dead == 1
    poller.poll_once()
    [letter] = poller.store.dead_letters()
    assert letter["event_id"] is None and "no event id" in letter["reason"]


def test_a_late_indexed_event_inside_the_overlap_is_caught(incydr: Any,
                                                          parts: dict[str, Any]) -> None:
    now = datetime.now(UTC)
    incydr.add_file_event(file_event(now - timedelta(seconds=5)))
    poller = parts["poller"]()
    assert poller.poll_once().stored == 1
    cursor = datetime.fromisoformat(str(poller.store.cursor("incydr")).replace("Z", "+00:00"))
    # Indexed only now, though it happened two minutes before the cursor.
    late = file_event(cursor - timedelta(minutes=2))
    too_late = file_event(cursor - timedelta(minutes=6))  # past the overlap: documented limit
    incydr.add_file_event(late)
    incydr.add_file_event(too_late)
    result = poller.poll_once()
    assert (result.stored, result.duplicates) == (1, 1)
    assert late["event"]["id"] in stored(parts["journal"])
    assert too_late["event"]["id"] not in stored(parts["journal"])


def test_incydr_down_fails_the_poll_and_moves_no_cursor(incydr: Any,
                                                        parts: dict[str, Any]) -> None:
    incydr.add_file_event(file_event(datetime.now(UTC) - timedelta(seconds=5)))
    incydr.inject("status", status=503, path="/v2/file-events", times=None)
    poller = parts["poller"]()
    with pytest.raises(Exception, match="503"):
        poller.poll_once()
    assert poller.store.cursor("incydr") is None and poller.completed == 0
    lag = poller.lag_seconds()
    time.sleep(0.2)
    assert poller.lag_seconds() > lag  # it grows while polls fail
    incydr.faults.clear()
    assert poller.poll_once().stored == 1
    assert poller.lag_seconds() < 1


def test_the_poller_needs_the_incydr_connection(parts: dict[str, Any], tmp_path: Path) -> None:
    host: PluginHost = parts["host"]
    config_file = tmp_path / "empty.yaml"
    config_file.write_text(json.dumps({"connections": {}}))
    config = load_config(config_file, host.connection_types)
    store = SQLiteIntakeStore(tmp_path / "other.sqlite")
    try:
        with pytest.raises(ConfigError, match="no 'incydr' connection to poll"):
            incydr_poller(host, config, store, POLICY, ServiceMetrics(store.counts), 60)
    finally:
        store.close()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the SDK's pydantic v1-style calls
def test_the_poll_query_is_the_one_the_incydr_sdk_builds() -> None:
    sdk = pytest.importorskip("incydr")
    from crownguard.plugins.incydr.poller import query

    since = datetime(2026, 12, 2, 6, 0, 0, 123000, tzinfo=UTC)
    theirs = sdk.EventQuery(start_date=since)
    theirs.sort_dir, theirs.sort_key, theirs.page_size = "asc", "@timestamp", 500
    ours = query(since, 500)
    assert {**ours, "pgToken": ""} == theirs.dict()
    sdk.EventQuery.model_validate({**ours, "pgToken": ""})
