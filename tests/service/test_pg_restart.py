"""`crownguard serve` while its PostgreSQL restarts under load (issue 16, item 5): a private
server (tests/pg_server.py, one for this module, so no other test sees it go away) is stopped
fast and then crashed (`-m immediate`) while threads post signed events. While the database
is gone the intake answers 503 `not_stored` with Retry-After and /readyz says not ready; the
same process reconnects by itself; every event that got a 202 ends in exactly one run, and
the runs in flight finish without a step, or its side effect at the vendor, repeated."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from servicetest import SLOW, Served, new_event, start_service, wait_for

from crownguard.engine.scenarios import MockFleet


@pytest.fixture(scope="module")
def private_postgres() -> Iterator[Any]:
    """A server of this module's own: the test stops and starts it."""
    from pg_server import ENV_EXISTING, PostgresServer, Unavailable

    if os.environ.get(ENV_EXISTING):
        pytest.skip(f"{ENV_EXISTING} gives a server this test must not restart")
    try:
        server = PostgresServer.start()
    except Unavailable as exc:
        if os.environ.get("CI") and os.geteuid() == 0:
            pytest.fail(f"PostgreSQL must run in CI: {exc}")
        pytest.skip(f"no PostgreSQL server: {exc}")
    try:
        yield server
    finally:
        server.stop()


class Load:
    """Threads posting signed events one after another, each with its own person, half of
    them to the playbook that suspends at once (a side effect at the okta mock)."""

    def __init__(self, served: Served, okta: Any, threads: int = 3):
        self.served, self.okta = served, okta
        self.accepted: list[dict[str, Any]] = []
        self.refused: list[tuple[int, str, str | None]] = []  # 503: code, Retry-After
        self.wrong: list[str] = []  # anything else: a 500, a dropped connection...
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._post, args=(n,), daemon=True)
                        for n in range(threads)]

    def _post(self, n: int) -> None:
        count = 0
        while not self.stop.is_set():
            count += 1
            event = new_event(SLOW if count % 2 else None)
            event["actor"]["email"] = f"p-{uuid.uuid4().hex[:10]}@corp.example"
            self.okta.add_user(event["actor"]["email"])
            try:
                answer = self.served.post_event(event)
            except Exception as exc:  # the service itself went away: never expected
                with self.lock:
                    self.wrong.append(f"{type(exc).__name__}: {exc}")
                continue
            with self.lock:
                if answer.status_code == 202:
                    self.accepted.append(event)
                elif answer.status_code == 503:
                    code = answer.json().get("error", {}).get("code")
                    self.refused.append((503, str(code), answer.headers.get("Retry-After")))
                else:
                    self.wrong.append(f"{answer.status_code}: {answer.text[:300]}")
            time.sleep(0.4)  # under the source's 600 requests a minute

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)

    def counts(self) -> tuple[int, int]:
        with self.lock:
            return len(self.accepted), len(self.refused)


def _ready(served: Served) -> int:
    return served.call("GET", "/readyz", who=None).status_code


def _outage(server: Any, served: Served, load: Load, mode: str) -> None:
    """Stop the database (`mode`), see the service refuse and report not ready, start it
    again and see the service take events again, by itself."""
    accepted_before, refused_before = load.counts()
    server.halt(mode)
    try:
        wait_for(lambda: _ready(served) == 503, 15, f"/readyz to say not ready ({mode})")
        wait_for(lambda: load.counts()[1] > refused_before + 2, 15,
                 f"events refused with 503 while the database is down ({mode})")
        asked = time.monotonic()
        listed = served.call("GET", "/v1/runs")
        assert time.monotonic() - asked < 10  # told, not held for the pool's 30 s
        assert listed.status_code == 503, listed.text
        assert listed.json()["error"]["code"] == "journal_unavailable"
        assert listed.headers["Retry-After"] == "5"
    finally:
        server.resume()
    wait_for(lambda: _ready(served) == 200, 30, f"/readyz to recover ({mode})")
    after = load.counts()[0]
    wait_for(lambda: load.counts()[0] >= after + 4, 30, f"events accepted again ({mode})")
    assert load.counts()[0] > accepted_before


def test_a_postgres_restart_and_crash_under_load_lose_and_repeat_nothing(
        service_files: dict[str, Any], service_fleet: MockFleet,
        private_postgres: Any) -> None:
    okta = service_fleet.get("okta")
    okta.inject("latency", seconds=0.4, path="/api/v1/users/*", times=None)  # runs in flight
    served = start_service(service_files, None, env={
        "CROWNGUARD_JOURNAL": private_postgres.dsn, "CROWNGUARD_TIMER_SECONDS": "0.2"})
    try:
        assert _ready(served) == 200
        with Load(served, okta) as load:
            wait_for(lambda: load.counts()[0] >= 6, 30, "the first events accepted")
            _outage(private_postgres, served, load, "fast")
            _outage(private_postgres, served, load, "immediate")
        okta.clear_faults()
        assert served.process.poll() is None, "serve must reconnect, not exit"
        assert not load.wrong, load.wrong
        assert {(code, retry) for _, code, retry in load.refused} == {("not_stored", "5")}

        with psycopg.connect(private_postgres.dsn, autocommit=True) as db:
            def outcome() -> Any:
                rows = db.execute("SELECT event_id, status, runs, error FROM service_intake"
                                  ).fetchall()
                if any(r[1] in ("pending", "started") for r in rows):
                    return None
                return {r[0]: r[1:] for r in rows}

            try:
                items = wait_for(outcome, 60, "every accepted event processed")
            except AssertionError:
                left = db.execute("SELECT id, status, error, lease_expires FROM "
                                  "service_intake WHERE status IN ('pending', 'started')"
                                  ).fetchall()
                raise AssertionError(f"left: {left}\n" + "".join(served.log)) from None
            for event in load.accepted:
                status, run_ids, error = items[event["id"]]
                assert status == "done", (event["id"], error)
                assert len(json.loads(run_ids)) == 1, (event["id"], run_ids, "".join(
                    line for line in served.log if event["id"] in line), db.execute(
                    "SELECT run_id, status FROM runs WHERE inputs::json->'event'->>'id' = %s",
                    (event["id"],)).fetchall())
            runs_of = {r[0]: r[1] for r in db.execute(
                "SELECT run_id, status FROM runs").fetchall()}
            assert len(runs_of) == len(load.accepted)  # a run per event, and no more

            def ended() -> bool:
                left = db.execute("SELECT count(*) FROM runs WHERE status = 'running'"
                                  ).fetchone()
                return bool(left and left[0] == 0)

            wait_for(ended, 60, "the runs in flight finished")
            steps = Counter((r[0], r[1]) for r in db.execute(
                "SELECT run_id, payload::json->>'step_id' FROM entries WHERE type = %s",
                ("step_succeeded",)).fetchall())
        assert set(steps.values()) == {1}, [k for k, v in steps.items() if v > 1]
        for event in load.accepted:
            email = event["actor"]["email"]
            posts = okta.calls_to("POST", f"/api/v1/users/{okta.user_id(email)}/lifecycle/"
                                  "suspend")
            if event["file"]["name"] == SLOW:
                assert okta.status_of(email) == "SUSPENDED"
                assert len(posts) == 1, (email, len(posts))
            else:
                assert not posts
        shown = served.call("GET", "/v1/runs?limit=500").json()["runs"]
        assert Counter(r["status"] for r in shown) == Counter(runs_of.values())
        assert set(runs_of.values()) <= {"succeeded", "waiting"}, Counter(runs_of.values())
    finally:
        code = served.stop()
    log = "".join(served.log)
    assert code == 0, log
    assert "Traceback" not in log, log
    assert private_postgres.password not in log
