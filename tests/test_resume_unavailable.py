"""A resume the journal's database interrupts (JournalUnavailable: down, restarting) is not
the run's fault: it is not recorded as a failed resume (which counts towards giving the run
up), the error is raised as it is, and a later resume finishes the run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from crownguard.engine import runs
from crownguard.engine.config import config_from_mapping
from crownguard.engine.errors import JournalUnavailable
from crownguard.engine.journal import SQLiteJournal
from crownguard.engine.plugins import PluginHost
from crownguard.engine.runner import Runner
from crownguard.engine.spec import parse_playbook

PLAYBOOK = """
name: two-steps
steps:
  - id: first
    action: core.noop
  - id: second
    action: core.noop
    needs: [first]
"""


class GoneJournal(SQLiteJournal):
    """A journal whose database goes away at the `fail_at`-th append_many, and stays away
    while `down`."""

    def __init__(self, path: Path, fail_at: int):
        super().__init__(path)
        self.fail_at, self.calls, self.down = fail_at, 0, False

    def append_many(self, events: list[dict[str, Any]]) -> list[int]:
        self.calls += 1
        if self.down or self.calls == self.fail_at:
            self.down = True
            raise JournalUnavailable("journal test: terminating connection")
        return super().append_many(events)


def test_a_resume_the_database_interrupts_is_no_failure_of_the_run(tmp_path: Path) -> None:
    host = PluginHost.from_entry_points()
    playbook = parse_playbook(PLAYBOOK, host.actions)
    path = tmp_path / "journal.sqlite"
    connections = tmp_path / "connections.yaml"
    connections.write_text("connections: {}\n")
    journal = GoneJournal(path, fail_at=1)
    with pytest.raises(JournalUnavailable):
        Runner(host, config_from_mapping({}, host.connection_types), journal=journal).run(playbook, {}, run_id="r1")
    assert journal.get_run("r1").status == "running"
    with pytest.raises(JournalUnavailable):
        runs.resume(journal, host, "r1", config_path=str(connections))
    assert journal.resume_failures(["r1"]) == {}
    journal.down = False
    outcome = runs.resume(journal, host, "r1", config_path=str(connections))
    assert outcome.record["status"] == "succeeded"
    assert [e["type"] for e in journal.events("r1")].count("step_succeeded") == 2
    journal.close()
