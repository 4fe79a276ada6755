"""Issue 14: Slack interactions and the Incydr poller through a real `crownguard serve`.

The shipped cloud/gen-AI playbook's justification loop end to end: the Incydr event comes in
through intake, the run nudges the employee in Slack and waits; a click, signed as Slack signs
it, is posted to /v1/slack/interactions and answered 200 at once; the answer is recorded in
the background by the employee's e-mail (users.info) and the run goes on. Then the poller:
file events the Incydr mock holds are fed into intake, a malformed one is set aside, and a
restart neither skips nor repeats."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import signal
import sqlite3
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from servicetest import SECRETS, TOKENS, Served, start_service, wait_for

from crownguard.engine.scenarios import MockFleet, seed

ROOT = Path(__file__).resolve().parents[2]
CLOUD = ROOT / "plugins" / "incydr" / "samples" / "model-to-personal-cloud.json"
REMOVABLE = ROOT / "plugins" / "incydr" / "samples" / "model-to-removable-media.json"
PRIYA = "priya.raman@example.com"
BOB = "bob.okafor@example.com"
PEOPLE = {"slack": {"users": [{"email": PRIYA, "name": "Priya Raman"},
                              {"email": BOB, "name": "Bob Okafor"}]}}
WHY = "benchmarking on my home GPU, deleted now"


def _files(folder: Path, fleet: MockFleet, poll: float | None) -> dict[str, Any]:
    """Every mock vendor's connection (secrets from the environment), the shipped playbooks,
    and a service section; `poll`: service.incydr_poll's interval."""
    env: dict[str, str] = {}
    types = fleet.host.connection_types
    connections: dict[str, Any] = {}
    for name, settings in fleet.connections().items():
        entry = {}
        for key, value in settings.items():
            if key in types[name].secrets:
                variable = f"CG_TEST_{name}_{key}".upper()
                env[variable] = str(value)
                entry[key] = f"${{env:{variable}}}"
            else:
                entry[key] = value
        connections[name] = entry
    tokens = []
    for n, (name, (role, token)) in enumerate(TOKENS.items()):
        env[f"CG_TEST_TOKEN_{n}"] = token
        tokens.append({"name": name, "token": f"${{env:CG_TEST_TOKEN_{n}}}", "role": role})
    env["CG_TEST_SIEM_SECRET"] = SECRETS["siem"]
    service: dict[str, Any] = {"tokens": tokens,
                               "sources": {"siem": {"secret": "${env:CG_TEST_SIEM_SECRET}"}}}
    if poll is not None:
        service["incydr_poll"] = {"interval_seconds": poll}
    (folder / "connections.yaml").write_text(json.dumps({"connections": connections,
                                                         "service": service}))
    (folder / "policy.yaml").write_text("{}")
    return {"config": folder / "connections.yaml", "policy": folder / "policy.yaml",
            "env": env, "secrets": [v for k, v in env.items()]}


@pytest.fixture
def slack_served(service_fleet: MockFleet, tmp_path: Path) -> Iterator[tuple[Served, MockFleet,
                                                                            dict[str, Any]]]:
    service_fleet.reset()
    seed(service_fleet, PEOPLE)
    files = _files(tmp_path, service_fleet, None)
    served = start_service(files, tmp_path / "journal.sqlite")
    yield served, service_fleet, files
    assert served.stop() == 0, "".join(served.log)
    assert "Traceback" not in "".join(served.log), "".join(served.log)


def signed(secret: str, payload: dict[str, Any], stamp: int | None = None
           ) -> tuple[bytes, dict[str, str]]:
    """The body and headers Slack sends for `payload` (v0 HMAC-SHA256 of v0:ts:body)."""
    body = urlencode({"payload": json.dumps(payload)}).encode()
    ts = str(int(time.time()) if stamp is None else stamp)
    signature = "v0=" + hmac.new(secret.encode(), f"v0:{ts}:".encode() + body,
                                 hashlib.sha256).hexdigest()
    return body, {"X-Slack-Signature": signature, "X-Slack-Request-Timestamp": ts,
                  "Content-Type": "application/x-www-form-urlencoded"}


def click(message: dict[str, Any], channel: str, user_id: str) -> dict[str, Any]:
    """Slack's block_actions payload for the business-reason button with a justification."""
    [actions] = [b for b in message["blocks"] if b["type"] == "actions"]
    [button] = [e for e in actions["elements"]
                if e["action_id"] == "crownguard_business_reason"]
    [text_box] = [b for b in message["blocks"] if b["type"] == "input"]
    return {"type": "block_actions",
            "user": {"id": user_id, "username": "someone", "team_id": "T0CROWN01"},
            "team": {"id": "T0CROWN01", "domain": "crownguard-demo"},
            "container": {"type": "message", "message_ts": message["ts"],
                          "channel_id": channel},
            "channel": {"id": channel, "name": "directmessage"},
            "state": {"values": {text_box["block_id"]: {text_box["element"]["action_id"]: {
                "type": "plain_text_input", "value": WHY}}}},
            "actions": [{"action_id": button["action_id"], "block_id": actions["block_id"],
                         "value": button["value"], "type": "button",
                         "action_ts": f"{time.time():.6f}"}]}


def _waiting_run(served: Served, fleet: MockFleet) -> tuple[dict[str, Any], dict[str, Any]]:
    """The shipped playbook started through intake, waiting for Priya; and its nudge."""
    sample = json.loads(CLOUD.read_text())
    assert served.post_event(sample).status_code == 202
    [run] = served.runs_of(sample["event"]["id"])
    assert run["playbook"] == "model-to-personal-cloud-or-genai"
    assert run["steps"]["await_answer"]["status"] == "waiting"
    nudge = run["steps"]["nudge"]["output"]
    [message] = [m for m in fleet.get("slack").messages(nudge["channel"])
                 if m["ts"] == nudge["ts"]]
    return run, {**nudge, "message": message}


def _run(served: Served, run_id: str) -> dict[str, Any]:
    return dict(served.call("GET", f"/v1/runs/{run_id}").json())


def test_a_signed_click_answers_the_shipped_playbook_by_the_employees_email(
        slack_served: tuple[Served, MockFleet, dict[str, Any]]) -> None:
    served, fleet, files = slack_served
    slack = fleet.get("slack")
    run, nudge = _waiting_run(served, fleet)
    priya_id = nudge["user_id"]
    body, headers = signed(slack.signing_secret, click(nudge["message"], nudge["channel"],
                                                       priya_id))
    # Slack is slow to say who clicked: the 200 does not wait for it (Slack's 3 s rule).
    slack.inject("latency", seconds=3.5, path="/api/users.info")
    started = time.monotonic()
    answered = served.http.post(f"{served.base}/v1/slack/interactions", data=body,
                                headers=headers, timeout=10)
    took = time.monotonic() - started
    assert answered.status_code == 200, answered.text
    assert answered.content == b""  # what Slack expects: no message to replace
    assert took < 3.0

    def finished() -> dict[str, Any] | None:
        shown = _run(served, run["run_id"])
        return shown if shown["status"] == "succeeded" else None

    done = wait_for(finished, what="the run to go on after the click")
    assert time.monotonic() - started > 3.5  # it went on only after Slack said who
    assert done["steps"]["await_answer"]["output"]["by"] == PRIYA
    assert done["steps"]["record_answer"]["status"] == "succeeded"
    [approval] = done["approvals"]
    assert (approval["by"], approval["accepted"], approval["decision"]) == \
        (PRIYA, True, "approve")
    assert approval["comment"] == f"business_reason: {WHY}"
    assert approval["reason"] == f"also known as {priya_id}"
    [info] = slack.calls_to("GET", "/api/users.info")
    assert info.query == {"user": [priya_id]}
    metrics = served.call("GET", "/metrics", who=None).text
    assert 'crownguard_slack_interactions_total{outcome="accepted"} 1.0' in metrics
    log = "".join(served.log)
    assert all(secret not in log + json.dumps(done) for secret in files["secrets"])


def test_a_click_by_someone_else_is_refused_and_recorded(
        slack_served: tuple[Served, MockFleet, dict[str, Any]]) -> None:
    served, fleet, _ = slack_served
    slack = fleet.get("slack")
    run, nudge = _waiting_run(served, fleet)
    bob_id = next(u["id"] for u in slack.users.values() if u["profile"]["email"] == BOB)
    body, headers = signed(slack.signing_secret, click(nudge["message"], nudge["channel"],
                                                       bob_id))
    assert served.http.post(f"{served.base}/v1/slack/interactions", data=body,
                            headers=headers, timeout=10).status_code == 200
    [approval] = wait_for(lambda: _run(served, run["run_id"])["approvals"],
                          what="the refusal to be recorded")
    assert (approval["by"], approval["accepted"]) == (BOB, False)
    assert _run(served, run["run_id"])["status"] == "waiting"


def test_a_click_survives_a_kill_after_its_200_and_a_resent_one_counts_once(
        service_fleet: MockFleet, tmp_path: Path) -> None:
    service_fleet.reset()
    seed(service_fleet, PEOPLE)
    slack = service_fleet.get("slack")
    files = _files(tmp_path, service_fleet, None)
    journal = tmp_path / "journal.sqlite"
    served = start_service(files, journal)
    try:
        run, nudge = _waiting_run(served, service_fleet)
        payload = click(nudge["message"], nudge["channel"], nudge["user_id"])
        body, headers = signed(slack.signing_secret, payload)
        slack.inject("latency", seconds=5, path="/api/users.info")
        answered = served.http.post(f"{served.base}/v1/slack/interactions", data=body,
                                    headers=headers, timeout=10)
        assert answered.status_code == 200
        wait_for(lambda: slack.calls_to("GET", "/api/users.info"), what="users.info")
    finally:
        served.stop(signal.SIGKILL)  # while it waits for Slack: the click is not recorded yet
    with sqlite3.connect(journal) as db:
        assert db.execute("SELECT count(*) FROM approvals").fetchone()[0] == 0
    again = start_service(files, journal)
    try:
        done = wait_for(lambda: (lambda r: r if r["status"] == "succeeded" else None)(
            _run(again, run["run_id"])), what="the next process to record the click")
        [approval] = done["approvals"]
        assert (approval["by"], approval["accepted"]) == (PRIYA, True)
        # Slack sends it again (its retry after a slow answer): the same click, counted once.
        body, headers = signed(slack.signing_secret, payload)
        assert again.http.post(f"{again.base}/v1/slack/interactions", data=body,
                               headers=headers, timeout=10).status_code == 200
        metrics = again.call("GET", "/metrics", who=None).text
        assert 'crownguard_slack_interactions_total{outcome="duplicate"} 1.0' in metrics
        time.sleep(0.5)
        assert len(_run(again, run["run_id"])["approvals"]) == 1
    finally:
        assert again.stop() == 0, "".join(again.log)
    assert "Traceback" not in "".join(again.log), "".join(again.log)


def test_unsigned_stale_and_foreign_requests_are_refused_and_store_nothing(
        slack_served: tuple[Served, MockFleet, dict[str, Any]]) -> None:
    served, fleet, _ = slack_served
    slack = fleet.get("slack")
    run, nudge = _waiting_run(served, fleet)
    payload = click(nudge["message"], nudge["channel"], nudge["user_id"])
    url = f"{served.base}/v1/slack/interactions"

    body, headers = signed("not-the-signing-secret-at-all", payload)
    wrong = served.http.post(url, data=body, headers=headers, timeout=10)
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "bad_signature"
    assert wrong.json()["error"]["where"] == "X-Slack-Signature"

    body, headers = signed(slack.signing_secret, payload, stamp=int(time.time()) - 600)
    stale = served.http.post(url, data=body, headers=headers, timeout=10)
    assert stale.status_code == 401
    assert "stale or replayed" in stale.json()["error"]["message"]

    unsigned = served.http.post(url, data=body, timeout=10)
    assert unsigned.status_code == 401

    body, headers = signed(slack.signing_secret, {"type": "url_verification"})
    foreign = served.http.post(url, data=body, headers=headers, timeout=10)
    assert foreign.status_code == 400
    assert foreign.json()["error"]["code"] == "not_an_interaction"

    body = b"payload=%7Bnot-json"
    ts = str(int(time.time()))
    signature = "v0=" + hmac.new(slack.signing_secret.encode(), f"v0:{ts}:".encode() + body,
                                 hashlib.sha256).hexdigest()
    garbled = served.http.post(url, data=body, timeout=10, headers={
        "X-Slack-Signature": signature, "X-Slack-Request-Timestamp": ts})
    assert garbled.status_code == 400
    assert "not JSON" in garbled.json()["error"]["message"]

    time.sleep(0.5)  # nothing handed off: nothing recorded, no one asked
    assert _run(served, run["run_id"])["approvals"] == []
    assert slack.calls_to("GET", "/api/users.info") == []
    assert slack.signing_secret not in "".join(served.log)


# --- the poller -------------------------------------------------------------------------------

NOT_A_MODEL = json.loads((ROOT / "plugins" / "incydr" / "samples" /
                          "csv-export-not-model.json").read_text())


def polled_event(at: datetime, **changes: Any) -> dict[str, Any]:
    """A file event Incydr holds (not a model file: triage starts no run for it)."""
    event = copy.deepcopy(NOT_A_MODEL)
    event["@timestamp"] = at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    event["event"]["id"] = f"poll-{uuid.uuid4().hex}"
    event.update(changes)
    return event


def polled(served: Served) -> list[tuple[str, str]]:
    with sqlite3.connect(served.journal) as db:
        return db.execute("SELECT event_id, status FROM service_intake WHERE source = "
                          "'incydr-poll' ORDER BY id").fetchall()


def test_the_poller_feeds_intake_sets_a_bad_event_aside_and_survives_a_kill(
        service_fleet: MockFleet, tmp_path: Path) -> None:
    service_fleet.reset()
    incydr = service_fleet.get("incydr")
    incydr.file_events.clear()
    now = datetime.now(UTC)
    first = [polled_event(now - timedelta(seconds=30 - n)) for n in range(3)]
    bad = polled_event(now - timedelta(seconds=25), file="not an object")
    for event in (*first, bad):
        incydr.add_file_event(event)
    files = _files(tmp_path, service_fleet, 0.3)
    journal = tmp_path / "journal.sqlite"
    served = start_service(files, journal)
    try:
        wait_for(lambda: [s for _, s in polled(served)] == ["done"] * 3,
                 what="the polled events to be processed")
        assert [e for e, _ in polled(served)] == [e["event"]["id"] for e in first]
        shown = served.call("GET", "/v1/intake/dead-letters")
        assert shown.status_code == 200, shown.text
        [letter] = shown.json()["dead_letters"]
        assert (letter["event_id"], letter["source"]) == (bad["event"]["id"], "incydr-poll")
        assert letter["reason"] == "file: expected an object, got str"
        assert served.call("GET", "/v1/intake/dead-letters", who=None).status_code == 401
        metrics = served.call("GET", "/metrics", who=None).text
        assert 'crownguard_dead_letters{source="incydr-poll"} 1.0' in metrics
        lag = [line for line in metrics.splitlines()
               if line.startswith('crownguard_poller_lag_seconds{poller="incydr"} ')]
        assert lag and 0 <= float(lag[0].split()[1]) < 5
    finally:
        served.stop(signal.SIGKILL)
    # While it is down: new events, and one Incydr indexed late (before the cursor).
    with sqlite3.connect(journal) as db:
        [(cursor,)] = db.execute("SELECT cursor FROM service_poll_cursors WHERE name = "
                                 "'incydr'").fetchall()
    at = datetime.fromisoformat(cursor.replace("Z", "+00:00"))
    later = [polled_event(datetime.now(UTC) - timedelta(seconds=1)),
             polled_event(at - timedelta(minutes=2))]
    for event in later:
        incydr.add_file_event(event)
    again = start_service(files, journal)
    try:
        wait_for(lambda: len(polled(again)) == 5 and all(s == "done" for _, s in polled(again)),
                 what="the new events after the restart")
        time.sleep(1.0)  # a few more polls over the overlap: nothing is stored twice
        ids = [e for e, _ in polled(again)]
        assert sorted(ids) == sorted(e["event"]["id"] for e in (*first, *later))
        assert len(again.call("GET", "/v1/intake/dead-letters").json()["dead_letters"]) == 1
    finally:
        assert again.stop() == 0, "".join(again.log)
    log = "".join(served.log + again.log)
    assert "Traceback" not in log, log
    assert all(secret not in log for secret in files["secrets"])
