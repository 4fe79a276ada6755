"""Steps queued behind `max_concurrency`: the timeout runs from the call, not from the queue.

With one step in flight at most, two parallel steps that each take about LATENCY seconds and
have a timeout shorter than both together but longer than one must both succeed: the second
waits for the first without its clock running, starts (started_at) after the first finished,
and its time in the queue is recorded apart (`queued_seconds`, in the record and the event).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

LATENCY = 0.5
TIMEOUT = 0.8  # longer than one answer, shorter than two

PLAYBOOK = f"""
name: queued-steps
steps:
  - id: first
    action: core.http_request
    timeout_seconds: {TIMEOUT}
    with: {{url: "${{{{ vars.base }}}}/slow/1"}}
  - id: second
    action: core.http_request
    timeout_seconds: {TIMEOUT}
    with: {{url: "${{{{ vars.base }}}}/slow/2"}}
"""


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_a_step_queued_behind_max_concurrency_times_out_from_its_call(
        run_cli: Any, endpoint: Any, tmp_path: Path) -> None:
    for n in (1, 2):
        endpoint.expect_request(f"/slow/{n}").respond_with_json({"n": n})
    endpoint.inject("latency", seconds=LATENCY, times=None)
    playbook = tmp_path / "pb.yaml"
    playbook.write_text(PLAYBOOK)
    config = tmp_path / "connections.yaml"
    config.write_text(
        f"connections:\n  http: {{allowed_hosts: ['{endpoint.host}:{endpoint.port}']}}\n"
        f"settings:\n  max_concurrency: 1\n"
        f"  vars: {{base: '{endpoint.url_for('').rstrip('/')}'}}\n")
    code, out, _ = run_cli("run", playbook, "--config", config, "--json", "--no-journal")
    record = json.loads(out)
    steps = record["steps"]
    assert code == 0 and record["status"] == "succeeded", steps
    assert [steps[s]["attempts"] for s in ("first", "second")] == [1, 1]
    early, late = sorted(steps.values(), key=lambda s: s["started_at"])
    # The one queued started when the other had finished, not when it was queued ...
    assert _at(late["started_at"]) >= _at(early["finished_at"])
    # ... and its time in the queue is recorded apart from its run time.
    assert early["queued_seconds"] < LATENCY / 2
    assert late["queued_seconds"] >= LATENCY * 0.8
    assert (_at(late["finished_at"]) - _at(late["started_at"])).total_seconds() < TIMEOUT
