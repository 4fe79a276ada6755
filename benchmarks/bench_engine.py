"""Engine overhead benchmarks (issue 2). Run: `.venv/bin/python benchmarks/bench_engine.py`.

1. A 200-step chain of core.noop: wall time per step (median of repeats).
2. A 200-wide fan-out of core.noop: wall time per step.
3. 50 independent core.http_request steps against a local server that answers after 100 ms:
   wall time of the run (target: under 200 ms).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import yaml

from crownguard.engine import action, hookimpl
from crownguard.engine.config import config_from_mapping
from crownguard.engine.plugins import PluginHost
from crownguard.engine.runner import Runner
from crownguard.engine.spec import parse_playbook
from crownguard.plugins.core.mock import WebhookMock


def chain(n: int, action: str = "core.noop") -> str:
    steps: list[dict[str, Any]] = [{"id": "s0", "action": action}]
    steps += [{"id": f"s{i}", "action": action, "needs": [f"s{i - 1}"]} for i in range(1, n)]
    return yaml.safe_dump({"name": "chain", "steps": steps})


def fan_out(n: int, action: str = "core.noop", with_: dict[str, Any] | None = None) -> str:
    steps = [{"id": f"s{i}", "action": action, **({"with": with_} if with_ else {})}
             for i in range(n)]
    return yaml.safe_dump({"name": "fan", "steps": steps})


class PooledNoop:
    """A no-op that is not inline: measures the thread-pool hand-off every I/O action pays."""

    @hookimpl
    def crownguard_register_actions(self, register: Any) -> None:
        register(action("bench.pooled_noop", input_schema={"type": "object"})(
            lambda ctx, inputs: {}))


def time_runs(runner: Runner, text: str, host: PluginHost, repeats: int,
              event: dict[str, Any] | None = None) -> list[float]:
    playbook = parse_playbook(text, host.actions)
    runner.run(playbook, event or {})  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        record = runner.run(playbook, event or {})
        times.append(time.perf_counter() - start)
        assert record["status"] == "succeeded", record["status"]
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    host = PluginHost.from_entry_points()
    host.add(PooledNoop(), "bench")
    results: dict[str, Any] = {}

    runner = Runner(host)
    chain_times = time_runs(runner, chain(200), host, args.repeats)
    results["chain_200_us_per_step"] = statistics.median(chain_times) / 200 * 1e6
    fan_times = time_runs(runner, fan_out(200), host, args.repeats)
    results["fanout_200_us_per_step"] = statistics.median(fan_times) / 200 * 1e6
    pooled = time_runs(runner, chain(200, "bench.pooled_noop"), host, args.repeats)
    results["chain_200_pooled_us_per_step"] = statistics.median(pooled) / 200 * 1e6
    pooled = time_runs(runner, fan_out(200, "bench.pooled_noop"), host, args.repeats)
    results["fanout_200_pooled_us_per_step"] = statistics.median(pooled) / 200 * 1e6

    server = WebhookMock()
    server.inject("latency", seconds=0.1, times=None)
    server.start()
    try:
        config = config_from_mapping({"connections": {"http": server.connection_settings()}},
                                     host.connection_types)
        text = fan_out(50, "core.http_request",
                       {"method": "POST", "url": f"{server.base_url}/hooks/bench",
                        "json": {"n": 1}})
        http_times = time_runs(Runner(host, config), text, host, max(3, args.repeats // 3))
    finally:
        server.stop()
    results["http_50x100ms_wall_ms_median"] = statistics.median(http_times) * 1000
    results["http_50x100ms_wall_ms_max"] = max(http_times) * 1000

    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"200-step chain of core.noop:     {results['chain_200_us_per_step']:8.1f} us/step "
          "(median run)")
    print(f"200-wide fan-out of core.noop:   {results['fanout_200_us_per_step']:8.1f} us/step "
          "(median run)")
    print(f"same, thread-pool action, chain: {results['chain_200_pooled_us_per_step']:8.1f} "
          "us/step")
    print(f"same, thread-pool action, fan-out:{results['fanout_200_pooled_us_per_step']:8.1f} "
          "us/step")
    print(f"50 x 100 ms core.http_request:   {results['http_50x100ms_wall_ms_median']:8.1f} ms "
          f"wall (median), {results['http_50x100ms_wall_ms_max']:.1f} ms max")


if __name__ == "__main__":
    main()
