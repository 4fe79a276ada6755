"""Kill the runner anywhere, resume, and every side effect is applied exactly once.

The in-process test crashes 200 runs at random journal appends (before or after the write,
sometimes again during the resume), waits for whatever calls were already on the wire, and
resumes from the journal alone. The subprocess test SIGKILLs real `crownguard run` processes
and resumes them with `crownguard resume --all`.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from crownguard.engine.cli import main
from crownguard.engine.config import config_from_mapping
from crownguard.engine.journal import SQLiteJournal
from crownguard.engine.plugins import PluginHost
from crownguard.engine.runner import Runner
from crownguard.engine.spec import parse_playbook

PLAYBOOK = """
name: crash-test
steps:
  - id: contain
    action: falcon.contain_host
    with: {device_id: "${{ event.device_id }}"}
  - id: suspend
    action: okta.suspend_user
    with: {user: "${{ event.user }}"}
  - id: hr_case
    action: servicenow.create_hr_case
    needs: [suspend]
    with: {subject: "Model exfiltration by ${{ event.user }}"}
  - id: ticket
    action: jira.create_issue
    needs: [contain]
    with: {summary: "Contained ${{ event.device_id }}", labels: [crash-test]}
  - id: done
    action: core.noop
    needs: [hr_case, ticket]
"""


class Crash(BaseException):
    """Stands for the process dying: nothing in the runner may catch it."""


class CrashingJournal(SQLiteJournal):
    def __init__(self, path: Path, crash_at: int | None, after_write: bool):
        super().__init__(path)
        self.crash_at = crash_at
        self.after_write = after_write
        self.appends = 0

    def append_many(self, events: list[dict[str, Any]]) -> list[int]:
        # The runner stores one scheduling round's events in one transaction: a crash at an
        # event loses its whole round (before the write) or none of it (after).
        first, self.appends = self.appends + 1, self.appends + len(events)
        crashes = self.crash_at is not None and first <= self.crash_at <= self.appends
        if crashes and not self.after_write:
            raise Crash()
        seqs = super().append_many(events)
        if crashes:
            raise Crash()
        return seqs


@pytest.fixture(scope="module")
def vendors() -> Any:
    host = PluginHost.from_entry_points()
    mocks = {name: host.mock_servers[name].factory()
             for name in ("falcon", "okta", "servicenow", "jira")}
    for mock in mocks.values():
        mock.start()
    connections = {name: mock.connection_settings() for name, mock in mocks.items()}
    config = config_from_mapping({"connections": connections}, host.connection_types)
    yield host, mocks, config, connections
    for mock in mocks.values():
        mock.stop()


def _wait_for_orphans(run_id: str) -> None:
    """A dead process sends nothing more: let calls already on the wire land first."""
    # The call threads are the process's, named after the run while they call its actions.
    deadline = time.monotonic() + 30
    while any(t.name.startswith(f"cg-{run_id[:8]}") for t in threading.enumerate()):
        assert time.monotonic() < deadline, "an orphaned call did not end"
        time.sleep(0.01)


def _assert_applied_once(mocks: dict[str, Any], device_id: str, login: str,
                         run_id: str, record: dict[str, Any]) -> None:
    assert record["status"] == "succeeded", record
    assert mocks["falcon"].hosts[device_id].status == "contained"
    assert mocks["okta"].status_of(login) == "SUSPENDED"
    subject = f"Model exfiltration by {login}"
    cases = [r for r in mocks["servicenow"].records("sn_hr_core_case")
             if r.get("short_description") == subject]
    assert len(cases) == 1, cases
    issues = [i for i in mocks["jira"].issues()
              if i["fields"]["summary"] == f"Contained {device_id}"]
    assert len(issues) == 1, issues


def test_random_crashes_then_resume_apply_each_side_effect_once(
        vendors: Any, tmp_path: Path) -> None:
    host, mocks, config, _ = vendors
    playbook = parse_playbook(PLAYBOOK, host.actions)
    rng = random.Random(20261128)
    path = tmp_path / "journal.sqlite"
    crashes = 0
    for index in range(200):
        device_id = f"{index:032x}"
        login = f"user{index}@example.com"
        mocks["falcon"].add_host(f"host-{index}", device_id=device_id)
        mocks["okta"].add_user(login)
        event = {"device_id": device_id, "user": login}
        run_id = f"crash-{index:04d}-" + "0" * 20
        # About 15 events in a run: crash anywhere in it, sometimes twice.
        journal = CrashingJournal(path, rng.randint(1, 16), rng.random() < 0.5)
        record: dict[str, Any] | None = None
        try:
            record = Runner(host, config, journal=journal).run(playbook, event, run_id=run_id)
        except Crash:
            crashes += 1
        finally:
            journal.close()
        for _ in range(3):
            if record is not None:
                break
            _wait_for_orphans(run_id)
            journal = CrashingJournal(path, rng.randint(1, 12) if rng.random() < 0.2 else None,
                                      rng.random() < 0.5)
            try:
                stored = journal.get_run(run_id)
                record = Runner(host, config, journal=journal).resume(
                    playbook, run_id, stored.inputs, journal.events(run_id))
            except Crash:
                crashes += 1
            finally:
                journal.close()
        assert record is not None, f"run {index} did not complete after three resumes"
        _wait_for_orphans(run_id)
        _assert_applied_once(mocks, device_id, login, run_id, record)
    assert crashes >= 150  # nearly every run really was interrupted
    assert SQLiteJournal(path).verify() == []


@pytest.mark.slow
def test_sigkill_then_resume_all(vendors: Any, tmp_path: Path, capsys: Any,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    _host, mocks, _, connections = vendors
    config_path = tmp_path / "connections.yaml"
    config_path.write_text(yaml.safe_dump({"connections": connections}))
    (tmp_path / "pb.yaml").write_text(PLAYBOOK)
    journal = tmp_path / "journal.sqlite"
    monkeypatch.setenv("CROWNGUARD_JOURNAL", str(journal))
    # Slow the vendors down so the kill lands while steps are in flight.
    for mock in mocks.values():
        mock.inject("latency", seconds=0.05, times=None)
    rng = random.Random(7)
    started: list[tuple[str, str]] = []
    try:
        for index in range(6):
            device_id = f"{index + 1000:032x}"
            login = f"killed{index}@example.com"
            mocks["falcon"].add_host(f"k-{index}", device_id=device_id)
            mocks["okta"].add_user(login)
            event = tmp_path / f"event{index}.json"
            event.write_text(json.dumps({"device_id": device_id, "user": login}))
            process = subprocess.Popen(
                [sys.executable, "-m", "crownguard.engine.cli", "run", str(tmp_path / "pb.yaml"),
                 "--event", str(event), "--config", str(config_path), "--json"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ))
            # Kill it once its run is in the journal (however slow the start), at a random
            # point of the run.
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and process.poll() is None:
                if journal.exists():
                    with SQLiteJournal(journal) as db:
                        if len(db.list_runs(limit=100)) > index:
                            break
                time.sleep(0.02)
            time.sleep(rng.random() * 0.5)
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
            started.append((device_id, login))
    finally:
        for mock in mocks.values():
            mock.clear_faults()
    code = main(["resume", "--all", "--config", str(config_path), "--json"])
    results = json.loads(capsys.readouterr().out)
    assert code == 0, results
    assert results["failed"] == results["given_up"] == []
    finished = {r["run_id"] for r in results["resumed"]}
    db = SQLiteJournal(journal)
    runs = db.list_runs(limit=100)
    assert len(runs) == len(started)
    for (device_id, login), run in zip(sorted(started), sorted(runs, key=lambda r: r.inputs[
            "event"]["device_id"]), strict=True):
        record = {"status": str(db.get_run(run.run_id).status)}
        _assert_applied_once(mocks, device_id, login, run.run_id, record)
    assert finished <= {r.run_id for r in runs}
    assert db.verify() == []
