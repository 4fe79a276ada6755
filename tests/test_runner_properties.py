"""Property: on any DAG, a step starts only after its needs finished, and steps that become
ready together are in flight together (proved with barriers, not timings)."""

from __future__ import annotations

import threading
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crownguard.engine import ActionContext, ActionError, action, hookimpl
from crownguard.engine.plugins import PluginHost
from crownguard.engine.runner import Runner
from crownguard.engine.spec import parse_playbook


@st.composite
def dags(draw: Any) -> list[list[int]]:
    n = draw(st.integers(min_value=1, max_value=14))
    return [sorted(draw(st.sets(st.integers(0, i - 1), max_size=min(i, 3)))) if i else []
            for i in range(n)]


class DagPlugin:
    def __init__(self, needs: list[list[int]]):
        self.needs = needs
        self.lock = threading.Lock()
        self.finished: set[int] = set()
        self.violations: list[str] = []
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, need in enumerate(needs):
            groups.setdefault(tuple(need), []).append(i)
        # Steps with the same needs become ready at the same instant: all must be in flight
        # at once for their barrier to open.
        self.barriers = {key: threading.Barrier(len(members))
                         for key, members in groups.items() if len(members) > 1}

    @hookimpl
    def crownguard_register_actions(self, register: Any) -> None:
        plugin = self

        @action("dag.step", input_schema={"type": "object", "properties": {
            "index": {"type": "integer"}}, "required": ["index"]})
        def step(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
            index = inputs["index"]
            needs = plugin.needs[index]
            with plugin.lock:
                missing = [n for n in needs if n not in plugin.finished]
            if missing:
                plugin.violations.append(f"s{index} started before {missing} finished")
            barrier = plugin.barriers.get(tuple(needs))
            if barrier is not None:
                try:
                    barrier.wait(timeout=10)
                except threading.BrokenBarrierError:
                    raise ActionError(f"s{index}: siblings were not in flight together") from None
            with plugin.lock:
                plugin.finished.add(index)
            return {"index": index}

        register(step)


def playbook_text(needs: list[list[int]]) -> str:
    steps = [{"id": f"s{i}", "action": "dag.step", "with": {"index": i},
              **({"needs": [f"s{n}" for n in need]} if need else {})}
             for i, need in enumerate(needs)]
    return yaml.safe_dump({"name": "dag", "steps": steps})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dags())
def test_dag_order_and_concurrency(needs: list[list[int]]) -> None:
    plugin = DagPlugin(needs)
    host = PluginHost()
    host.add(plugin, "dag")
    record = Runner(host, max_concurrency=16).run(parse_playbook(playbook_text(needs),
                                                                 host.actions), {})
    assert plugin.violations == []
    assert record["status"] == "succeeded", record
    assert all(s["attempts"] == 1 for s in record["steps"].values())


def test_wide_fan_out_is_all_in_flight_at_once() -> None:
    needs: list[list[int]] = [[] for _ in range(64)]
    plugin = DagPlugin(needs)
    host = PluginHost()
    host.add(plugin, "dag")
    record = Runner(host, max_concurrency=64).run(parse_playbook(playbook_text(needs),
                                                                 host.actions), {})
    assert record["status"] == "succeeded"
