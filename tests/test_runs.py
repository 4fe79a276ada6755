"""engine.runs: the run operations the CLI and the service share, called directly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from crownguard.engine import runs
from crownguard.engine.cli import main
from crownguard.engine.errors import AmbiguousRun, RunsError, RunStateError, UnknownRun
from crownguard.engine.journal import SQLiteJournal
from crownguard.engine.kinds import ApprovalDecision, EventType, RunKind, RunStatus
from crownguard.engine.plugins import PluginHost
from crownguard.engine.runner import Runner
from crownguard.engine.spec import parse_playbook

WAITS = """
name: ask-then-act
steps:
  - id: ask
    action: core.wait_for_approval
    with: {prompt: "Go?", approvers: [alice], timeout_seconds: 3600}
  - id: act
    action: core.noop
    needs: [ask]
    with: {reason: "${{ steps.ask.output.comment }}"}
"""

@pytest.fixture
def host() -> PluginHost:
    return PluginHost.from_entry_points()


@pytest.fixture
def journal(tmp_path: Path) -> Any:
    with SQLiteJournal(tmp_path / "j.sqlite") as journal:
        yield journal


def start(host: PluginHost, journal: SQLiteJournal, text: str = WAITS,
          run_id: str | None = None, **kwargs: Any) -> dict[str, Any]:
    return Runner(host, journal=journal).run(parse_playbook(text, host.actions),
                                             {"user": "dana"}, run_id=run_id, **kwargs)


def test_a_run_is_found_by_a_unique_prefix_of_eight_characters(host: PluginHost,
                                                               journal: SQLiteJournal) -> None:
    start(host, journal, run_id="abcdef0123-one")
    start(host, journal, run_id="abcdef0199-two")
    assert runs.find_run(journal, "abcdef0123-one").run_id == "abcdef0123-one"
    assert runs.find_run(journal, "abcdef012").run_id == "abcdef0123-one"
    with pytest.raises(AmbiguousRun, match="abcdef0123-one, abcdef0199-two"):
        runs.find_run(journal, "abcdef01")
    with pytest.raises(UnknownRun):
        runs.find_run(journal, "abcdef0")  # too short to be a prefix
    with pytest.raises(UnknownRun):
        runs.find_run(journal, "ffffffffff")


def test_answer_returns_results_and_refusals_are_recorded(host: PluginHost,
                                                          journal: SQLiteJournal) -> None:
    run_id = start(host, journal)["run_id"]
    refused = runs.answer(journal, host, run_id[:10], "ask", "approve", by="mallory")
    assert (refused.accepted, refused.outcome, refused.run_id) == (False, None, run_id)
    assert refused.reason == "mallory may not answer (allowed: alice)"
    with pytest.raises(RunStateError, match="is not waiting"):
        runs.answer(journal, host, run_id, "act", "approve", by="alice")
    with pytest.raises(RunsError, match="has no step 'nope'"):
        runs.answer(journal, host, run_id, "nope", "approve", by="alice")
    with pytest.raises(RunsError, match="approve or reject"):
        runs.answer(journal, host, run_id, "ask", "maybe", by="alice")
    [wait] = runs.show(journal, host, run_id).waiting
    assert (wait.step, wait.approvers) == ("ask", ("alice",)) and wait.expires_at
    done = runs.answer(journal, host, run_id, "ask", ApprovalDecision.APPROVE, by="alice",
                       comment="ok")
    assert done.accepted and done.outcome is not None
    assert done.outcome.status == RunStatus.SUCCEEDED
    assert done.outcome.record["steps"]["act"]["output"]["reason"] == "ok"
    detail = runs.show(journal, host, run_id)
    assert [a.accepted for a in detail.approvals] == [False, True] and detail.waiting == []
    with pytest.raises(RunStateError, match="has already ended"):
        runs.resume(journal, host, run_id)


def test_cancel_then_rerun(host: PluginHost, journal: SQLiteJournal) -> None:
    run_id = start(host, journal, risk={"score": 80}, variables={"team": "soc"})["run_id"]
    with pytest.raises(RunStateError, match="only a failed or cancelled run"):
        runs.rerun(journal, host, run_id, by="bob")
    cancelled = runs.cancel(journal, host, run_id, by="bob", reason="false positive")
    assert cancelled.status == RunStatus.CANCELLED
    assert cancelled.record["steps"]["ask"]["status"] == "cancelled"
    event = journal.events(run_id)[-1]
    assert (event["type"], event["by"], event["reason"]) == (EventType.RUN_CANCELLED, "bob",
                                                             "false positive")
    with pytest.raises(RunStateError, match="was cancelled at .* \\(false positive\\); nothing "
                                            "to cancel"):
        runs.cancel(journal, host, run_id, by="bob")
    refused = runs.answer(journal, host, run_id, "ask", "approve", by="alice")
    assert not refused.accepted and "nothing to approve" in (refused.reason or "")

    again = runs.rerun(journal, host, run_id[:8], by="carol")
    assert again.parent_run_id == run_id and again.run_id != run_id
    assert again.status == RunStatus.WAITING
    rerun = journal.get_run(again.run_id)
    assert (rerun.kind, rerun.parent_run_id) == (RunKind.RERUN, run_id)
    original = journal.get_run(run_id)
    for key in ("event", "risk", "vars"):
        assert rerun.inputs[key] == original.inputs[key]
    started = journal.events(again.run_id)[0]
    assert (started["by"], started["rerun_of"]) == ("carol", run_id)


def test_a_run_that_succeeded_is_not_cancelled_or_rerun(host: PluginHost,
                                                        journal: SQLiteJournal) -> None:
    record = start(host, journal, text="name: quick\nsteps:\n  - {id: a, action: core.noop}\n")
    with pytest.raises(RunStateError, match=r"has already ended \(succeeded\): nothing to "
                                            "cancel"):
        runs.cancel(journal, host, record["run_id"], by="bob")
    with pytest.raises(RunStateError, match="only a failed or cancelled run"):
        runs.rerun(journal, host, record["run_id"], by="bob")


def test_a_rerun_refuses_redacted_inputs(host: PluginHost, journal: SQLiteJournal) -> None:
    run_id = start(host, journal)["run_id"]
    runs.cancel(journal, host, run_id, by="bob")
    journal.create_run("masked-run", "ask-then-act", WAITS, status=RunStatus.CANCELLED,
                       inputs={**journal.get_run(run_id).inputs, "event": {"user": "***"}})
    with pytest.raises(RunsError, match="redacted value"):
        runs.rerun(journal, host, "masked-run", by="bob")


def test_cancel_and_rerun_commands(tmp_path: Path, capsys: Any) -> None:
    (tmp_path / "pb.yaml").write_text(WAITS)
    (tmp_path / "e.json").write_text(json.dumps({"user": "dana"}))
    j = str(tmp_path / "j.sqlite")
    assert main(["run", str(tmp_path / "pb.yaml"), "--event", str(tmp_path / "e.json"),
                 "--journal", j, "--json"]) == 3
    run_id = json.loads(capsys.readouterr().out)["run_id"]
    assert main(["cancel", run_id[:8], "--reason", "test", "--by", "bob", "--journal", j,
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "cancelled"
    assert main(["cancel", run_id, "--journal", j]) == 2
    assert "nothing to cancel" in capsys.readouterr().err
    assert main(["rerun", run_id, "--journal", j]) == 3
    out = capsys.readouterr().out
    assert f"(a rerun of run {run_id})" in out and "waiting" in out
    assert main(["runs", "--journal", j]) == 0
    assert f"(rerun of {run_id})" in capsys.readouterr().out
