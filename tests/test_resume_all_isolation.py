"""resume --all: one bad run never stops the others (issue 12, item 5).

Each run is resumed on its own; a run that cannot be resumed is recorded with why (shown by
`runs` and in the result), the rest go on, and the command exits non-zero after trying all. A
run that failed RESUME_GIVE_UP_AFTER times the same way is given up on; every interrupted or
expired run is considered, in pages; a playbook text shared by many runs is parsed once."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from crownguard.engine import ActionContext, action, hookimpl, runs
from crownguard.engine.cli import main
from crownguard.engine.config import load_config
from crownguard.engine.errors import SpecError
from crownguard.engine.journal import RESUME_GIVE_UP_AFTER, SQLiteJournal
from crownguard.engine.kinds import ResumeFailureKind, RunStatus
from crownguard.engine.plugins import PluginHost
from crownguard.engine.runner import Runner
from crownguard.engine.spec import parse_playbook

PLAYBOOK = """
name: contain-then-ticket
steps:
  - {id: contain, action: vendor.apply, with: {name: contain}}
  - {id: ticket, action: vendor.apply, needs: [contain], with: {name: ticket}}
"""

WAITS = """
name: ask-then-act
steps:
  - id: ask
    action: core.wait_for_approval
    with: {prompt: "Go?", approvers: [alice], timeout_seconds: 3600}
  - id: act
    action: core.noop
    needs: [ask]
"""


class Vendor:
    """A test plugin: one side-effecting action that counts what it applied, per run."""

    def __init__(self) -> None:
        self.applied: Counter[tuple[str, str]] = Counter()

    @hookimpl
    def crownguard_register_actions(self, register: Any) -> None:
        vendor = self

        @action("vendor.apply", side_effect=True,
                input_schema={"type": "object", "properties": {"name": {"type": "string"}},
                              "additionalProperties": False},
                output_schema={"type": "object"})
        def apply(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
            """Apply a change (counted)."""
            vendor.applied[(ctx.run_id, inputs["name"])] += 1
            return {"name": inputs["name"], "changed": True}

        register(apply)


class Crash(BaseException):
    """The process dying right after run_started was journaled."""


class DyingJournal(SQLiteJournal):
    def append_many(self, events: list[dict[str, Any]]) -> list[int]:
        seqs = super().append_many(events)  # the runner stores a round's events together
        for event in events:
            if event["type"] == "run_started":
                raise Crash(event["run_id"])
        return seqs


class CrashOnResume(SQLiteJournal):
    """A journal that breaks (not a CrownguardError) when one given run is driven again."""

    broken = ""

    def append_many(self, events: list[dict[str, Any]]) -> list[int]:
        if any(e["run_id"] == self.broken and e["type"] == "step_started" for e in events):
            raise RuntimeError("disk controller on fire")
        return super().append_many(events)


@pytest.fixture
def vendor() -> Vendor:
    return Vendor()


@pytest.fixture
def host(isolated_host: Any, vendor: Vendor) -> PluginHost:
    host: PluginHost = isolated_host(vendor, name="vendor")
    return host


def interrupted(tmp_path: Path, host: PluginHost, run_id: str, config: str | None = None,
                text: str = PLAYBOOK) -> None:
    """A run whose process died right after it started (its lease then lapsed)."""
    dying = DyingJournal(tmp_path / "j.sqlite")
    cfg = load_config(config, host.connection_types) if config else None
    with pytest.raises(Crash):
        Runner(host, cfg, journal=dying).run(parse_playbook(text, host.actions), {},
                                             run_id=run_id)
    dying.close()
    with sqlite3.connect(tmp_path / "j.sqlite") as db:  # the lease lapsed
        db.execute("UPDATE runs SET lease_expires = 0 WHERE run_id = ?", (run_id,))


def configs(tmp_path: Path) -> tuple[str, str]:
    good = tmp_path / "good.yaml"
    good.write_text("connections:\n  http: {allowed_hosts: [hooks.example.com]}\n")
    needs_env = tmp_path / "needs-env.yaml"
    needs_env.write_text('connections:\n  http: {allowed_hosts: ["${env:CG_TEST_HOOK_HOST}"]}\n')
    return str(good), str(needs_env)


def test_an_unset_env_var_of_one_run_does_not_stop_the_others(
        tmp_path: Path, host: PluginHost, vendor: Vendor, monkeypatch: pytest.MonkeyPatch,
        capsys: Any) -> None:
    good, needs_env = configs(tmp_path)
    monkeypatch.setenv("CG_TEST_HOOK_HOST", "hooks.example.com")
    interrupted(tmp_path, host, "run-1-good", good)
    interrupted(tmp_path, host, "run-2-env", needs_env)
    interrupted(tmp_path, host, "run-3-good", good)
    monkeypatch.delenv("CG_TEST_HOOK_HOST")  # a restart without it
    with SQLiteJournal(tmp_path / "j.sqlite") as journal:
        done = runs.resume_all(journal, host)
        assert [o.run_id for o in done.resumed] == ["run-1-good", "run-3-good"]
        assert all(o.status == RunStatus.SUCCEEDED for o in done.resumed)
        [failed] = done.failed
        assert (failed.run_id, failed.kind, failed.count) == ("run-2-env",
                                                              ResumeFailureKind.CONFIG, 1)
        assert "CG_TEST_HOOK_HOST" in failed.reason and not done.ok
        assert journal.get_run("run-2-env").status == RunStatus.RUNNING  # still to do
        assert journal.resume_failures() == {"run-2-env": failed}
        assert journal.verify() == []
    assert vendor.applied == Counter({("run-1-good", "contain"): 1, ("run-1-good", "ticket"): 1,
                                      ("run-3-good", "contain"): 1, ("run-3-good", "ticket"): 1})

    # `runs` shows why; with the variable back, `resume --all` finishes it and forgets it.
    journal_path = str(tmp_path / "j.sqlite")
    assert main(["runs", "--journal", journal_path]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("run-2-env"))
    assert "resume failed 1x, will be retried: config:" in line and "CG_TEST_HOOK_HOST" in line
    assert main(["runs", "--journal", journal_path, "--json"]) == 0
    listed = {r["run_id"]: r["resume_failure"] for r in json.loads(capsys.readouterr().out)}
    assert listed["run-2-env"]["kind"] == "config" and listed["run-1-good"] is None
    monkeypatch.setenv("CG_TEST_HOOK_HOST", "hooks.example.com")
    with SQLiteJournal(tmp_path / "j.sqlite") as journal:
        done = runs.resume_all(journal, host)
        assert [o.run_id for o in done.resumed] == ["run-2-env"] and done.ok
        assert journal.resume_failures() == {}


def test_a_run_that_crashes_on_resume_among_several(tmp_path: Path, host: PluginHost,
                                                    vendor: Vendor, capsys: Any,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    for run_id in ("run-a", "run-b-crash", "run-c"):
        interrupted(tmp_path, host, run_id)
    journal = CrashOnResume(tmp_path / "j.sqlite")
    journal.broken = "run-b-crash"
    done = runs.resume_all(journal, host)
    assert [o.run_id for o in done.resumed] == ["run-a", "run-c"]
    [failed] = done.failed
    assert (failed.run_id, failed.kind) == ("run-b-crash", ResumeFailureKind.CRASH)
    assert failed.reason == "RuntimeError: disk controller on fire"
    # Its lease was freed: the same process (a service) may try it again.
    assert [r.run_id for r in journal.interrupted_runs()] == ["run-b-crash"]

    # Failing the same way RESUME_GIVE_UP_AFTER times gives up on it: not tried blindly.
    for attempt in range(2, RESUME_GIVE_UP_AFTER + 1):
        [failed] = runs.resume_all(journal, host).failed
        assert failed.count == attempt
    assert failed.given_up
    again = runs.resume_all(journal, host)
    assert (again.resumed, again.failed, again.given_up) == ([], [], [failed])
    assert journal.resume_failures()["run-b-crash"].count == RESUME_GIVE_UP_AFTER  # not tried
    # ...unless asked: --retry-failed, or the run by its id.
    assert runs.resume_all(journal, host, retry_failed=True).failed[0].count == 4
    journal.broken = ""
    assert runs.resume(journal, host, "run-b-crash").status == RunStatus.SUCCEEDED
    assert journal.resume_failures() == {}
    journal.close()


def test_resume_all_cli_tries_every_run_then_exits_non_zero(
        tmp_path: Path, host: PluginHost, monkeypatch: pytest.MonkeyPatch,
        capsys: Any) -> None:
    good, needs_env = configs(tmp_path)
    monkeypatch.setenv("CG_TEST_HOOK_HOST", "hooks.example.com")
    interrupted(tmp_path, host, "run-1-env", needs_env)
    interrupted(tmp_path, host, "run-2-good", good)
    monkeypatch.delenv("CG_TEST_HOOK_HOST")
    monkeypatch.setattr(PluginHost, "from_entry_points", classmethod(lambda cls: host))
    journal = str(tmp_path / "j.sqlite")
    assert main(["resume", "--all", "--journal", journal]) == 1
    captured = capsys.readouterr()
    assert "run-2-good  succeeded" in captured.out
    assert "1 runs resumed, 1 failed" in captured.out
    assert "run-1-env: could not be resumed (config, 1x)" in captured.err
    assert main(["resume", "--all", "--journal", journal, "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["resumed"] == [] and result["failed"][0]["count"] == 2
    assert result["failed"][0]["given_up"] is False
    # An explicit resume still says what is wrong, as before.
    with pytest.raises(SpecError, match="CG_TEST_HOOK_HOST"):
        with SQLiteJournal(journal) as j:
            runs.resume(j, host, "run-1-env")


def test_a_stored_playbook_that_no_longer_parses_is_one_failure(
        tmp_path: Path, host: PluginHost, isolated_host: Any) -> None:
    interrupted(tmp_path, host, "run-1")
    bare = isolated_host()  # vendor.apply is gone (its plugin was uninstalled)
    with SQLiteJournal(tmp_path / "j.sqlite") as journal:
        journal.create_run("run-2", "ask-then-act", WAITS, inputs={}, status="waiting")
        with sqlite3.connect(journal.path) as db:
            db.execute("UPDATE runs SET lease_expires = 0")
        done = runs.resume_all(journal, bare)
        assert [(f.run_id, f.kind) for f in done.failed] == [("run-1",
                                                              ResumeFailureKind.PLAYBOOK)]


def test_every_expired_wait_is_settled_in_pages_beyond_any_cap(
        tmp_path: Path, host: PluginHost, monkeypatch: pytest.MonkeyPatch) -> None:
    """The newest waiting runs have nothing to settle; the oldest one expired long ago."""
    playbook = parse_playbook(WAITS, host.actions)
    with SQLiteJournal(tmp_path / "j.sqlite", synchronous="NORMAL") as journal:
        runner = Runner(host, journal=journal)
        runner.run(playbook, {}, run_id="old-expired", variables={})
        with sqlite3.connect(journal.path) as db:  # its wait expired an hour ago
            for (seq, payload) in db.execute("SELECT seq, payload FROM entries WHERE "
                                             "run_id = 'old-expired'").fetchall():
                data = json.loads(payload)
                if data.get("expires_at"):
                    data["expires_at"] = "2020-01-01T00:00:00Z"
                    db.execute("UPDATE entries SET payload = ? WHERE seq = ?",
                               (json.dumps(data), seq))
        for index in range(25):
            runner.run(playbook, {}, run_id=f"new-{index:02d}")
        parses: list[str] = []
        real = runs.stored_playbook

        def counting(run: Any, host: PluginHost) -> Any:
            parses.append(run.run_id)
            return real(run, host)

        monkeypatch.setattr(runs, "stored_playbook", counting)
        done = runs.resume_all(journal, host, page_size=4)
        assert [o.run_id for o in done.resumed] == ["old-expired"]
        assert done.resumed[0].status != RunStatus.WAITING
        assert len(parses) == 1  # 26 runs of one playbook text: parsed once
