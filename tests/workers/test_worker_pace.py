"""A worker with one slot takes its next run as soon as the last one ended (worker/pool.py):
with prefetch disabled its event loop used to look for the next message only at its next poll
timeout, a second after each run. A real worker process, a real Redis, a SQLite journal."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

from workertest import start_worker, wait_for

from crownguard.engine.config import load_config
from crownguard.engine.journal import SQLiteJournal
from crownguard.engine.kinds import RunStatus
from crownguard.engine.plugins import PluginHost
from crownguard.engine.service.worker.intake import create_queued_run, handoff_journal
from crownguard.engine.service.worker.queue import RunQueue
from crownguard.engine.spec import parse_playbook

PLAYBOOK = """
name: pace
steps:
  - id: one
    action: core.noop
  - id: two
    action: core.noop
    needs: [one]
"""
RUNS = 8


def test_one_slot_takes_the_next_run_without_waiting_for_a_poll(
        broker: Any, redis_db: Any, tmp_path: Path) -> None:
    server, _ = redis_db
    host = PluginHost.from_entry_points()
    config_path = tmp_path / "connections.yaml"
    config_path.write_text(json.dumps({"connections": {}}))
    config = load_config(config_path, host.connection_types)
    journal_path = tmp_path / "journal.sqlite"
    env = {"CROWNGUARD_BROKER_PASSWORD": server.password, "CROWNGUARD_JOURNAL": str(journal_path)}
    worker = start_worker("--config", str(config_path), "--broker",
                          f"redis://127.0.0.1:{server.port}/0", "--concurrency", "1",
                          "--sweep-seconds", "0", env=env)
    try:
        with SQLiteJournal(journal_path) as journal:
            creator = handoff_journal(journal)
            playbook = parse_playbook(PLAYBOOK, host.actions)
            ids = [uuid.uuid4().hex for _ in range(RUNS)]
            for run_id in ids:
                create_queued_run(creator, config, playbook, {}, {}, run_id=run_id)
            creator.close()
            queue = RunQueue(broker)
            started = time.monotonic()
            try:
                for run_id in ids:
                    queue.enqueue(run_id)
            finally:
                queue.close()
            wait_for(lambda: all(journal.get_run(r).status == RunStatus.SUCCEEDED for r in ids),
                     60, "every run to succeed", worker.output)
            took = time.monotonic() - started
        # A second's wait after each run would be 7 s at least; the runs themselves take ms.
        assert took < 5.0, f"{RUNS} runs took {took:.1f} s with one slot"
    finally:
        assert worker.stop() == 0, worker.output()
    assert "Traceback" not in worker.output(), worker.output()
