"""Who did it: every approve, cancel, undo and rerun records its operator (`--by`, else the OS
user) in the run's events, the approvals and the chained audit trail."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from crownguard.engine.cli import main
from crownguard.engine.errors import OperatorError
from crownguard.engine.journal import SQLiteJournal
from crownguard.engine.operators import cli_operator, operator_name, os_user, resolve_operator

WAITS = """
name: ask-then-act
steps:
  - id: ask
    action: core.wait_for_approval
    with: {prompt: "Go?", timeout_seconds: 3600}
  - id: act
    action: core.noop
    needs: [ask]
"""


@pytest.fixture
def as_user(monkeypatch: pytest.MonkeyPatch) -> str:
    for name in ("LNAME", "USERNAME", "USER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LOGNAME", "dana.ops")
    return "dana.ops"


def waiting_run(tmp_path: Path, capsys: Any) -> tuple[str, str]:
    (tmp_path / "pb.yaml").write_text(WAITS)
    (tmp_path / "e.json").write_text(json.dumps({"user": "sam"}))
    journal = str(tmp_path / "j.sqlite")
    assert main(["run", str(tmp_path / "pb.yaml"), "--event", str(tmp_path / "e.json"),
                 "--journal", journal, "--json"]) == 3
    return json.loads(capsys.readouterr().out)["run_id"], journal


def audit_payloads(journal: str) -> list[dict[str, Any]]:
    with SQLiteJournal(journal) as j:
        return [e.payload for e in j.entries() if isinstance(e.payload, dict)]


def test_the_os_user_is_the_operator_when_no_by_is_given(tmp_path: Path, capsys: Any,
                                                         as_user: str) -> None:
    run_id, journal = waiting_run(tmp_path, capsys)
    assert main(["cancel", run_id, "--journal", journal]) == 0
    capsys.readouterr()
    assert main(["rerun", run_id, "--journal", journal, "--json"]) == 3
    rerun_id = json.loads(capsys.readouterr().out)["run_id"]
    assert main(["approve", rerun_id, "ask", "--decision", "approve", "--journal",
                 journal]) == 0
    payloads = audit_payloads(journal)
    cancelled = [p for p in payloads if p.get("type") == "run_cancelled"]
    assert cancelled and all(p["by"] == as_user and p["via"] == "os user" for p in cancelled)
    started = [p for p in payloads if p.get("type") == "run_started" and p.get("rerun_of")]
    assert started[0]["by"] == as_user
    approvals = [p for p in payloads if p.get("decision")]
    assert approvals[0]["by"] == as_user and approvals[0]["accepted"] is True
    capsys.readouterr()
    assert main(["runs", "show", run_id, "--journal", journal]) == 0
    assert f"cancelled by {as_user} (os user)" in capsys.readouterr().out
    assert main(["runs", "show", rerun_id, "--journal", journal, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["operators"][0] == {"action": "started", "by": as_user, "via": "os user",
                                     "at": shown["operators"][0]["at"]}


def test_a_by_is_recorded_with_the_os_user_behind_it(tmp_path: Path, capsys: Any,
                                                     as_user: str) -> None:
    run_id, journal = waiting_run(tmp_path, capsys)
    assert main(["cancel", run_id, "--by", "alice@corp.example", "--journal", journal]) == 0
    [cancelled] = [p for p in audit_payloads(journal) if p.get("type") == "run_cancelled"]
    assert cancelled["by"] == "alice@corp.example"
    assert cancelled["via"] == f"--by, as os user {as_user}"


@pytest.mark.parametrize("name, problem", [
    ("", "is empty"), ("   ", "is empty"), ("x" * 201, "longer than 200"),
    ("eve\x1b[2Jroot", "control character (U+001B)"), ("a\u202eb", "U+202E"),
])
def test_an_unrecordable_operator_is_refused_before_anything_changes(
        tmp_path: Path, capsys: Any, name: str, problem: str) -> None:
    run_id, journal = waiting_run(tmp_path, capsys)
    assert main(["cancel", run_id, "--by", name, "--journal", journal]) == 2
    err = capsys.readouterr().err
    assert "--by" in err and problem in err and "Traceback" not in err
    assert not [p for p in audit_payloads(journal) if p.get("type") == "run_cancelled"]


def test_operator_helpers(as_user: str) -> None:
    assert os_user() == as_user
    assert resolve_operator(None) == as_user
    assert resolve_operator("  bob ") == "bob"
    assert cli_operator(None) == (as_user, "os user")
    assert cli_operator(as_user) == (as_user, "os user")
    with pytest.raises(OperatorError, match="token name is empty"):
        operator_name("", "token name")


def test_an_os_user_without_a_name_is_its_uid(monkeypatch: pytest.MonkeyPatch) -> None:
    import getpass

    def no_name() -> str:
        raise KeyError("getpwuid(): uid not found: 12345")

    monkeypatch.setattr(getpass, "getuser", no_name)
    assert os_user().startswith("uid ")
