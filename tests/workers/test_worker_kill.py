"""Kill -9 a `crownguard worker` in the middle of its runs: another worker finishes them,
no finished step is run again, and every vendor side effect is there once, by the mocks' own
state. Real processes, a real Redis, the journal in a real PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from workertest import start_worker, wait_for

from crownguard.engine.config import load_config
from crownguard.engine.journal import open_journal
from crownguard.engine.kinds import EventType, RunStatus
from crownguard.engine.plugins import PluginHost
from crownguard.engine.service.worker.intake import create_queued_run, handoff_journal
from crownguard.engine.service.worker.queue import RunQueue
from crownguard.engine.spec import parse_playbook

PLAYBOOK = """
name: worker-kill
steps:
  - id: contain
    action: falcon.contain_host
    with: {device_id: "${{ event.device_id }}"}
  - id: suspend
    action: okta.suspend_user
    needs: [contain]
    with: {user: "${{ event.user }}"}
  - id: case
    action: servicenow.create_hr_case
    needs: [suspend]
    with: {subject: "Model exfiltration by ${{ event.user }}"}
"""
VENDORS = ("falcon", "okta", "servicenow")
RUNS = 4


@pytest.fixture(scope="module")
def vendors() -> Any:
    host = PluginHost.from_entry_points()
    mocks = {name: host.mock_servers[name].factory() for name in VENDORS}
    for mock in mocks.values():
        mock.start()
    yield host, mocks
    for mock in mocks.values():
        mock.stop()


def _files(tmp_path: Path, mocks: dict[str, Any]) -> tuple[Path, dict[str, str]]:
    """The connections file, every secret by ${env:...}, and that environment."""
    host = PluginHost.from_entry_points()
    env: dict[str, str] = {}
    connections: dict[str, Any] = {}
    for name, mock in mocks.items():
        entry = {}
        for key, value in mock.connection_settings().items():
            if key in host.connection_types[name].secrets:
                env[f"CG_W_{name}_{key}".upper()] = str(value)
                entry[key] = f"${{env:CG_W_{name}_{key}}}".upper().replace("${ENV:", "${env:")
            else:
                entry[key] = value
        connections[name] = entry
    config = tmp_path / "connections.yaml"
    config.write_text(json.dumps({"connections": connections}))
    return config, env


def _steps(events: list[dict[str, Any]]) -> tuple[list[str], set[str]]:
    """The steps started (in order, repeats kept) and the steps finished, by these events."""
    started = [e["step"] for e in events if e["type"] == EventType.STEP_STARTED]
    finished = {e["step"] for e in events if e["type"] == EventType.STEP_SUCCEEDED}
    return started, finished


@pytest.mark.slow
def test_kill_9_a_worker_mid_run_another_finishes_each_side_effect_once(
        vendors: Any, postgres_dsn: str, broker: Any, redis_db: Any, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    host, mocks = vendors
    server, _ = redis_db
    config_path, env = _files(tmp_path, mocks)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config = load_config(config_path, host.connection_types)
    playbook = parse_playbook(PLAYBOOK, host.actions)
    worker_env = {**env, "CROWNGUARD_BROKER_PASSWORD": server.password,
                  "CROWNGUARD_JOURNAL": postgres_dsn}
    args = ("--config", str(config_path), "--broker", f"redis://127.0.0.1:{server.port}/0",
            "--concurrency", "2", "--lease-seconds", "3", "--sweep-seconds", "0.5")
    # Slow Okta down so that the kill lands while `suspend` is on the wire.
    mocks["okta"].inject("latency", seconds=1.0, times=None)
    first = start_worker(*args, env=worker_env)
    second = None
    events = []
    try:
        with open_journal(postgres_dsn) as journal:
            creator = handoff_journal(journal)
            queue = RunQueue(broker)
            try:
                for n in range(RUNS):
                    device_id, user = f"{n + 7000:032x}", f"killed{n}@example.com"
                    mocks["falcon"].add_host(f"w-{n}", device_id=device_id)
                    mocks["okta"].add_user(user)
                    run_id = f"kill{n:028d}"
                    event = {"device_id": device_id, "user": user}
                    create_queued_run(creator, config, playbook, event, {}, run_id=run_id)
                    queue.enqueue(run_id)
                    events.append((run_id, event))
            finally:
                creator.close()
                queue.close()

            def suspending_in_first() -> bool:
                for run_id, _ in events:
                    run = journal.get_run(run_id)
                    steps = [e.get("step") for e in journal.events(run_id)
                             if e["type"] == EventType.STEP_STARTED]
                    if run.owner and run.owner.pid == first.pid and "suspend" in steps:
                        return True
                return False

            wait_for(suspending_in_first, 60, "the first worker to be in `suspend`",
                     first.output)
            first.kill()
            # What each run had done when the worker died: its journal cannot move until the
            # second worker starts. With two slots, the other run may be in any step.
            before = {run_id: _steps(journal.events(run_id)) for run_id, _ in events}
            assert any(set(started) - finished for started, finished in before.values()), before
            second = start_worker(*args, env=worker_env)
            wait_for(lambda: all(journal.get_run(r).status == RunStatus.SUCCEEDED
                                 for r, _ in events), 60, "every run to succeed",
                     lambda: second.output() if second else "")
            for run_id, event in events:
                started_before, finished_before = before[run_id]
                starts = _steps(journal.events(run_id))[0]
                for step in ("contain", "suspend", "case"):
                    # A step finished before the kill is not run again; one in flight then
                    # starts once more; one not started yet starts once.
                    expected = started_before.count(step) + (step not in finished_before)
                    assert starts.count(step) == expected, (run_id, step, starts, before)
                assert mocks["falcon"].hosts[event["device_id"]].status == "contained"
                assert mocks["okta"].status_of(event["user"]) == "SUSPENDED"
                subject = f"Model exfiltration by {event['user']}"
                cases = [c for c in mocks["servicenow"].records("sn_hr_core_case")
                         if c.get("short_description") == subject]
                assert len(cases) == 1, cases
            assert journal.verify() == []
    finally:
        mocks["okta"].clear_faults()
        if second is not None:
            assert second.stop() == 0, second.output()
        if first.process.poll() is None:
            first.kill()
    log = first.output() + (second.output() if second else "")
    assert "Traceback" not in log, log
    assert server.password not in log
    assert "redis://:***@127.0.0.1" in log
