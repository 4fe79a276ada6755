"""A file event of an alerting Incydr session as the poller stores it (`{"session",
"fileEvent"}`): recognised by the incydr event source, normalised with the session as the
incident, and refused naming the `session.` or `fileEvent.` field."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from crownguard.engine.errors import EventError
from crownguard.engine.plugins import PluginHost
from crownguard.engine.triage import normalise, recognise
from crownguard.plugins.incydr.session_events import SESSION_EVENT

SAMPLES = Path(__file__).resolve().parents[2] / "plugins" / "incydr" / "samples"
EVENT = json.loads((SAMPLES / "model-to-removable-media.json").read_text())
SESSION = {"sessionId": "e1a0c3f5-7b9d-4c2e-8f1a-3b5d7f9e1c21", "actorId": "42",
           "beginTime": 1794009600000, "endTime": 1794009660000,
           "lastUpdated": 1794009720000,
           "triggeredAlerts": [{"alertId": "a1", "ruleId": "r1", "lessonId": None,
                                "ruleName": "Departing employee: removable media"}],
           "scores": [{"score": 80, "severity": 4, "sourceTimestamp": 1794009690000}]}


@pytest.fixture(scope="module")
def sources() -> tuple[Any, ...]:
    return tuple(PluginHost.from_entry_points().event_sources.values())


def wrapped(**changes: Any) -> dict[str, Any]:
    payload = {"session": copy.deepcopy(SESSION), "fileEvent": copy.deepcopy(EVENT)}
    payload.update(changes)
    return payload


def test_a_session_file_event_is_the_file_event_with_the_session_as_incident(
        sources: tuple[Any, ...]) -> None:
    payload = wrapped()
    assert recognise(payload, sources) == SESSION_EVENT
    event = normalise(payload, sources=sources)
    plain = normalise(EVENT, sources=sources)
    assert event.id == f"{SESSION['sessionId']}:{EVENT['event']['id']}"
    assert (event.origin, event.incident) == (SESSION_EVENT, SESSION["sessionId"])
    assert (event.actor, event.file, event.destination, event.time) == (
        plain.actor, plain.file, plain.destination, plain.time)
    assert event.raw is payload
    assert event.to_dict()["raw"]["session"]["triggeredAlerts"][0]["ruleName"] == \
        "Departing employee: removable media"


@pytest.mark.parametrize(("changes", "message"), [
    ({"session": {**SESSION, "sessionId": ""}}, "session.sessionId: is required"),
    ({"session": {**SESSION, "triggeredAlerts": "rule"}},
     "session.triggeredAlerts: expected a list of objects"),
    ({"fileEvent": None}, "fileEvent: expected an object"),
    ({"fileEvent": {**EVENT, "file": "not an object"}},
     "fileEvent.file: expected an object, got str"),
    ({"fileEvent": {**EVENT, "user": {"email": "nobody"}}},
     "fileEvent.user.email: not an e-mail address"),
])
def test_a_bad_session_file_event_names_the_field(sources: tuple[Any, ...],
                                                  changes: dict[str, Any], message: str) -> None:
    with pytest.raises(EventError, match=message):
        normalise(wrapped(**changes), sources=sources)


def test_other_payloads_are_not_taken_for_session_events(sources: tuple[Any, ...]) -> None:
    assert recognise({"session": SESSION}, sources) == "unknown"
    assert recognise({"session": "s", "fileEvent": EVENT}, sources) == "unknown"
    assert recognise(EVENT, sources) == "incydr.file_event"
