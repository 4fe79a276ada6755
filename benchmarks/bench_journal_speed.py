"""What the durable journal costs per step, and how many runs/s it carries, beside Prefect.

    .venv/bin/python benchmarks/bench_journal_speed.py [--quick] [--postgres DSN | --start-postgres]
        [--prefect-python PATH] [--no-prefect] [--dir DIR] [--json FILE]

1. Per-step overhead: a chain of core.noop steps run by the Runner with no journal, SQLite at
   its default durability (synchronous=FULL), SQLite NORMAL and PostgreSQL; the journal's cost
   is the difference to no journal. The no-journal figure is set beside an asyncio floor: one
   task created and awaited per step, the least an event-loop engine pays.
2. 50 parallel 100 ms calls (a thread-pool action that sleeps): the run's wall time against
   the 100 ms critical path, with no journal and with SQLite FULL.
3. Runs/s of a 5-step playbook against the mocks (five core.http_request POSTs to the webhook
   mock, one after the other) with 1, 2 and 4 processes on one journal.
4. The same for Prefect 3 (its tasks and flows, against a `prefect server start` this script
   starts on loopback), when the `bench` dependency group is installed (`pip install --group
   bench`) or `--prefect-python` names an interpreter that has it; skipped with a message
   otherwise.

DIR (default: a temporary directory) should be on the disk the journal will live on: with
synchronous=FULL every commit waits for an fsync, so the disk sets the figures. The machine's
other load moves every figure; compare figures of one run, not across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

from crownguard.engine import action, hookimpl
from crownguard.engine.config import config_from_mapping
from crownguard.engine.plugins import PluginHost
from crownguard.engine.runner import Runner
from crownguard.engine.spec import parse_playbook

HERE = Path(__file__).resolve().parent
EVENT = {"actor": {"email": "dev@example.com", "departing": True},
         "file": {"name": "llama-ft-q4.gguf", "size": 4_812_334_112, "sha256": "ab" * 32}}


class Sleeper:
    """bench.sleep: a thread-pool action that blocks for `seconds` (an I/O call's shape);
    bench.noop: one that does nothing, on a thread like every action that is not inline (the
    runner journals before each call of it, where core.noop, inline and pure, needs not)."""

    @hookimpl
    def crownguard_register_actions(self, register: Any) -> None:
        register(action("bench.sleep", input_schema={"type": "object"})(
            lambda ctx, inputs: time.sleep(float(inputs.get("seconds", 0.1))) or {}))
        register(action("bench.noop", input_schema={"type": "object"})(
            lambda ctx, inputs: {"n": inputs.get("n")}))


def chain(n: int, act: str = "core.noop", with_: dict[str, Any] | None = None) -> str:
    steps: list[dict[str, Any]] = []
    for i in range(n):
        step: dict[str, Any] = {"id": f"s{i}", "action": act,
                                "with": with_ or {"user": "${{ event.actor.email }}", "n": i}}
        if i:
            step["needs"] = [f"s{i - 1}"]
        steps.append(step)
    return yaml.safe_dump({"name": "chain", "steps": steps})


def fan_out(n: int, act: str, with_: dict[str, Any]) -> str:
    return yaml.safe_dump({"name": "fan", "steps": [{"id": f"s{i}", "action": act,
                                                      "with": with_} for i in range(n)]})


def make_host() -> PluginHost:
    host = PluginHost.from_entry_points()
    host.add(Sleeper(), "bench")
    return host


def open_journal(kind: str, directory: Path, dsn: str | None, name: str) -> Any:
    if kind == "memory":
        return None
    if kind == "postgresql":
        from crownguard.engine.journal.postgres import PostgresJournal
        return PostgresJournal(str(dsn))
    from crownguard.engine.journal import SQLiteJournal
    return SQLiteJournal(directory / f"{name}-{kind}.sqlite",
                         synchronous="FULL" if kind == "sqlite-full" else "NORMAL")


def time_runs(runner: Runner, playbook: Any, repeats: int) -> list[float]:
    runner.run(playbook, EVENT)  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        record = runner.run(playbook, EVENT)
        times.append(time.perf_counter() - started)
        assert record["status"] == "succeeded", record["status"]
    return times


async def _asyncio_chain(n: int, repeats: int, threaded: bool) -> list[float]:
    def work(i: int) -> dict[str, Any]:
        return {"n": i}

    async def step(i: int) -> dict[str, Any]:
        return work(i)

    loop = asyncio.get_running_loop()
    times = []
    for _ in range(repeats + 1):
        started = time.perf_counter()
        outputs: dict[str, Any] = {}
        for i in range(n):
            outputs[f"s{i}"] = await (loop.run_in_executor(None, work, i) if threaded
                                      else asyncio.create_task(step(i)))
        times.append(time.perf_counter() - started)
    return times[1:]


def asyncio_floor(n: int, repeats: int, threaded: bool) -> float:
    """Seconds per step of a chain of n steps on an asyncio loop, each a task created and
    awaited (threaded: a call on the loop's thread pool, awaited), the loop's start-up not
    counted: the least an event-loop engine pays per step."""
    return statistics.median(asyncio.run(_asyncio_chain(n, repeats, threaded))) / n


ACTIONS = ("core.noop", "bench.noop")


def per_step(kinds: list[str], directory: Path, dsn: str | None, steps: int, repeats: int,
             rounds: int) -> dict[str, Any]:
    """Median seconds per step for each journal kind and action (`kind action` keys),
    interleaved over `rounds`."""
    host = make_host()
    playbooks = {a: parse_playbook(chain(steps, a), host.actions) for a in ACTIONS}
    samples: dict[str, list[float]] = {f"{k} {a}": [] for k in kinds for a in ACTIONS}
    floor: list[float] = []
    floor_threaded: list[float] = []
    for _ in range(rounds):
        floor.append(asyncio_floor(steps, repeats, False))
        floor_threaded.append(asyncio_floor(steps, repeats, True))
        for kind in kinds:
            journal = open_journal(kind, directory, dsn, "per-step")
            try:
                for name, playbook in playbooks.items():
                    times = time_runs(Runner(host, journal=journal), playbook, repeats)
                    samples[f"{kind} {name}"].append(statistics.median(times) / steps)
            finally:
                if journal is not None:
                    journal.close()
    result: dict[str, Any] = {k: statistics.median(v) for k, v in samples.items()}
    result["asyncio"] = statistics.median(floor)
    result["asyncio threaded"] = statistics.median(floor_threaded)
    result["rounds"] = samples | {"asyncio": floor, "asyncio threaded": floor_threaded}
    return result


def parallel_calls(kinds: list[str], directory: Path, dsn: str | None, repeats: int
                   ) -> dict[str, float]:
    host = make_host()
    playbook = parse_playbook(fan_out(50, "bench.sleep", {"seconds": 0.1}), host.actions)
    out = {}
    for kind in kinds:
        journal = open_journal(kind, directory, dsn, "parallel")
        try:
            out[kind] = statistics.median(time_runs(Runner(host, journal=journal), playbook,
                                                    repeats))
        finally:
            if journal is not None:
                journal.close()
    return out


# runs/s of a 5-step playbook against the mock, 1, 2 and 4 processes ----------------------------

def _worker(kind: str, directory: str, dsn: str | None, base_url: str, allowed: list[str],
            runs: int, start: Any, results: Any) -> None:
    host = make_host()
    config = config_from_mapping({"connections": {"http": {"allowed_hosts": allowed}}},
                                 host.connection_types)
    playbook = parse_playbook(chain(5, "core.http_request",
                                    {"method": "POST", "url": f"{base_url}/hooks/bench",
                                     "json": {"user": "${{ event.actor.email }}"}}),
                              host.actions)
    journal = open_journal(kind, Path(directory), dsn, "runs")
    runner = Runner(host, config, journal=journal)
    runner.run(playbook, EVENT)  # warm-up: connections, imports
    start.wait()
    latencies = []
    started = time.perf_counter()
    for _ in range(runs):
        t0 = time.perf_counter()
        record = runner.run(playbook, EVENT, run_id=uuid.uuid4().hex)
        latencies.append(time.perf_counter() - t0)
        assert record["status"] == "succeeded", record
    results.put((started, time.perf_counter(), latencies))
    if journal is not None:
        journal.close()


def runs_per_second(kind: str, directory: Path, dsn: str | None, processes: int,
                    runs: int) -> dict[str, float]:
    from crownguard.plugins.core.mock import WebhookMock

    server = WebhookMock()
    server.start()
    ctx = multiprocessing.get_context("fork")
    start, results = ctx.Event(), ctx.Queue()
    try:
        allowed = server.connection_settings()["allowed_hosts"]
        workers = [ctx.Process(target=_worker, args=(kind, str(directory), dsn,
                                                     server.base_url, allowed,
                                                     runs, start, results))
                   for _ in range(processes)]
        for w in workers:
            w.start()
        time.sleep(0.5)
        start.set()
        done = [results.get(timeout=600) for _ in workers]
        for w in workers:
            w.join()
    finally:
        server.stop()
    wall = max(d[1] for d in done) - min(d[0] for d in done)
    latencies = sorted(x for d in done for x in d[2])
    return {"runs_per_s": len(latencies) / wall,
            "p50_ms": latencies[len(latencies) // 2] * 1000,
            "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000}


# Prefect -----------------------------------------------------------------------------------

def prefect(python: str, processes: list[int], runs: int, steps: int) -> dict[str, Any] | str:
    """Prefect's figures from benchmarks/prefect_reference.py run by `python`, or why not."""
    probe = subprocess.run([python, "-c", "import prefect; print(prefect.__version__)"],
                           capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        return ("Prefect is not installed for " + python + ": `pip install --group bench` "
                "(or --prefect-python PATH) to compare with it")
    command = [python, str(HERE / "prefect_reference.py"), "--runs", str(runs), "--steps",
               str(steps), "--processes", ",".join(map(str, processes))]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=3600)
    if done.returncode != 0:
        tail = " / ".join((done.stderr or done.stdout).strip().splitlines()[-5:])
        return f"the Prefect benchmark failed: {tail}"
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["version"] = probe.stdout.strip()
    return result


def print_per_step(steps: dict[str, Any], kinds: list[str]) -> None:
    floors = {"core.noop": steps["asyncio"], "bench.noop": steps["asyncio threaded"]}
    print("| journal | core.noop (inline) per step | its journal cost | bench.noop (thread) "
          "per step | its journal cost |")
    print("|---|---|---|---|---|")
    print(f"| asyncio floor (task / run_in_executor) | {floors['core.noop'] * 1e6:,.1f} µs | - "
          f"| {floors['bench.noop'] * 1e6:,.1f} µs | - |")
    for kind in kinds:
        cells = []
        for name in ACTIONS:
            value, base = steps[f"{kind} {name}"], steps[f"memory {name}"]
            cells.append(f"{value * 1e6:,.1f} µs" + (
                f" ({value / floors[name]:.1f}x the floor)" if kind == "memory" else ""))
            cells.append("-" if kind == "memory" else f"{(value - base) * 1e6:,.0f} µs")
        print(f"| {'none (in memory)' if kind == 'memory' else kind} | {' | '.join(cells)} |")


def start_postgres() -> tuple[Any, str]:
    sys.path.insert(0, str(HERE.parent / "tests"))
    from pg_server import PostgresServer  # tests/pg_server.py

    server = PostgresServer.start()
    return server, server.fresh_schema(f"bench_{uuid.uuid4().hex[:8]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and runs")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgres", metavar="DSN", default=os.environ.get("BENCH_POSTGRES"))
    parser.add_argument("--start-postgres", action="store_true",
                        help="start a PostgreSQL server with tests/pg_server.py")
    parser.add_argument("--prefect-python", default=sys.executable)
    parser.add_argument("--no-prefect", action="store_true")
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--only", choices=("per-step", "parallel", "runs", "prefect"),
                        action="append", help="run only these parts (repeatable)")
    args = parser.parse_args()
    parts = set(args.only or ("per-step", "parallel", "runs", "prefect"))
    repeats, runs = (3, 40) if args.quick else (8, 150)
    server = None
    dsn = args.postgres
    if args.start_postgres and not dsn:
        server, dsn = start_postgres()
    kinds = ["memory", "sqlite-full", "sqlite-normal"] + (["postgresql"] if dsn else [])
    results: dict[str, Any] = {"cpus": os.cpu_count()}
    try:
        with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
            directory = Path(tmp)
            print(f"journal speed: {os.cpu_count()} CPUs, files in {directory}"
                  + ("" if dsn else "; no PostgreSQL (--postgres DSN or --start-postgres)"))
            steps = (per_step(kinds, directory, dsn, args.steps, repeats, args.rounds)
                     if parts & {"per-step", "prefect"} else {})
            results["per_step_s"] = steps
            if steps:
                print(f"\nPer step, a {args.steps}-step chain (median of {args.rounds} rounds "
                      f"x {repeats} runs):\n")
                print_per_step(steps, kinds)
            if "parallel" in parts:
                wall = parallel_calls(kinds[:2], directory, dsn, max(3, repeats // 2))
                results["parallel_50x100ms_s"] = wall
                print("\n50 parallel 100 ms calls (critical path 100 ms): "
                      + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in wall.items()))
            if "runs" not in parts:
                kinds = kinds[:1]
            else:
                print(f"\nRuns/s, 5-step playbook (core.http_request to the webhook mock), "
                      f"{runs} runs per process:\n")
                print("| engine | journal | processes | runs/s | p50 | p99 |")
                print("|---|---|---|---|---|---|")
            table = results["runs"] = []
            for kind in kinds[1:]:
                for procs in (1, 2, 4):
                    r = runs_per_second(kind, directory, dsn, procs, runs)
                    table.append({"journal": kind, "processes": procs, **r})
                    print(f"| crownguard | {kind} | {procs} | {r['runs_per_s']:,.0f} | "
                          f"{r['p50_ms']:.1f} ms | {r['p99_ms']:.1f} ms |")
    finally:
        if server is not None:
            server.stop()
    if "prefect" in parts and not args.no_prefect:
        ref = prefect(args.prefect_python, [1, 2, 4], max(10, runs // 5), args.steps)
        results["prefect"] = ref
        if isinstance(ref, str):
            print(f"\nPrefect: skipped: {ref}")
        else:
            print(f"\nPrefect {ref['version']} (its server on loopback, SQLite):\n")
            print(f"per step (a {args.steps}-task chain in one flow): "
                  f"{ref['per_step_s'] * 1e3:,.2f} ms, "
                  f"{ref['per_step_s'] / max(1e-9, steps['sqlite-full bench.noop']):,.0f}x "
                  "crownguard's with SQLite FULL (bench.noop)")
            for row in ref["runs"]:
                print(f"| Prefect | its server | {row['processes']} | "
                      f"{row['runs_per_s']:,.1f} | {row['p50_ms']:.0f} ms | "
                      f"{row['p99_ms']:.0f} ms |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
