"""An intake item taken again after its first attempt stopped (a kill -9 between its dedupe
claim and being marked done) ends with exactly one run: the run is started when none reached
the journal, and the run that did is named; and every item stores its outcome, saying why
when it needed no run. In process: the service's own background, intake table and journal."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from servicetest import new_event

from crownguard.engine.plugins import PluginHost
from crownguard.engine.service.intake import IntakeItem
from crownguard.engine.service.service import Options, Service
from crownguard.engine.triage import event_from_dict

PLAYBOOK = "contain-after-approval"


@pytest.fixture
def service(service_files: dict[str, Any], tmp_path: Path) -> Iterator[Service]:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in service_files["env"].items():
            patch.setenv(name, value)
        started = Service.start(PluginHost.from_entry_points(), Options(
            str(service_files["config"]), str(service_files["policy"]),
            str(tmp_path / "j.sqlite")))  # the background is not started: items by hand
        yield started
        started.close()


def taken(service: Service, event: dict[str, Any]) -> IntakeItem:
    service.store.add("siem", [(event["id"], event)])
    [item] = service.store.take(1)
    return item


def claimed_before_the_kill(service: Service, item: IntakeItem) -> Any:
    """The claim the killed attempt made, as the service's intake makes it."""
    event = event_from_dict(item.event, origin=f"intake item {item.id}")
    decision = service.triage.router.claim(PLAYBOOK, event, at=event.time.timestamp(),
                                           claimant=item.claimant)
    assert decision.chosen
    return event


def row(service: Service, item: IntakeItem) -> tuple[str, list[str], str]:
    with sqlite3.connect(service.journal.path) as db:
        status, runs, outcome = db.execute("SELECT status, runs, outcome FROM service_intake "
                                           "WHERE id = ?", (item.id,)).fetchone()
    return status, json.loads(runs), outcome


def run_ids(service: Service) -> set[str]:
    return {run.run_id for run in service.journal.list_runs(limit=1000)}


def test_killed_after_its_claim_and_before_its_run_the_item_starts_it(
        service: Service) -> None:
    item = taken(service, new_event())
    claimed_before_the_kill(service, item)
    service.background._process(item)
    status, runs, outcome = row(service, item)
    assert status == "done" and len(runs) == 1 and run_ids(service) == set(runs)
    assert outcome.startswith(f"started {PLAYBOOK} (run {runs[0]}, waiting)")


def test_a_run_noted_in_the_claim_but_not_in_the_journal_is_started(service: Service) -> None:
    item = taken(service, new_event())
    event = claimed_before_the_kill(service, item)
    lost = uuid.uuid4().hex  # noted, then the kill came before the journal had it
    service.triage.router.started(PLAYBOOK, event, at=event.time.timestamp(), run_id=lost)
    service.background._process(item)
    status, runs, _ = row(service, item)
    assert status == "done" and len(runs) == 1 and runs != [lost]
    assert run_ids(service) == set(runs)


def test_a_run_that_reached_the_journal_is_named_and_not_started_again(
        service: Service) -> None:
    item = taken(service, new_event())
    event = claimed_before_the_kill(service, item)
    made = uuid.uuid4().hex
    service.triage.router.started(PLAYBOOK, event, at=event.time.timestamp(), run_id=made)
    book = service.triage.router.playbooks[PLAYBOOK]
    service.journal.create_run(made, book.name, book.text, inputs={"event": item.event})
    service.background._process(item)
    status, runs, outcome = row(service, item)
    assert (status, runs) == ("done", [made])
    assert run_ids(service) == {made}  # the takeover of its lapsed lease drives it on
    assert outcome == f"continued {PLAYBOOK} (run {made}, started before a restart)"


def test_an_item_that_needs_no_run_says_why(service: Service) -> None:
    first = taken(service, new_event())
    service.background._process(first)
    [run] = row(service, first)[1]
    copy = {**first.event, "id": f"again-{first.event_id}"}  # the same file and person
    duplicate = taken(service, copy)
    service.background._process(duplicate)
    status, runs, outcome = row(service, duplicate)
    assert (status, runs) == ("done", [])
    assert outcome.startswith("no run needed (risk ")
    assert f"{PLAYBOOK}: duplicate: already started for this file and person" in outcome
    assert f"by run {run}" in outcome
    plain = new_event()
    plain["file"].update(name="notes.txt", original_name="notes.txt", size=2048,
                         mime_type="text/plain", mime_type_by_bytes="text/plain",
                         category="Document", category_by_bytes="Document")
    other = taken(service, plain)
    service.background._process(other)
    status, runs, outcome = row(service, other)
    assert (status, runs) == ("done", [])
    assert f"{PLAYBOOK}: trigger is false" in outcome and "short-wait: trigger is false" in outcome
