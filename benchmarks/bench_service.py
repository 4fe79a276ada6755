"""`crownguard serve`: signed events accepted per second, end to end, and memory with waiting runs.

    .venv/bin/python benchmarks/bench_service.py [--events 20000] [--connections 16]
        [--waiting 10000] [--dir DIR] [--only intake,e2e,memory] [--against REF --rounds N]
        [--journal sqlite,postgres]

`--journal` names the journals the intake and end-to-end parts run on, side by side in the
same run, `--rounds` times each, alternating (A/B on a noisy machine). `postgres` uses
$CROWNGUARD_BENCH_POSTGRES (a DSN) or else starts a throwaway server as the tests do
(tests/pg_server.py) with fsync and full page writes turned back on: commits as durable as
SQLite's FULL. Each round gets a fresh schema; the DSN reaches the service through
$CROWNGUARD_JOURNAL, never its arguments. The memory part and `--against` run on SQLite.

Each part starts a real `crownguard serve` process (one uvicorn worker, pinned to one core when
the machine has two or more; the client is pinned to another) on a free loopback port:

- intake: a client with keep-alive over CONNECTIONS concurrent connections (aiohttp) posts
  EVENTS signed events, each a distinct normalised event, as fast as the service answers; the
  service stores them and processes none (CROWNGUARD_INTAKE_WORKERS=0), so what is measured is
  the intake: verify the signature, validate the event, commit it (synchronous FULL), answer.
  Reported: accepted events/s and the p50/p99 latency of one request.
- e2e: the default 4 intake workers and a one-step `core.noop` playbook every event routes to.
  A burst of events is posted, then the time until the last run finished is the processing
  rate; then events one at a time give accepted-to-run-finished latency (from the intake
  table's received_at and finished_at: the run had finished when its item was marked done).
- memory: the service's RSS on an empty journal, then on one holding WAITING runs (built as
  benchmarks/bench_resume_all.py builds them), sampled while the timer goes over them, and
  the CPU the idle service spends meanwhile (from /proc/PID/stat over the window: all of it
  is the timer's, nothing else runs) with the busiest thread's share (/proc/PID/task).

`--against REF` measures the same parts of the tree at git REF too, side by side in the same
run (`--rounds` times each, alternating): the service runs from a copy of REF's engine and
plugins (PYTHONPATH), so a change is measured beside its baseline on the same noisy machine.
For memory, the journal is built once by REF's code and copied for each side (this tree
migrates its copy at start).
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import hashlib
import hmac
import importlib.util
import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

from crownguard.engine.plugins import PluginHost
from crownguard.engine.service.payloads import normalise_payload
from crownguard.engine.triage import default_policy_data, policy_from_mapping

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "plugins" / "incydr" / "samples" / "model-to-removable-media.json"
SECRET = "bench-secret-0123456789abcdef"
TOKEN = "bench-token-0123456789abcdef00"
PLAYBOOK = """name: note-it
description: One step, the benchmark's end to end.
trigger:
  if: "event.file.is_model"
steps:
  - {id: note, action: core.noop, with: {who: "${{ event.actor.email }}"}}
"""


def write_files(folder: Path) -> dict[str, Path]:
    (folder / "note-it.yaml").write_text(PLAYBOOK)
    (folder / "policy.yaml").write_text(json.dumps({"routing": {
        "playbooks": ["note-it.yaml"], "shipped_playbooks": False}}))
    (folder / "connections.yaml").write_text(json.dumps({"connections": {}, "service": {
        "tokens": [{"name": "bench", "token": "${env:BENCH_TOKEN}", "role": "admin"}],
        "sources": {"siem": {"secret": "${env:BENCH_SECRET}",
                             "max_requests_per_minute": 100_000_000}}}}))
    return {"config": folder / "connections.yaml", "policy": folder / "policy.yaml"}


def events(count: int) -> list[bytes]:
    """COUNT distinct normalised events (distinct ids and files: no dedupe between them)."""
    host = PluginHost.from_entry_points()
    policy = policy_from_mapping(default_policy_data())
    base = json.loads(json.dumps(normalise_payload(json.loads(SAMPLE.read_text()), policy,
                                                   host.event_sources.values())[0].to_dict(),
                                 default=str))
    bodies = []
    for _ in range(count):
        event = copy.deepcopy(base)
        tag = uuid.uuid4().hex[:16]
        event["id"] = f"bench-{tag}"
        event["file"].update(name=f"model-{tag}.safetensors", path=f"E:/models/{tag}",
                             sha256=hashlib.sha256(tag.encode()).hexdigest())
        bodies.append(json.dumps(event).encode())
    return bodies


def signed(body: bytes, ts: str) -> dict[str, str]:
    sig = hmac.new(SECRET.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-Crownguard-Timestamp": ts,
            "X-Crownguard-Signature": f"v1={sig}"}


def _cpu(stat: Path) -> float:
    """User plus system CPU seconds from a /proc stat file."""
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Tree:
    """Another revision of crownguard to run the service from: `git archive REF` with a
    `crownguard` package of links to its engine, plugins and playbooks, first on PYTHONPATH."""

    def __init__(self, ref: str, folder: Path):
        self.ref = ref
        source, package = folder / "src", folder / "py" / "crownguard"
        source.mkdir(parents=True)
        package.mkdir(parents=True)
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref], check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(source)], input=archive, check=True)
        for part in ("engine", "plugins", "playbooks"):
            (package / part).symlink_to(source / part)
        self.source, self.path = source, folder / "py"

    def env(self) -> dict[str, str]:
        return {"PYTHONPATH": str(self.path)}


def is_dsn(journal: str | Path) -> bool:
    return str(journal).startswith(("postgresql://", "postgres://"))


class Journals:
    """Fresh journals of each kind: a file in the folder, or a new schema of one server."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.server: Any = None
        self.dsn = os.environ.get("CROWNGUARD_BENCH_POSTGRES", "")

    def new(self, kind: str, name: str) -> str:
        if kind == "sqlite":
            return str(self.folder / f"{name}-{uuid.uuid4().hex[:6]}.sqlite")
        import psycopg

        if not self.dsn:
            sys.path.insert(0, str(ROOT / "tests"))
            from pg_server import PostgresServer

            self.server = PostgresServer.start()
            self.dsn = self.server.dsn
            with psycopg.connect(self.dsn, autocommit=True) as db:  # durable, as deployed
                db.execute("ALTER SYSTEM SET fsync = on")
                db.execute("ALTER SYSTEM SET full_page_writes = on")
                db.execute("SELECT pg_reload_conf()")
        schema = f"bench_{name}_{uuid.uuid4().hex[:6]}"
        with psycopg.connect(self.dsn, autocommit=True) as db:
            db.execute(f'CREATE SCHEMA "{schema}"')
        joiner = "&" if "?" in self.dsn else "?"
        return f"{self.dsn}{joiner}options=-csearch_path%3D{schema}"

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()


def rows_of(journal: str | Path, sql: str) -> list[Any]:
    """Rows of the journal's store (SQLite file or PostgreSQL schema), outside the service."""
    if is_dsn(journal):
        import psycopg

        with psycopg.connect(str(journal), autocommit=True) as db:
            return list(db.execute(sql).fetchall())
    with sqlite3.connect(journal) as db:
        return db.execute(sql).fetchall()


class Served:
    """A `crownguard serve` process; its stderr goes to a file (the access log is long)."""

    def __init__(self, folder: Path, journal: str | Path, env: dict[str, str],
                 cpu: int | None, tree: Tree | None = None):
        files = write_files(folder)
        self.log_path = folder / f"serve-{uuid.uuid4().hex[:6]}.log"
        environ = {**os.environ, "BENCH_TOKEN": TOKEN, "BENCH_SECRET": SECRET, **env,
                   **(tree.env() if tree is not None else {})}
        environ.pop("CROWNGUARD_LISTEN", None)
        where = ["--journal", str(journal)]
        if is_dsn(journal):  # its password: through the environment, not the arguments
            environ["CROWNGUARD_JOURNAL"], where = str(journal), []
        self.log = self.log_path.open("w")

        def pin() -> None:
            if cpu is not None:
                os.sched_setaffinity(0, {cpu})

        self.process = subprocess.Popen(
            [sys.executable, "-m", "crownguard.engine.cli", "serve", "--config",
             str(files["config"]), "--policy", str(files["policy"]), *where,
             "--listen", "127.0.0.1:0"], env=environ, stdout=self.log, stderr=self.log,
            preexec_fn=pin)
        deadline = time.monotonic() + 120
        while True:
            text = self.log_path.read_text()
            if "listening on http://" in text:
                self.base = text.split("listening on ")[1].split()[0]
                break
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"crownguard serve did not start:\n{text}")
            time.sleep(0.1)
        self.journal = journal

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def cpu_seconds(self) -> float:
        return _cpu(Path(f"/proc/{self.process.pid}/stat"))

    def thread_cpu(self) -> dict[str, float]:
        """CPU seconds of each of the process's threads, by thread id."""
        found = {}
        for task in Path(f"/proc/{self.process.pid}/task").iterdir():
            try:
                found[task.name] = _cpu(task / "stat")
            except OSError:
                continue  # ended meanwhile
        return found

    def intake(self) -> list[tuple[str, str | None, str]]:
        return [tuple(row) for row in rows_of(
            self.journal, "SELECT received_at, finished_at, status FROM service_intake")]

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


async def post_all(base: str, bodies: list[bytes], connections: int) -> tuple[float, list[float]]:
    """Post every body over `connections` keep-alive connections; (seconds, latencies)."""
    ts = str(int(time.time()))
    prepared = [(body, signed(body, ts)) for body in bodies]
    latencies: list[float] = []
    queue = iter(prepared)
    url = f"{base}/v1/events/siem"

    async def worker(session: aiohttp.ClientSession) -> None:
        for body, headers in queue:
            started = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                if response.status != 202:
                    raise SystemExit(f"HTTP {response.status}: {await response.text()}")
            latencies.append(time.perf_counter() - started)

    connector = aiohttp.TCPConnector(limit=connections, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(connections)))
        return time.perf_counter() - started, latencies


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def _cpus() -> tuple[int | None, int | None]:
    cpus = sorted(os.sched_getaffinity(0))
    return (cpus[0], cpus[1]) if len(cpus) >= 2 else (None, None)


def bench_intake(folder: Path, count: int, connections: int,
                 journal: str | Path | None = None) -> dict[str, Any]:
    server_cpu, client_cpu = _cpus()
    served = Served(folder, journal or folder / "intake.sqlite",
                    {"CROWNGUARD_INTAKE_WORKERS": "0"}, server_cpu)
    if client_cpu is not None:
        os.sched_setaffinity(0, {client_cpu})
    try:
        bodies = events(count + 1000)
        asyncio.run(post_all(served.base, bodies[:1000], connections))  # warm up
        seconds, latencies = asyncio.run(post_all(served.base, bodies[1000:], connections))
        stored = len(served.intake())
    finally:
        served.stop()
        os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    return {"events": count, "connections": connections, "seconds": seconds,
            "rate": count / seconds, "p50_ms": percentile(latencies, 0.5) * 1000,
            "p99_ms": percentile(latencies, 0.99) * 1000, "stored": stored,
            "pinned": server_cpu is not None}


def _at(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _wait_done(served: Served, count: int, timeout: float = 600) -> list[tuple[str, str, str]]:
    deadline = time.monotonic() + timeout
    while True:
        rows = served.intake()
        finished = [r for r in rows if r[2] in ("done", "failed")]
        if len(finished) >= count:
            failed = [r for r in finished if r[2] == "failed"]
            if failed:
                raise SystemExit(f"{len(failed)} intake item(s) failed")
            return [(r[0], str(r[1]), r[2]) for r in finished]
        if time.monotonic() > deadline:
            raise SystemExit(f"only {len(finished)} of {count} processed in {timeout:.0f} s")
        time.sleep(0.05)


def bench_e2e(folder: Path, burst: int, single: int, tree: Tree | None = None,
              journal: str | Path | None = None) -> dict[str, Any]:
    served = Served(folder, journal or folder / f"e2e-{uuid.uuid4().hex[:6]}.sqlite", {},
                    None, tree)
    try:
        bodies = events(burst + single)
        started = time.perf_counter()
        asyncio.run(post_all(served.base, bodies[:burst], 8))
        rows = _wait_done(served, burst)
        burst_seconds = time.perf_counter() - started
        span = max(_at(r[1]) for r in rows) - min(_at(r[0]) for r in rows)
        latencies: list[float] = []
        for body in bodies[burst:]:
            asyncio.run(post_all(served.base, [body], 1))
            rows = _wait_done(served, burst + len(latencies) + 1)
            last = max(rows, key=lambda r: _at(r[0]))
            latencies.append(_at(last[1]) - _at(last[0]))
        runs = rows_of(served.journal, "SELECT count(*) FROM runs WHERE status = 'succeeded'")[0]
    finally:
        served.stop()
    return {"burst": burst, "burst_seconds": burst_seconds, "burst_rate": burst / span,
            "single": single, "p50_ms": statistics.median(latencies) * 1000,
            "p99_ms": percentile(latencies, 0.99) * 1000, "runs_succeeded": runs[0]}


def _build_waiting(path: Path, count: int, tree: Tree | None = None) -> None:
    """The journal of COUNT waiting runs, written by this tree's code or by `tree`'s."""
    if tree is None:
        spec = importlib.util.spec_from_file_location(
            "bench_resume_all", ROOT / "benchmarks" / "bench_resume_all.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.build(path, count, PluginHost.from_entry_points())
        return
    code = ("import importlib.util, sys; from pathlib import Path; "
            "from crownguard.engine.plugins import PluginHost; "
            "s = importlib.util.spec_from_file_location('b', sys.argv[1]); "
            "m = importlib.util.module_from_spec(s); s.loader.exec_module(m); "
            "m.build(Path(sys.argv[2]), int(sys.argv[3]), PluginHost.from_entry_points())")
    subprocess.run([sys.executable, "-c", code,
                    str(tree.source / "benchmarks" / "bench_resume_all.py"), str(path),
                    str(count)], check=True, env={**os.environ, **tree.env()}, cwd="/")


def _watch(served: Served, watch: float) -> tuple[list[float], float, float]:
    """RSS samples over `watch` seconds, the process's CPU share, its busiest thread's."""
    samples = []
    time.sleep(2)  # the first timer ticks
    cpu, threads, began = served.cpu_seconds(), served.thread_cpu(), time.monotonic()
    end = began + watch
    while time.monotonic() < end:
        time.sleep(watch / 10)
        samples.append(served.rss_mib())
    took = time.monotonic() - began
    after = served.thread_cpu()
    busiest = max((after[t] - threads.get(t, 0.0) for t in after), default=0.0)
    return samples, (served.cpu_seconds() - cpu) / took, busiest / took


def bench_memory(folder: Path, waiting: int, watch: float,
                 sides: list[tuple[str, Tree | None]] | None = None) -> dict[str, Any]:
    """RSS and CPU on an empty journal and on WAITING runs, for each side (label, tree)."""
    sides = sides or [("", None)]
    result: dict[str, Any] = {"waiting": waiting}
    built = folder / f"w-{uuid.uuid4().hex[:6]}.sqlite"
    started = time.perf_counter()
    _build_waiting(built, waiting, sides[0][1])  # the oldest code builds: both can read it
    result["build_seconds"] = time.perf_counter() - started
    for label, tree in sides:
        journal = folder / f"w-{uuid.uuid4().hex[:6]}.sqlite"
        shutil.copy(built, journal)
        for name, path in (("empty", folder / f"empty-{uuid.uuid4().hex[:6]}.sqlite"),
                           ("with_waiting", journal)):
            served = Served(folder, path, {"CROWNGUARD_TIMER_SECONDS": "1"}, None, tree)
            try:
                samples, cpu, thread = _watch(served, watch)
                result[label + name] = samples
                result[f"{label}{name}_cpu"], result[f"{label}{name}_thread"] = cpu, thread
            finally:
                served.stop()
    return result


def _print_memory(r: dict[str, Any], label: str, watch: float) -> None:
    print(f"memory{' ' + label.rstrip(':') if label else ''}: RSS empty journal "
          f"{min(r[label + 'empty']):.1f}-{max(r[label + 'empty']):.1f} MiB (idle CPU "
          f"{r[label + 'empty_cpu']:.0%} of a core); with {r['waiting']:,} waiting runs (built "
          f"in {r['build_seconds']:.0f} s) {min(r[label + 'with_waiting']):.1f}-"
          f"{max(r[label + 'with_waiting']):.1f} MiB over {watch:.0f} s of timer ticks "
          f"(samples: {', '.join(f'{m:.1f}' for m in r[label + 'with_waiting'])}); the timer's "
          f"CPU {r[label + 'with_waiting_cpu']:.1%} of a core (busiest thread "
          f"{r[label + 'with_waiting_thread']:.1%})", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--waiting", type=int, default=10_000)
    parser.add_argument("--watch", type=float, default=30.0,
                        help="seconds the memory part samples RSS for")
    parser.add_argument("--dir", help="where the journals go (default: a temporary directory)")
    parser.add_argument("--only", default="intake,e2e,memory")
    parser.add_argument("--against", metavar="REF",
                        help="also measure git REF (e2e and memory), side by side")
    parser.add_argument("--rounds", type=int, default=1,
                        help="rounds of each side (--against) or journal, alternating")
    parser.add_argument("--journal", default="sqlite",
                        help="the journals to measure intake and e2e on: sqlite, postgres or "
                             "both (sqlite,postgres), side by side")
    args = parser.parse_args(argv)
    parts = set(args.only.split(","))
    kinds = [k.strip() for k in args.journal.split(",") if k.strip()]
    unknown = sorted(set(kinds) - {"sqlite", "postgres"})
    if unknown:
        parser.error(f"--journal takes sqlite and postgres, not {', '.join(unknown)}")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = Path(tmp)
        if args.against:
            return _against(folder, Tree(args.against, folder / "against"), parts, args)
        journals = Journals(folder)
        try:
            for round_number in range(1, args.rounds + 1):
                for kind in kinds:
                    label = "" if kinds == ["sqlite"] and args.rounds == 1 else \
                        f"[{kind}, round {round_number}] "
                    _intake_and_e2e(folder, journals, kind, label, parts, args)
        finally:
            journals.close()
        if "memory" in parts:
            _print_memory(bench_memory(folder, args.waiting, args.watch), "", args.watch)
    return 0


def _intake_and_e2e(folder: Path, journals: Journals, kind: str, label: str, parts: set[str],
                    args: argparse.Namespace) -> None:
    if "intake" in parts:
        r = bench_intake(folder, args.events, args.connections, journals.new(kind, "intake"))
        print(f"{label}intake: {r['events']} signed events over {r['connections']} keep-alive "
              f"connections in {r['seconds']:.2f} s: {r['rate']:,.0f} events/s accepted, "
              f"p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms ({r['stored']} stored; "
              f"service {'pinned to one core' if r['pinned'] else 'unpinned'})", flush=True)
    if "e2e" in parts:
        r = bench_e2e(folder, 2000, 200, journal=journals.new(kind, "e2e"))
        print(f"{label}end to end: a burst of {r['burst']} events processed at "
              f"{r['burst_rate']:,.0f} events/s (accepted to last run finished, "
              f"{r['burst_seconds']:.1f} s in all); one at a time ({r['single']}): accepted "
              f"to run finished p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms "
              f"({r['runs_succeeded']} runs succeeded)", flush=True)


def _against(folder: Path, tree: Tree, parts: set[str], args: argparse.Namespace) -> int:
    """e2e and memory of REF and of this tree, alternating, `rounds` times."""
    sides: list[tuple[str, Tree | None]] = [(f"{tree.ref}:", tree), ("this tree:", None)]
    for round_number in range(1, args.rounds + 1):
        if "e2e" in parts:
            for label, side in sides:
                r = bench_e2e(folder, 2000, 200, side)
                print(f"round {round_number}, end to end, {label} burst of {r['burst']} at "
                      f"{r['burst_rate']:,.0f} events/s; one at a time p50 {r['p50_ms']:.1f} "
                      f"ms, p99 {r['p99_ms']:.1f} ms ({r['runs_succeeded']} runs succeeded)",
                      flush=True)
        if "memory" in parts:
            r = bench_memory(folder, args.waiting, args.watch, sides)
            for label, _ in sides:
                _print_memory(r, label, args.watch)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
