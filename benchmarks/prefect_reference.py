"""Prefect 3's figures for bench_journal_speed.py, run by an interpreter that has Prefect (the
`bench` dependency group): per-step cost of a chain of no-op tasks in one flow, and runs/s of
a 5-task flow that POSTs to a local webhook (like crownguard's 5-step playbook) with 1, 2 and 4
processes, against one `prefect server start` on loopback (its SQLite database) started here.

Prints one JSON line: {"per_step_s": ..., "runs": [{"processes", "runs_per_s", ...}]}.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Hook(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b'{"ok": true, "id": 1}'
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def _flows(url: str) -> tuple[Any, Any]:
    from prefect import flow, task

    @task
    def noop(n: int) -> dict[str, int]:
        return {"n": n}

    @task
    def post(n: int) -> dict[str, Any]:
        request = urllib.request.Request(url, data=json.dumps({"n": n}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as answer:
            return dict(json.loads(answer.read()))

    @flow
    def chain(steps: int) -> None:
        previous: Any = 0
        for i in range(steps):
            previous = noop(i if previous is not None else 0)

    @flow
    def five() -> None:
        for i in range(5):
            post(i)

    return chain, five


def _worker(url: str, runs: int, start: Any, results: Any) -> None:
    _, five = _flows(url)
    five()  # warm-up
    start.wait()
    latencies = []
    began = time.perf_counter()
    for _ in range(runs):
        t0 = time.perf_counter()
        five()
        latencies.append(time.perf_counter() - t0)
    results.put((began, time.perf_counter(), latencies))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--processes", default="1,2,4")
    args = parser.parse_args()
    hook = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{hook.server_address[1]}/hooks/bench"
    home = tempfile.mkdtemp(prefix="prefect-bench-")
    port = free_port()
    env = {**os.environ, "PREFECT_HOME": home, "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
           "PREFECT_LOGGING_LEVEL": "WARNING", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    os.environ.update(env)
    server = subprocess.Popen([str(Path(sys.executable).with_name("prefect")), "server", "start",
                               "--host", "127.0.0.1", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the Prefect server did not start") from None
                time.sleep(0.5)
        chain, _ = _flows(url)
        chain(args.steps)  # warm-up
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            chain(args.steps)
            times.append(time.perf_counter() - t0)
        result: dict[str, Any] = {"per_step_s": sorted(times)[1] / args.steps, "runs": []}
        ctx = multiprocessing.get_context("spawn")
        for procs in (int(p) for p in args.processes.split(",")):
            start, results = ctx.Event(), ctx.Queue()
            workers = [ctx.Process(target=_worker, args=(url, args.runs, start, results))
                       for _ in range(procs)]
            for w in workers:
                w.start()
            time.sleep(2.0)
            start.set()
            done = [results.get(timeout=1800) for _ in workers]
            for w in workers:
                w.join()
            wall = max(d[1] for d in done) - min(d[0] for d in done)
            lat = sorted(x for d in done for x in d[2])
            result["runs"].append({"processes": procs, "runs_per_s": len(lat) / wall,
                                   "p50_ms": lat[len(lat) // 2] * 1000,
                                   "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000})
        print(json.dumps(result))
    finally:
        server.terminate()
        server.wait(timeout=30)
        hook.shutdown()


if __name__ == "__main__":
    main()
