"""`crownguard serve --broker` with a real worker and a real Redis that is killed and brought
back: intake answers 202 throughout, the run taken in while Redis is gone stays in the
journal, and the sweeper hands it to the worker once Redis is back."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from servicetest import SLOW, new_event, start_service, write_service_files
from workertest import start_worker, wait_for

from crownguard.engine.plugins import PluginHost
from crownguard.engine.scenarios import MockFleet


def _run_status(journal: Path, event_id: str) -> str | None:
    with sqlite3.connect(journal) as db:
        row = db.execute("SELECT status, runs FROM service_intake WHERE event_id = ?",
                         (event_id,)).fetchone()
        if row is None or row[0] != "done":
            return None
        (run_id,) = json.loads(row[1])
        return db.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone()[0]


@pytest.mark.slow
def test_redis_killed_and_back_nothing_is_lost(tmp_path: Path) -> None:
    from redis_server import RedisServer, Unavailable

    try:
        redis = RedisServer.start()
    except Unavailable as exc:
        pytest.skip(f"no Redis server: {exc}")
    with MockFleet(PluginHost.from_entry_points()) as fleet:
        files = write_service_files(tmp_path, fleet)
        journal = tmp_path / "journal.sqlite"
        env = {**files["env"], "CROWNGUARD_BROKER": f"redis://127.0.0.1:{redis.port}/0",
               "CROWNGUARD_BROKER_PASSWORD": redis.password, "CROWNGUARD_JOURNAL": str(journal)}
        served = start_service(files, journal, env=env)
        worker = None
        try:
            worker = start_worker("--config", str(files["config"]), "--sweep-seconds", "0",
                                  env=env)
            okta = fleet.get("okta")
            first, second = new_event(SLOW), new_event(SLOW)
            for event in (first, second):
                okta.add_user(event["actor"]["email"])
            assert served.post_event(first).status_code == 202
            wait_for(lambda: _run_status(journal, first["id"]) == "succeeded", 60,
                     "the first run", lambda: "".join(served.log) + worker.output())
            redis.kill()
            assert served.post_event(second).status_code == 202  # stored; Redis plays no part
            wait_for(lambda: _run_status(journal, second["id"]) == "running", 30,
                     "the second run to be created", lambda: "".join(served.log))
            redis.restart()
            wait_for(lambda: _run_status(journal, second["id"]) == "succeeded", 60,
                     "the second run after Redis came back",
                     lambda: "".join(served.log) + worker.output())
            for event in (first, second):
                assert okta.status_of(event["actor"]["email"]) == "SUSPENDED"
        finally:
            if worker is not None:
                worker.stop()
            served.stop()
            redis.stop()
        log = "".join(served.log) + (worker.output() if worker else "")
        assert redis.password not in log
        assert "Traceback" not in log, log
