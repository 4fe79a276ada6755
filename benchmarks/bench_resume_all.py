"""`resume --all` over many waiting runs that share one playbook, before and after issue 12.

    .venv/bin/python benchmarks/bench_resume_all.py [--runs 10000] [--dir DIR]

Builds a journal of RUNS runs of one 12-step playbook, each waiting on an approval that has
neither an answer nor an expired wait (so there is nothing to settle: what is measured is the
scan every `resume --all` makes), and one run at the oldest end whose wait has expired. Then,
on the same journal in the same process:

- before: what `resume_all` did until issue 12: the newest 10,000 waiting runs, each one's
  playbook text parsed again to rebuild its state (the old run would miss the oldest one);
- after: `runs.resume_all`: every waiting run in pages, each playbook text parsed once.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crownguard.engine import runs
from crownguard.engine.conductor import Conductor
from crownguard.engine.journal import SQLiteJournal
from crownguard.engine.kinds import RunStatus
from crownguard.engine.plugins import PluginHost
from crownguard.engine.runner import Runner
from crownguard.engine.spec import parse_playbook


def _step(i: int) -> str:
    return (f"  - {{id: s{i}, action: core.noop, needs: [{'ask' if i == 0 else f's{i - 1}'}], "
            f"if: \"steps.ask.output.decision == 'approve'\", "
            f"with: {{user: '${{{{ event.actor.email }}}}', n: {i}}}}}\n")


PLAYBOOK = ("name: ask-then-contain\ndescription: Ask the owner, then contain and revoke.\n"
            "steps:\n  - id: ask\n    action: core.wait_for_approval\n"
            "    with: {prompt: 'Contain ${{ event.device.hostname }}?', approvers: [alice],"
            " timeout_seconds: 86400}\n" + "".join(_step(i) for i in range(11)))
EVENT = {"actor": {"email": "dev@example.com", "departing": True},
         "device": {"hostname": "laptop-42"}, "file": {"name": "llama-ft.gguf"}}


def build(path: Path, count: int, host: PluginHost) -> str:
    """RUNS waiting runs (journaled as the runner would) and an older one already expired."""
    journal = SQLiteJournal(path, synchronous="NORMAL")
    runner = Runner(host, journal=journal)
    playbook = parse_playbook(PLAYBOOK, host.actions)
    expired = "expired-" + uuid.uuid4().hex[:8]
    runner.run(playbook, EVENT, run_id=expired)
    template = runner.run(playbook, EVENT)
    run = journal.get_run(template["run_id"])
    events = journal.events(run.run_id)
    for _ in range(count - 1):
        run_id = uuid.uuid4().hex
        journal.create_run(run_id, run.playbook, run.playbook_text, inputs=run.inputs)
        for event in events:
            journal.append({**event, "run_id": run_id})
        journal.set_status(run_id, RunStatus.WAITING)
    journal.close()
    # The oldest run's wait expired long ago (as if it had waited for weeks). Editing the
    # entry breaks its hash; the benchmark does not verify.
    with sqlite3.connect(path) as db:
        for seq, payload in db.execute("SELECT seq, payload FROM entries WHERE run_id = ? AND "
                                       "type = 'step_waiting'", (expired,)).fetchall():
            expires = json.loads(payload)["expires_at"]
            db.execute("UPDATE entries SET payload = replace(payload, ?, ?) WHERE seq = ?",
                       (expires, "2020-01-01T00:00:00Z", seq))
    return expired


def before(journal: SQLiteJournal, host: PluginHost) -> list[str]:
    """The scan of resume_all as it was: newest 10,000 waiting runs, one parse per run."""
    now = datetime.now(UTC)
    due = []
    for run in journal.list_runs(RunStatus.WAITING, limit=10_000):
        answered = runs.accepted_answers(journal, run.run_id)
        conductor = Conductor.replay(runs.stored_playbook(run, host), run.inputs,
                                     journal.events(run.run_id))
        for state_id, state in conductor.steps.items():
            wait = state.waiting or {}
            expires = wait.get("expires_at")
            if state.waiting is not None and (state_id in answered or (
                    expires and datetime.fromisoformat(expires.replace("Z", "+00:00")) <= now)):
                due.append(run.run_id)
    return due


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--dir", help="where the journal goes (default: a temporary directory)")
    args = parser.parse_args(argv)
    host = PluginHost.from_entry_points()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = Path(tmp) / "journal.sqlite"
        started = time.perf_counter()
        expired = build(path, args.runs, host)
        print(f"built {args.runs + 1} waiting runs in {time.perf_counter() - started:.1f} s "
              f"(playbook of {len(PLAYBOOK)} characters, 12 steps)")
        with SQLiteJournal(path) as journal:
            results: dict[str, Any] = {}
            started = time.perf_counter()
            due = before(journal, host)
            results["before"] = (time.perf_counter() - started, expired in due)
            started = time.perf_counter()
            done = runs.resume_all(journal, host)
            results["after"] = (time.perf_counter() - started,
                                [o.run_id for o in done.resumed] == [expired])
        for name, (seconds, found) in results.items():
            print(f"{name:<7} {seconds:6.2f} s  {seconds / (args.runs + 1) * 1e6:7.0f} µs/run  "
                  f"expired run at the oldest end {'settled' if found else 'MISSED'}")
        print(f"speed-up {results['before'][0] / results['after'][0]:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
