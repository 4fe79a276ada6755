"""Runs/s of a 5-step playbook performed by `crownguard worker` processes over Redis, on a
PostgreSQL journal, with 1, 2 and 4 workers; beside the same playbook run by as many plain
processes (`Runner.run` on the same journal, bench_journal_speed.py's figure) in the same run,
and by as many plain processes with no journal at all: the ceiling that this machine, the mock
and the HTTP calls set, which no journal or queue can beat.

    .venv/bin/python benchmarks/bench_workers.py [--postgres DSN] [--redis URL] [--runs N]
        [--workers 1,2,4] [--concurrency C] [--rounds R] [--no-baseline] [--json FILE]

Without --postgres or --redis it starts its own servers (tests/pg_server.py and
tests/redis_server.py: Debian's packages, installed when run as root). The playbook is five
core.http_request POSTs to the webhook mock, one after the other. Each round, for each worker
count: N runs are created in the journal as `serve --broker` creates them (run_created and
run_started, the lease lapsed; not timed), their ids are sent to the broker, and the clock runs
from the first send until the journal says every run succeeded. Workers are real processes
(`crownguard worker --concurrency C --sweep-seconds 0`), started before and stopped after each
measurement. The machine's other load moves every figure: compare figures of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUTCOME = re.compile(r"run ([0-9a-f]{32}): (\w+)")
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from bench_journal_speed import EVENT, chain, runs_per_second  # noqa: E402

from crownguard.engine.config import load_config  # noqa: E402
from crownguard.engine.journal.postgres import PostgresJournal  # noqa: E402
from crownguard.engine.plugins import PluginHost  # noqa: E402
from crownguard.engine.service.worker.broker import broker_from  # noqa: E402
from crownguard.engine.service.worker.intake import (  # noqa: E402
    create_queued_run,
    handoff_journal,
)
from crownguard.engine.service.worker.queue import RunQueue  # noqa: E402
from crownguard.engine.spec import parse_playbook  # noqa: E402


class Workers:
    """N `crownguard worker` processes, ready (Celery's ' ready.' line) on return."""

    def __init__(self, count: int, config: Path, env: dict[str, str], concurrency: int):
        self.processes: list[subprocess.Popen[str]] = []
        self.logs: list[list[str]] = []
        ready: list[threading.Event] = []
        for _ in range(count):
            process = subprocess.Popen(
                [sys.executable, "-m", "crownguard.engine.cli", "worker", "--config",
                 str(config), "--concurrency", str(concurrency), "--sweep-seconds", "0"],
                env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                text=True)
            log: list[str] = []
            event = threading.Event()
            threading.Thread(target=self._read, args=(process, log, event), daemon=True).start()
            self.processes.append(process)
            self.logs.append(log)
            ready.append(event)
        for event, process, log in zip(ready, self.processes, self.logs, strict=True):
            if not event.wait(120) or process.poll() is not None:
                self.stop()
                raise SystemExit("a worker did not start:\n" + "".join(log))

    @staticmethod
    def _read(process: subprocess.Popen[str], log: list[str], ready: threading.Event) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            log.append(line)
            if " ready." in line:
                ready.set()
        ready.set()

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def finished(db: Any, run_ids: list[str]) -> tuple[int, int]:
    """(succeeded, ended otherwise) among the runs, on one open connection: a connection a
    poll (a backend forked, a SCRAM exchange each) cost the server more than the runs did."""
    rows = db.execute("SELECT status, count(*) FROM runs WHERE run_id = ANY(%s) GROUP BY "
                      "status", (run_ids,)).fetchall()
    counts = {str(s): int(n) for s, n in rows}
    ok = counts.get("succeeded", 0)
    return ok, sum(n for s, n in counts.items() if s in ("failed", "cancelled"))


def measure(dsn: str, broker_url: str, password: str, config_path: Path, playbook_text: str,
            workers: int, concurrency: int, runs: int) -> dict[str, float]:
    host = PluginHost.from_entry_points()
    config = load_config(config_path, host.connection_types)
    playbook = parse_playbook(playbook_text, host.actions)
    os.environ["CROWNGUARD_BROKER_PASSWORD"] = password
    broker = broker_from(broker_url)
    assert broker is not None
    queue = RunQueue(broker)
    env = {"CROWNGUARD_JOURNAL": dsn, "CROWNGUARD_BROKER": broker_url,
           "CROWNGUARD_BROKER_PASSWORD": password}
    pool = Workers(workers, config_path, env, concurrency)
    try:
        with PostgresJournal(dsn) as journal:
            handoff = handoff_journal(journal)
            try:
                ids = [uuid.uuid4().hex for _ in range(runs)]
                for run_id in ids:  # as serve --broker's intake creates them: not timed
                    create_queued_run(handoff, config, playbook, EVENT, {}, run_id=run_id)
            finally:
                handoff.close()
        import psycopg

        with psycopg.connect(dsn, autocommit=True) as db:
            started = time.perf_counter()
            for run_id in ids:
                queue.enqueue(run_id)
            sent = time.perf_counter() - started
            deadline = time.monotonic() + 900
            while True:
                ok, bad = finished(db, ids)
                if ok + bad == runs:
                    break
                if time.monotonic() > deadline:
                    raise SystemExit(f"{ok + bad}/{runs} runs ended in 900 s")
                time.sleep(0.05)
            wall = time.perf_counter() - started
        if bad:
            raise SystemExit(f"{bad} run(s) did not succeed:\n"
                             + "".join(line for log in pool.logs for line in log[-20:]))
    finally:
        pool.stop()
        queue.close()
        config.connections.close()
    # What the workers said of each message: all `performed`, else some were handled twice.
    wanted = set(ids)
    said = [m.group(2) for log in pool.logs for line in log
            for m in [OUTCOME.search(line)] if m and m.group(1) in wanted]
    return {"runs_per_s": runs / wall, "wall_s": wall, "enqueue_s": sent,
            "outcomes": {word: said.count(word) for word in sorted(set(said))}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", metavar="DSN", default=os.environ.get("BENCH_POSTGRES"))
    parser.add_argument("--redis", metavar="URL", default=os.environ.get("BENCH_REDIS"),
                        help="redis://:PASSWORD@HOST:PORT/DB (default: start one)")
    parser.add_argument("--runs", type=int, default=400, help="runs per measurement")
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--concurrency", type=int, default=8, help="runs at a time per worker")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip the plain processes (Runner.run on the journal, and with "
                             "no journal: what the machine and the mock allow at all)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    servers: list[Any] = []
    from crownguard.plugins.core.mock import WebhookMock

    mock = WebhookMock()
    mock.start()
    try:
        dsn = args.postgres
        if not dsn:
            from pg_server import PostgresServer

            pg = PostgresServer.start()
            servers.append(pg)
            dsn = pg.fresh_schema(f"bench_workers_{uuid.uuid4().hex[:8]}")
        url = args.redis
        if not url:
            from redis_server import RedisServer

            rs = RedisServer.start()
            servers.append(rs)
            url = rs.url
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        password = parts.password or ""
        broker_url = f"redis://{parts.hostname}:{parts.port or 6379}{parts.path or '/0'}"
        allowed = mock.connection_settings()["allowed_hosts"]
        text = chain(5, "core.http_request", {"method": "POST", "url": f"{mock.base_url}"
                     "/hooks/bench", "json": {"user": "${{ event.actor.email }}"}})
        results: dict[str, Any] = {"cpus": os.cpu_count(), "runs": args.runs,
                                   "concurrency": args.concurrency, "workers": {},
                                   "processes": {}, "memory": {}}
        with tempfile.TemporaryDirectory() as tmp:
            config_path = Path(tmp) / "connections.yaml"
            config_path.write_text(json.dumps({"connections": {"http": {
                "allowed_hosts": allowed}}}))
            PostgresJournal(dsn).close()  # migrated once, before anything is timed
            print(f"workers: {os.cpu_count()} CPUs, {args.runs} runs a measurement, "
                  f"--concurrency {args.concurrency}, {args.rounds} round(s)")
            for round_ in range(args.rounds):
                for n in counts:
                    r = measure(dsn, broker_url, password, config_path, text, n,
                                args.concurrency, args.runs)
                    results["workers"].setdefault(str(n), []).append(r)
                    print(f"round {round_ + 1}: {n} worker(s): {r['runs_per_s']:,.1f} runs/s "
                          f"({r['wall_s']:.1f} s; ids sent in {r['enqueue_s'] * 1000:.0f} ms; "
                          f"{r['outcomes']})", flush=True)
                    if not args.no_baseline:
                        b = runs_per_second("postgresql", Path(tmp), dsn, n,
                                            max(args.runs // n, 10))
                        results["processes"].setdefault(str(n), []).append(b)
                        print(f"round {round_ + 1}: {n} plain process(es): "
                              f"{b['runs_per_s']:,.1f} runs/s", flush=True)
                        m = runs_per_second("memory", Path(tmp), None, n,
                                            max(args.runs // n, 10))
                        results["memory"].setdefault(str(n), []).append(m)
                        print(f"round {round_ + 1}: {n} plain process(es), no journal: "
                              f"{m['runs_per_s']:,.1f} runs/s", flush=True)
        print("\n| runs performed by | 1 | 2 | 4 |".replace(" 1 | 2 | 4 |", " " + " | ".join(
            map(str, counts)) + " |"))
        print("|---|" + "---|" * len(counts))
        for key, label in (("workers", f"`crownguard worker` (Celery threads, "
                                       f"--concurrency {args.concurrency})"),
                           ("processes", "plain processes (Runner.run, one run at a time)"),
                           ("memory", "the same with no journal: this machine's ceiling")):
            if results[key]:
                cells = [f"{statistics.median(r['runs_per_s'] for r in results[key][str(n)]):,.0f}"
                         for n in counts]
                print(f"| {label} | " + " | ".join(cells) + " |")
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
    finally:
        mock.stop()
        for server in servers:
            server.stop()


if __name__ == "__main__":
    main()
