"""`crownguard serve` as a process: start-up checks, SIGTERM, and what survives a kill -9."""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from servicetest import SLOW, new_event, start_service, wait_for

from crownguard.engine.scenarios import MockFleet


def test_start_up_refuses_what_is_unusable_with_a_clear_message(
        service_files: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        run_cli: Callable[..., tuple[int, str, str]]) -> None:
    for name, value in service_files["env"].items():
        monkeypatch.setenv(name, value)
    config, policy = str(service_files["config"]), str(service_files["policy"])
    journal = str(tmp_path / "j.sqlite")
    no_section = tmp_path / "plain.yaml"
    no_section.write_text("connections: {}\n")
    bad_policy = tmp_path / "policy.yaml"
    bad_policy.write_text(json.dumps({"routing": {"playbooks": ["missing.yaml"]}}))
    bad_book = tmp_path / "book.yaml"
    bad_book.write_text("name: broken\ntrigger: {if: 'true'}\nsteps:\n  - id: a\n"
                        "    action: core.no_such_action\n")
    book_policy = tmp_path / "book-policy.yaml"
    book_policy.write_text(json.dumps({"routing": {"playbooks": [str(bad_book)],
                                                   "shipped_playbooks": False}}))
    cases = [
        (["--config", str(no_section), "--journal", journal], "no 'service' section"),
        (["--config", config, "--policy", str(bad_policy), "--journal", journal],
         "no such file or directory"),
        (["--config", config, "--policy", str(book_policy), "--journal", journal],
         "core.no_such_action"),
        (["--config", config, "--policy", policy, "--listen", "localhost"],
         "--listen takes HOST:PORT"),
        (["--policy", policy, "--journal", journal], "--config FILE is required"),
    ]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        cases.append((["--config", config, "--policy", policy, "--journal", journal,
                       "--listen", f"127.0.0.1:{port}"], f"cannot listen on 127.0.0.1:{port}"))
        for args, message in cases:
            code, out, err = run_cli("serve", *args)
            assert code == 2 and message in err, (args, out, err)
            assert "listening" not in err
    monkeypatch.setenv("CROWNGUARD_INTAKE_WORKERS", "-1")
    code, _, err = run_cli("serve", "--config", config, "--policy", policy)
    assert code == 2 and "$CROWNGUARD_INTAKE_WORKERS must be at least 0" in err
    monkeypatch.delenv("CROWNGUARD_INTAKE_WORKERS")
    monkeypatch.delenv("CG_TEST_SIEM_SECRET")
    code, _, err = run_cli("serve", "--config", config, "--policy", policy, "--journal",
                           journal)
    assert code == 2 and "environment variable CG_TEST_SIEM_SECRET is not set" in err


def test_sigterm_drains_answers_503_and_exits_0(service_files: dict[str, Any],
                                               service_fleet: MockFleet,
                                               tmp_path: Path) -> None:
    service = start_service(service_files, tmp_path / "j.sqlite")
    okta = service_fleet.get("okta")
    event = new_event(SLOW)
    okta.add_user(event["actor"]["email"])  # type: ignore[attr-defined]
    okta.inject("latency", seconds=3, path="/api/v1/users/*")
    try:
        assert service.post_event(event).status_code == 202
        wait_for(lambda: ("started",) in [(s,) for _, s in service.intake()], 15,
                 "the intake worker to start the event")
        service.process.send_signal(signal.SIGTERM)
        # While the slow step finishes, new requests are turned away.
        [answer] = wait_for(lambda: _draining(service), 10, "a 503 while draining")
        assert answer.json()["error"]["code"] == "draining"
        assert service.process.wait(timeout=30) == 0
    finally:
        okta.clear_faults()
        if service.process.poll() is None:
            service.process.kill()
    assert "stopped" in "".join(service.log)
    assert [s for _, s in service.intake()] == ["done"]  # the step finished within the grace


def _draining(service: Any) -> Any:
    try:
        answer = service.call("GET", "/readyz", who=None)
    except Exception:
        return None
    return [answer] if answer.status_code == 503 else None  # a Response is falsy when not ok


def test_an_event_accepted_before_a_kill_9_is_processed_after_the_restart(
        service_files: dict[str, Any], tmp_path: Path) -> None:
    journal = tmp_path / "j.sqlite"
    # A service that stores and does not process: the event is only in the intake table.
    first = start_service(service_files, journal, env={"CROWNGUARD_INTAKE_WORKERS": "0"})
    event = new_event()
    try:
        assert first.post_event(event).status_code == 202
    finally:
        first.process.kill()  # SIGKILL: nothing is flushed or handed back
        first.process.wait(timeout=10)
    assert first.intake() == [(event["id"], "pending")]
    second = start_service(service_files, journal)
    try:
        [run] = second.runs_of(event["id"])
        assert run["playbook"] == "contain-after-approval" and run["status"] == "waiting"
        assert [s for _, s in second.intake()] == ["done"]
    finally:
        assert second.stop() == 0


def test_a_run_a_killed_service_left_is_taken_over_after_the_restart(
        service_files: dict[str, Any], service_fleet: MockFleet, tmp_path: Path) -> None:
    journal = tmp_path / "j.sqlite"
    okta = service_fleet.get("okta")
    event = new_event(SLOW)
    okta.add_user(event["actor"]["email"])  # type: ignore[attr-defined]
    okta.inject("latency", seconds=3, path="/api/v1/users/*")
    first = start_service(service_files, journal)
    try:
        assert first.post_event(event).status_code == 202
        run_id = wait_for(lambda: _running(journal), 15, "the run to start")
    finally:
        first.process.kill()
        first.process.wait(timeout=10)
    okta.clear_faults()
    second = start_service(service_files, journal)
    try:
        def finished() -> Any:
            shown = second.call("GET", f"/v1/runs/{run_id}").json()
            return shown if shown["status"] == "succeeded" else None

        shown = wait_for(finished, 20, "the run to be taken over and finished")
        assert shown["steps"]["suspend"]["status"] == "succeeded"
        assert okta.status_of(event["actor"]["email"]) == "SUSPENDED"  # type: ignore[attr-defined]
        # The event itself is not run again: the one run is the taken-over one.
        with sqlite3.connect(journal) as db:
            assert db.execute("SELECT count(*) FROM runs").fetchone()[0] == 1
    finally:
        assert second.stop() == 0


def _running(journal: Path) -> str | None:
    time.sleep(0.05)
    try:
        with sqlite3.connect(journal) as db:
            row = db.execute("SELECT r.run_id FROM runs r JOIN entries e ON e.run_id = r.run_id "
                             "WHERE r.status = 'running' AND e.type = 'step_started'"
                             ).fetchone()
    except sqlite3.Error:
        return None
    return row[0] if row else None


def test_a_step_past_the_grace_is_handed_back_and_finished_by_the_next_process(
        service_files: dict[str, Any], service_fleet: MockFleet, tmp_path: Path) -> None:
    journal = tmp_path / "j.sqlite"
    okta = service_fleet.get("okta")
    event = new_event(SLOW)
    okta.add_user(event["actor"]["email"])  # type: ignore[attr-defined]
    okta.inject("latency", seconds=6, path="/api/v1/users/*")
    first = start_service(service_files, journal, env={"CROWNGUARD_GRACE_SECONDS": "1"})
    try:
        assert first.post_event(event).status_code == 202
        run_id = wait_for(lambda: _running(journal), 15, "the run to start")
        started = time.monotonic()
        assert first.stop(timeout=20) == 0
        assert time.monotonic() - started < 5  # the grace, not the slow step
    finally:
        if first.process.poll() is None:
            first.process.kill()
    assert "handed back" in "".join(first.log)
    assert [s for _, s in first.intake()] == ["pending"]
    okta.clear_faults()
    second = start_service(service_files, journal)
    try:
        def finished() -> Any:
            shown = second.call("GET", f"/v1/runs/{run_id}").json()
            return shown if shown["status"] == "succeeded" else None

        wait_for(finished, 20, "the handed-back run to be finished")
        wait_for(lambda: [s for _, s in second.intake()] == ["done"], 20, "the event")
        with sqlite3.connect(journal) as db:  # the event was not run a second time
            assert db.execute("SELECT count(*) FROM runs").fetchone()[0] == 1
    finally:
        assert second.stop() == 0
