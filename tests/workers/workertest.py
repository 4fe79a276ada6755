"""Helpers of the worker process tests: `start_worker` runs `crownguard worker` as a real
process (its output collected), and waiting on the journal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any


class Worker:
    def __init__(self, process: subprocess.Popen[str], log: list[str]):
        self.process, self.log = process, log

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        return "".join(self.log)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


def start_worker(*args: str, env: dict[str, str], timeout: float = 60.0) -> Worker:
    """`crownguard worker ARGS...`, once Celery says it is ready."""
    process = subprocess.Popen([sys.executable, "-m", "crownguard.engine.cli", "worker", *args],
                               env={**os.environ, **env}, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    log: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            log.append(line)
            if " ready." in line:
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(timeout) or process.poll() is not None:
        process.kill()
        raise AssertionError("crownguard worker did not start:\n" + "".join(log))
    return Worker(process, log)


def wait_for(check: Callable[[], Any], timeout: float, what: str,
             show: Callable[[], str] = lambda: "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n{show()}")
        time.sleep(0.05)
