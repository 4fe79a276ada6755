"""Journal overhead: append latency per event and events/s for a 10-step run's event stream,
and runs/s of a 10-step playbook through the Runner with the journal off and on.

    .venv/bin/python benchmarks/bench_journal.py [--runs 200] [--dir DIR]

DIR (default: a temporary directory) should be on the disk the journal will live on: with
synchronous=FULL every append waits for an fsync, so the disk sets the figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from crownguard.engine.journal import SQLiteJournal
from crownguard.engine.plugins import PluginHost
from crownguard.engine.runner import Runner, utc_now
from crownguard.engine.spec import parse_playbook

STEPS = 10


def _step(i: int) -> str:
    needs = f"needs: [s{i - 1}], " if i else ""
    return (f"  - {{id: s{i}, action: core.noop, {needs}"
            f"with: {{user: '${{{{ event.actor.email }}}}', n: {i}}}}}\n")


PLAYBOOK = "name: ten-steps\nsteps:\n" + "".join(_step(i) for i in range(STEPS))
EVENT = {"actor": {"email": "dev@example.com", "departing": True, "manager": "m@example.com"},
         "file": {"name": "llama-ft-q4.gguf", "size": 4_812_334_112, "is_model": True,
                  "sha256": "ab" * 32},
         "device": {"falcon_id": "f" * 32, "hostname": "laptop-42"}}


def run_stream(run_id: str) -> list[dict[str, Any]]:
    """The events the runner emits for a successful 10-step run, with realistic payloads."""
    def ev(kind: str, **fields: Any) -> dict[str, Any]:
        return {"type": kind, "run_id": run_id, "at": utc_now(), **fields}

    stream = [ev("run_started", playbook="ten-steps",
                 inputs={"event": EVENT, "vars": {}, "risk": {"score": 87}})]
    for i in range(STEPS):
        stream.append(ev("step_started", step=f"s{i}", attempt=1,
                         inputs={"user": "dev@example.com", "device_id": "f" * 32, "n": i}))
        stream.append(ev("step_succeeded", step=f"s{i}",
                         output={"user_id": "00u1abcd", "status": "SUSPENDED", "changed": True,
                                 "ticket": f"INC00{i}", "n": i}))
    stream.append(ev("run_finished", status="succeeded"))
    return stream


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def bench_appends(directory: Path, runs: int, synchronous: str) -> dict[str, float]:
    journal = SQLiteJournal(directory / f"append-{synchronous}.sqlite", synchronous=synchronous)
    appends: list[float] = []
    creates: list[float] = []
    started = time.perf_counter()
    for _ in range(runs):
        run_id = uuid.uuid4().hex
        t0 = time.perf_counter()
        journal.create_run(run_id, "ten-steps", PLAYBOOK, inputs={"event": EVENT})
        creates.append(time.perf_counter() - t0)
        for event in run_stream(run_id):
            t0 = time.perf_counter()
            journal.append(event)
            appends.append(time.perf_counter() - t0)
    wall = time.perf_counter() - started
    t0 = time.perf_counter()
    problems = journal.verify()
    verify_s = time.perf_counter() - t0
    journal.close()
    assert problems == [], problems
    return {"median_us": statistics.median(appends) * 1e6,
            "p95_us": percentile(appends, 0.95) * 1e6,
            "events_per_s": len(appends) / sum(appends),
            "create_median_us": statistics.median(creates) * 1e6,
            "runs_per_s": runs / wall, "entries": len(appends) + len(creates),
            "verify_s": verify_s}


def bench_runner(directory: Path, runs: int, synchronous: str | None) -> float:
    """Runs/s of the 10-step core.noop playbook; synchronous=None runs without a journal."""
    host = PluginHost()
    host.add("crownguard.plugins.core", "core")
    playbook = parse_playbook(PLAYBOOK, host.actions)
    journal = (SQLiteJournal(directory / f"runner-{synchronous}.sqlite", synchronous=synchronous)
               if synchronous else None)
    runner = Runner(host, journal=journal)
    started = time.perf_counter()
    for _ in range(runs):
        record = runner.run(playbook, EVENT)  # the runner creates the run in the journal
        assert record["status"] == "succeeded"
    elapsed = time.perf_counter() - started
    if journal is not None:
        journal.close()
    return runs / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        directory = Path(tmp)
        print(f"journal benchmark: {args.runs} runs x {2 * STEPS + 2} events, "
              f"{os.cpu_count()} CPUs, files in {directory}")
        print("\n| synchronous | append median | append p95 | events/s | create_run median "
              "| runs/s (journal only) | verify |")
        print("|---|---|---|---|---|---|---|")
        for mode in ("FULL", "NORMAL"):
            r = bench_appends(directory, args.runs, mode)
            print(f"| {mode} | {r['median_us']:.0f} µs | {r['p95_us']:.0f} µs | "
                  f"{r['events_per_s']:,.0f} | {r['create_median_us']:.0f} µs | "
                  f"{r['runs_per_s']:,.0f} | {r['verify_s'] * 1000:.0f} ms for "
                  f"{r['entries']:,} entries |")
        runner_runs = max(20, args.runs // 4)
        base = bench_runner(directory, runner_runs, None)
        print(f"\nRunner, 10-step core.noop playbook, {runner_runs} runs:")
        print("\n| journal | runs/s | overhead per step |")
        print("|---|---|---|")
        print(f"| off | {base:,.1f} | - |")
        for mode in ("FULL", "NORMAL"):
            rate = bench_runner(directory, runner_runs, mode)
            per_step = (1 / rate - 1 / base) / STEPS * 1e6
            print(f"| {mode} | {rate:,.1f} | {per_step:,.0f} µs |")


if __name__ == "__main__":
    main()
