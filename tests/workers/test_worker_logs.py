"""A real `crownguard worker -v` whose Redis is killed and brought back logs one line per
record: no traceback (Celery logs the lost connection with its exception at debug, kombu a
failed acknowledgement with it at critical) and no many-line deprecation warning."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from workertest import start_worker, wait_for

LINE = re.compile(r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+: ")


def test_redis_lost_and_back_every_record_is_one_line(redis_db: Any, tmp_path: Path) -> None:
    server, _ = redis_db
    config = tmp_path / "connections.yaml"
    config.write_text(json.dumps({"connections": {}}))
    worker = start_worker("--config", str(config), "--journal", str(tmp_path / "j.sqlite"),
                          "--broker", f"redis://127.0.0.1:{server.port}/0",
                          "--sweep-seconds", "0", "-v",
                          env={"CROWNGUARD_BROKER_PASSWORD": server.password})
    try:
        server.kill()
        try:
            wait_for(lambda: "Connection to broker lost" in worker.output(), 30,
                     "the worker to see Redis gone", worker.output)
        finally:
            server.restart()
        mark = len(worker.log)
        wait_for(lambda: any("Connected to redis" in line for line in worker.log[mark:]), 30,
                 "the worker to reconnect", worker.output)
    finally:
        worker.stop()
    output = worker.output()
    assert "Traceback" not in output, output
    assert "CPendingDeprecationWarning" not in output, output
    assert server.password not in output
    loose = [line for line in output.splitlines() if line.strip() and not LINE.match(line)
             and line.strip() != "worker: Warm shutdown (MainProcess)"]  # Celery's print
    assert not loose, "\n".join(loose)
