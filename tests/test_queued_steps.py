"""Steps queued behind `max_concurrency`: the timeout runs from the call, not from the queue.

With one step in flight at most, two parallel steps that each take about LATENCY seconds and
have a timeout shorter than both together but longer than one must both succeed: the second
waits for the first without its clock running, starts (started_at) after the first finished,
and its time in the queue is recorded apart (`queued_seconds`, in the record and the event).
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from crownguard.engine import ActionContext, action, hookimpl
from crownguard.engine.plugins import PluginHost
from crownguard.engine.runner import Runner
from crownguard.engine.spec import parse_playbook

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


class Stubborn:
    """An action that ignores its deadline (a plugin bug): it sleeps its time out regardless."""

    @hookimpl
    def crownguard_register_actions(self, register: Any) -> None:
        @action("stubborn.sleep", input_schema={"type": "object"})
        def sleep(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
            time.sleep(inputs["seconds"])
            return {}

        register(sleep)


def test_a_step_that_timed_out_gives_its_slot_back_at_the_deadline() -> None:
    host = PluginHost()
    host.add(Stubborn(), "stubborn")
    playbook = parse_playbook("""
name: stuck
steps:
  - {id: stuck, action: stubborn.sleep, timeout_seconds: 0.2, with: {seconds: 1.5}}
  - {id: next, action: stubborn.sleep, timeout_seconds: 0.5, with: {seconds: 0.05}}
""", host.actions)
    started = time.monotonic()
    record = Runner(host, max_concurrency=1).run(playbook, {})
    elapsed = time.monotonic() - started
    steps = record["steps"]
    assert steps["stuck"]["status"] == "failed", steps
    assert "did not finish within 0.2s" in steps["stuck"]["error"]
    # The queued step ran as soon as the stuck one timed out, not when its thread returned.
    assert steps["next"]["status"] == "succeeded", steps
    assert _at(steps["next"]["started_at"]) >= _at(steps["stuck"]["finished_at"])
    assert 0.15 <= steps["next"]["queued_seconds"] < 1.0
    assert elapsed < 1.2
