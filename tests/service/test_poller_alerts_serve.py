"""Issue 14: the Incydr alerts feed through a real `crownguard serve` and the Incydr mock.

`service.incydr_poll: {alerts: true}`: the file events of alerting sessions go into intake
(source `incydr-poll`) with the alert's context and start the shipped playbooks; a malformed
session is set aside (API and metrics); past 50 sessions a kill -9 in the middle of a poll and
a restart neither skip nor repeat; a 429's Retry-After is honoured while the file events feed
goes on."""

from __future__ import annotations

import copy
import json
import signal
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from servicetest import SECRETS, TOKENS, Served, start_service, wait_for

from crownguard.engine.scenarios import MockFleet
from crownguard.plugins.incydr.mock import seed

SAMPLES = Path(__file__).resolve().parents[2] / "plugins" / "incydr" / "samples"
USB = json.loads((SAMPLES / "model-to-removable-media.json").read_text())
CSV = json.loads((SAMPLES / "csv-export-not-model.json").read_text())
RULE = "Departing employee: removable media"


def files_for(folder: Path, fleet: MockFleet, poll: dict[str, Any]) -> dict[str, Any]:
    """Every mock vendor's connection (secrets from the environment), the shipped playbooks
    and a service section with `incydr_poll: poll`."""
    env: dict[str, str] = {}
    types = fleet.host.connection_types
    connections: dict[str, Any] = {}
    for name, settings in fleet.connections().items():
        connections[name] = {}
        for key, value in settings.items():
            if key in types[name].secrets:
                env[f"CG_TEST_{name}_{key}".upper()] = str(value)
                value = f"${{env:CG_TEST_{name}_{key}}}".upper().replace("${ENV:", "${env:")
            connections[name][key] = value
    tokens = []
    for n, (name, (role, token)) in enumerate(TOKENS.items()):
        env[f"CG_TEST_TOKEN_{n}"] = token
        tokens.append({"name": name, "token": f"${{env:CG_TEST_TOKEN_{n}}}", "role": role})
    env["CG_TEST_SIEM_SECRET"] = SECRETS["siem"]
    (folder / "connections.yaml").write_text(json.dumps({"connections": connections, "service": {
        "tokens": tokens, "sources": {"siem": {"secret": "${env:CG_TEST_SIEM_SECRET}"}},
        "incydr_poll": poll}}))
    (folder / "policy.yaml").write_text("{}")
    return {"config": folder / "connections.yaml", "policy": folder / "policy.yaml",
            "env": env, "secrets": list(env.values())}


def event_like(template: dict[str, Any], at: datetime) -> dict[str, Any]:
    event = copy.deepcopy(template)
    event["@timestamp"] = at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    event["event"]["id"] = f"sess-{uuid.uuid4().hex}"
    return event


def polled(journal: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(journal) as db:
        return db.execute("SELECT event_id, status FROM service_intake WHERE source = "
                          "'incydr-poll' ORDER BY id").fetchall()


def metric(served: Served, prefix: str) -> float:
    text = served.call("GET", "/metrics", who=None).text
    [line] = [line for line in text.splitlines() if line.startswith(prefix + " ")]
    return float(line.split()[1])


@pytest.fixture
def incydr(service_fleet: MockFleet) -> Iterator[Any]:
    service_fleet.reset()
    mock = service_fleet.get("incydr")
    mock.file_events.clear()
    yield mock
    mock.clear_faults()


def test_alerting_sessions_feed_intake_set_a_bad_one_aside_and_survive_a_kill(
        incydr: Any, service_fleet: MockFleet, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    model = incydr.add_session(seed.DANA, [event_like(USB, now - timedelta(seconds=100))],
                               rule=RULE, severity=4)
    broken = incydr.add_session(seed.DANA, [event_like(USB, now - timedelta(seconds=99))],
                                rule=RULE)
    incydr.sessions[broken]["lastUpdated"] = "soon"
    # Sam's CSV exports (not model files: triage starts nothing), past one page of 50.
    crowd = [incydr.add_session(seed.SAM, [event_like(CSV, now - timedelta(seconds=90 - n / 2))],
                                rule="Large exports", severity=2) for n in range(110)]
    expected = {f"{sid}:{incydr.session_events[sid][0]}" for sid in (model, *crowd)}
    incydr.inject("latency", seconds=0.08, path="/v1/sessions/*", times=None)
    files = files_for(tmp_path, service_fleet, {"interval_seconds": 0.3, "alerts": True,
                                                "file_events": False})
    journal = tmp_path / "journal.sqlite"
    served = start_service(files, journal)
    try:
        wait_for(lambda: len(polled(journal)) >= 50, timeout=60, what="the first page")
    finally:
        served.stop(signal.SIGKILL)  # in the middle of the poll: a page or two stored
    first = [e for e, _ in polled(journal)]
    assert 50 <= len(first) < len(expected), "the kill came after the whole poll"
    with sqlite3.connect(journal) as db:
        [(cursor,)] = db.execute("SELECT cursor FROM service_poll_cursors WHERE name = "
                                 "'incydr_alerts'").fetchall()
        assert db.execute("SELECT count(*) FROM service_poll_cursors WHERE name = 'incydr'"
                          ).fetchone()[0] == 0
    assert cursor
    incydr.clear_faults()
    again = start_service(files, journal)
    try:
        wait_for(lambda: {e for e, _ in polled(journal)} == expected
                 and all(s in ("done", "failed") for _, s in polled(journal)),
                 timeout=60, what="every session's events after the restart")
        ids = [e for e, _ in polled(journal)]
        assert len(ids) == len(set(ids)) == len(expected)  # none skipped, none twice
        assert ids[:len(first)] == first
        # The model file's event started the shipped playbook, with the alert's context.
        [run] = again.runs_of(f"{model}:{incydr.session_events[model][0]}")
        assert (run["playbook"], run["steps"]["soc_ticket"]["status"]) == (
            "departing-employee-model-exfil", "succeeded")
        with sqlite3.connect(journal) as db:
            [(text,)] = db.execute("SELECT inputs FROM runs WHERE run_id = ?",
                                   (run["run_id"],)).fetchall()
        inputs = json.loads(text)
        event = inputs["event"]
        assert (event["incident"], event["origin"]) == (model, "incydr.session_event")
        assert event["raw"]["session"]["triggeredAlerts"][0]["ruleName"] == RULE
        assert event["raw"]["session"]["scores"][-1]["severity"] == 4
        assert "model_file" in [r["indicator"] for r in inputs["risk"]["reasons"]]
        shown = again.call("GET", "/v1/intake/dead-letters").json()["dead_letters"]
        [letter] = [d for d in shown if d["source"] == "incydr_alerts"]
        assert letter["reason"] == "endTime and lastUpdated must be epoch milliseconds"
        assert letter["event"]["session"]["sessionId"] == broken
        assert metric(again, 'crownguard_dead_letters{source="incydr_alerts"}') == 1.0
        assert 0 <= metric(again, 'crownguard_poller_lag_seconds{poller="incydr_alerts"}') < 5
    finally:
        assert again.stop() == 0, "".join(again.log)
    log = "".join(served.log + again.log)
    assert "Traceback" not in log, log
    assert all(secret not in log for secret in files["secrets"])


def test_a_429_is_honoured_and_the_file_events_feed_goes_on(
        incydr: Any, service_fleet: MockFleet, tmp_path: Path) -> None:
    session = incydr.add_session(seed.SAM, [event_like(CSV, datetime.now(UTC))],
                                 rule="Large exports", severity=2)
    incydr.inject("status", status=429, retry_after=2, path="/v1/sessions")
    files = files_for(tmp_path, service_fleet, {"interval_seconds": 0.2, "alerts": True})
    served = start_service(files, tmp_path / "journal.sqlite")
    try:
        event_id = incydr.session_events[session][0]
        wait_for(lambda: len(polled(served.journal)) == 2, timeout=30,
                 what="the event, from each feed")
        # Both feeds read it: as a file event, and as the session's (the alert's context).
        assert sorted(e for e, _ in polled(served.journal)) == sorted(
            [event_id, f"{session}:{event_id}"])
        refused, answered, *_ = incydr.calls_to("GET", "/v1/sessions")
        assert answered.at - refused.at >= 1.9  # Retry-After: 2, not the 0.2 s interval
        searches = [c.at for c in incydr.calls_to("POST", "/v2/file-events")]
        assert sum(refused.at < at < answered.at for at in searches) >= 3
        assert metric(served, "crownguard_poller_failures_total") == 1.0
        assert "polling again in 2 s at the earliest" in "".join(served.log)
    finally:
        assert served.stop() == 0, "".join(served.log)
    assert "Traceback" not in "".join(served.log)
