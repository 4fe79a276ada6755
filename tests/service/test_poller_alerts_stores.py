"""The Incydr alerts feed on both intake stores (the journal's SQLite file, its PostgreSQL
database on a real server): its own cursor beside the file events feed's, its dead letters
under its own name, and a restart in the middle of a poll that neither skips nor repeats."""

from __future__ import annotations

import copy
import dataclasses
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from test_intake_stores import location, open_store

from crownguard.engine.config import load_config
from crownguard.engine.scenarios import MockFleet
from crownguard.engine.service.metrics import ServiceMetrics
from crownguard.engine.service.poller import ALERTS_POLLER, IntakePoller, incydr_poller
from crownguard.engine.service.settings import IncydrPoll
from crownguard.engine.triage import default_policy_data, policy_from_mapping
from crownguard.plugins.incydr.mock import seed
from crownguard.plugins.incydr.poller import SessionPoll

TEMPLATE = json.loads((Path(__file__).resolve().parents[2] / "plugins" / "incydr" /
                       "samples" / "model-to-removable-media.json").read_text())
POLICY = policy_from_mapping(default_policy_data())


def file_event(at: datetime) -> dict[str, Any]:
    event = copy.deepcopy(TEMPLATE)
    event["@timestamp"] = at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    event["event"]["id"] = f"sess-{uuid.uuid4().hex}"
    return event


@pytest.fixture(params=["sqlite", "postgres"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return location(request.param, request, tmp_path)


@pytest.fixture
def config(service_fleet: MockFleet, tmp_path: Path) -> Iterator[Any]:
    service_fleet.reset()
    service_fleet.get("incydr").file_events.clear()
    path = tmp_path / "connections.yaml"
    path.write_text(json.dumps({"connections": {
        "incydr": service_fleet.connections()["incydr"]}}))
    loaded = load_config(path, service_fleet.host.connection_types)
    yield loaded
    loaded.connections.close()


def test_the_alerts_feed_keeps_its_cursor_and_letters_in_either_store(
        where: str, config: Any, service_fleet: MockFleet) -> None:
    incydr = service_fleet.get("incydr")
    start = datetime.now(UTC) - timedelta(seconds=120)
    made = [incydr.add_session(seed.DANA, [file_event(start + timedelta(seconds=n))],
                               rule="Departing employee: removable media")
            for n in range(60)]
    incydr.sessions[made[10]]["lastUpdated"] = "soon"
    host = service_fleet.host
    real = host.pollers[ALERTS_POLLER]

    def killed_after_one_page(connections: Any, since: datetime, size: int
                              ) -> Iterator[list[dict[str, Any]]]:
        yield next(SessionPoll()(connections, since, size))
        raise RuntimeError("the process was killed here")

    store = open_store(where)
    try:
        first = IntakePoller(dataclasses.replace(real, poll=killed_after_one_page), config,
                             store, POLICY, host.event_sources.values(),
                             ServiceMetrics(store.counts), 1.0, dead_source=ALERTS_POLLER)
        with pytest.raises(RuntimeError):
            first.poll_once()
        assert store.cursor(ALERTS_POLLER) is not None and store.cursor("incydr") is None
        assert store.dead_letter_counts() == {ALERTS_POLLER: 1}
    finally:
        store.close()
    store = open_store(where)  # the next process
    try:
        group = incydr_poller(host, config, store, POLICY, ServiceMetrics(store.counts), 1.0,
                              IncydrPoll(1.0, alerts=True))
        files, alerts = group.feeds
        files.poll_once()
        result = alerts.poll_once()
        assert result.stored == 10  # the 49 of the first page are known; 10 more were left
        assert store.cursor("incydr") is not None  # each feed its own cursor
        assert store.dead_letter_counts() == {ALERTS_POLLER: 1}  # set aside once
        [letter] = store.dead_letters()
        assert (letter["source"], letter["event_id"]) == (ALERTS_POLLER, f"{made[10]}@soon")
        ids = {f"{sid}:{incydr.session_events[sid][0]}" for n, sid in enumerate(made)
               if n != 10}
        found = {item.event_id for item in store.take(200) if item.source == "incydr-poll"}
        assert ids <= found
        assert len([i for i in found if ":" in i]) == 59
    finally:
        store.close()
