"""The service's run metrics: runs ended by playbook and status, step durations by action,
vendor errors by vendor and kind, waits pending (issue 14, item 6)."""

from __future__ import annotations

import socket
from pathlib import Path

from crownguard.engine.config import Config, Connections
from crownguard.engine.journal import SQLiteJournal
from crownguard.engine.plugins import PluginHost
from crownguard.engine.runner import Runner
from crownguard.engine.service.listing import RunListing
from crownguard.engine.service.metrics import ServiceMetrics
from crownguard.engine.service.observe import RunMetrics
from crownguard.engine.spec import parse_playbook


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


PLAYBOOK = """
name: metered
steps:
  - id: first
    action: core.noop
  - id: call
    action: core.http_request
    needs: [first]
    retry: {{max_attempts: 2, backoff_seconds: 0.01}}
    with: {{method: POST, url: "http://127.0.0.1:{port}/hook", json: {{}}}}
"""
WAITS = """
name: waits
steps:
  - id: ask
    action: core.wait_for_approval
    with: {prompt: "Go?", timeout_seconds: 3600}
"""


def test_runs_steps_and_vendor_errors_are_counted(tmp_path: Path) -> None:
    host = PluginHost.from_entry_points()
    playbook = parse_playbook(PLAYBOOK.format(port=closed_port()), host.actions)
    config = Config(connections=Connections({"http": {"allowed_hosts": ["127.0.0.1"]}}))
    metrics = ServiceMetrics(lambda: {})
    waits = parse_playbook(WAITS, host.actions)
    observe = RunMetrics(metrics, {"metered": playbook, "waits": waits}.get)
    with SQLiteJournal(tmp_path / "j.sqlite") as journal:
        runner = Runner(host, config, journal=journal, on_event=observe)
        assert runner.run(playbook, {})["status"] == "failed"
        assert runner.run(waits, {})["status"] == "waiting"
        listing = RunListing(tmp_path / "j.sqlite")
        metrics.waiting_runs = lambda: listing.count("waiting")
        text = metrics.render().decode()
        listing.close()
    assert 'crownguard_runs_ended_total{playbook="metered",status="failed"} 1.0' in text
    assert 'playbook="waits"' not in text  # a waiting run has not ended
    assert 'crownguard_step_duration_seconds_count{action="core.noop"} 1.0' in text
    assert 'crownguard_step_duration_seconds_count{action="core.http_request"} 1.0' in text
    assert 'crownguard_vendor_errors_total{kind="TransportError",vendor="core"} 2.0' in text
    assert "crownguard_waits_pending 1.0" in text


def test_a_broken_playbook_lookup_never_fails_a_run(tmp_path: Path) -> None:
    host = PluginHost.from_entry_points()
    playbook = parse_playbook("name: p\nsteps:\n  - id: a\n    action: core.noop\n",
                              host.actions)

    def broken(name: str) -> None:
        raise RuntimeError("no lookup")

    metrics = ServiceMetrics(lambda: {})
    record = Runner(host, Config(), on_event=RunMetrics(metrics, broken)).run(playbook, {})
    assert record["status"] == "succeeded"


def test_a_run_first_seen_resumed_is_counted_under_its_playbook(tmp_path: Path) -> None:
    from crownguard.engine import runs

    host = PluginHost.from_entry_points()
    waits = parse_playbook(WAITS, host.actions)
    with SQLiteJournal(tmp_path / "j.sqlite") as journal:
        run_id = Runner(host, journal=journal).run(waits, {})["run_id"]
        metrics = ServiceMetrics(lambda: {})  # a new process: it never saw the run start
        observe = RunMetrics(metrics, {"waits": waits}.get,
                             lambda rid: journal.get_run(rid).playbook)
        runs.answer(journal, host, run_id, "ask", "approve", by="alice", on_event=observe)
    assert 'crownguard_runs_ended_total{playbook="waits",status="succeeded"} 1.0' \
        in metrics.render().decode()
