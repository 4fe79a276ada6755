"""The console in Chromium on both journals (a SQLite file, a real PostgreSQL): sign in,
approve a waiting step, every page rendered (audit verified); and the live runs and access
pages: a run or an access request made through the API appears in an open page, and its
status changes there, without a reload."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import pytest
from consolekinds import JOURNALS, journal_at
from servicetest import Served, new_event, start_service
from test_console_browser import WHY, ask_access, browser, mlflow, node, service_files

from crownguard.engine.scenarios import MockFleet

pytestmark = pytest.mark.browser
sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect
__all__ = ["browser", "mlflow", "service_files"]  # the browser module's fixtures, used here


@pytest.fixture(scope="module", params=JOURNALS)
def served(service_files: dict[str, Any], tmp_path_factory: pytest.TempPathFactory,
           request: pytest.FixtureRequest) -> Iterator[Served]:
    where = journal_at(request.param, request, tmp_path_factory.mktemp("journal"))
    if request.param == "sqlite":
        service = start_service(service_files, tmp_path_factory.mktemp("j") / "j.sqlite")
    else:  # the DSN through the environment, as a deployment gives a secret
        service = start_service(service_files, None, env={"CROWNGUARD_JOURNAL": where})
    service.dsn = None if request.param == "sqlite" else where  # type: ignore[attr-defined]
    yield service
    assert service.stop() == 0, "".join(service.log)
    assert "Traceback" not in "".join(service.log), "".join(service.log)


def runs_of(served: Served, event_id: str, timeout: float = 30.0) -> list[dict[str, Any]]:
    """The runs the service started for an event, from its intake table (either journal)."""
    dsn = getattr(served, "dsn", None)
    deadline = time.monotonic() + timeout
    while True:
        if dsn is None:
            with sqlite3.connect(served.journal) as db:
                row = db.execute("SELECT status, runs, error FROM service_intake WHERE "
                                 "event_id = ?", (event_id,)).fetchone()
        else:
            import psycopg
            with psycopg.connect(dsn, autocommit=True) as pg:
                row = pg.execute("SELECT status, runs, error FROM service_intake WHERE "
                                 "event_id = %s", (event_id,)).fetchone()
        if row is not None and row[0] in ("done", "failed"):
            assert row[0] == "done", row[2]
            return [served.call("GET", f"/v1/runs/{run_id}").json()
                    for run_id in json.loads(row[1])]
        assert time.monotonic() < deadline, f"event {event_id}: {row}\n" + "".join(served.log)
        time.sleep(0.1)


def start_waiting_run(served: Served, fleet: MockFleet) -> dict[str, Any]:
    event = new_event()
    event["actor"]["email"] = f"{event['id']}@example.com"
    fleet.get("okta").add_user(event["actor"]["email"])
    assert served.post_event(event).status_code == 202
    [run] = runs_of(served, event["id"])
    assert run["status"] == "waiting"
    return dict(run)


@pytest.fixture
def tab(browser: Any, served: Served) -> Iterator[Any]:
    """A signed-in tab: `tab(who)`; no console errors (a CSP refusal, a script failure)."""
    opened: list[tuple[Any, list[str]]] = []

    def sign_in(who: str) -> Any:
        from servicetest import TOKENS

        context = browser.new_context(base_url=served.base)
        page = context.new_page()
        page.set_default_timeout(15000)
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        opened.append((context, errors))
        page.goto("/ui/login")
        page.get_by_label("API token").fill(TOKENS[who][1])
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator(".who .name")).to_have_text(who)
        return page

    yield sign_in
    for context, errors in opened:
        assert errors == [], errors
        context.close()


def test_sign_in_approve_and_every_page_on_each_journal(tab: Any, served: Served,
                                                       service_fleet: MockFleet) -> None:
    run = start_waiting_run(served, service_fleet)
    page = tab("alice@corp.example")
    link = page.locator(f'a.run-link[href="/ui/runs/{run["run_id"]}"]')
    expect(link).to_be_visible()
    link.click()
    expect(node(page, "ask")).to_have_class(re.compile(r"\bst-waiting\b"))
    page.get_by_label("Comment").fill("go ahead")
    page.get_by_role("button", name="Approve").click()
    expect(page.locator(".notice-ok")).to_contain_text("the run is now succeeded")
    expect(node(page, "suspend")).to_have_class(re.compile(r"\bst-succeeded\b"))
    page.goto("/ui/audit?verify=1")
    expect(page.locator(".verify .notice-ok")).to_contain_text("Intact")
    page.goto(f"/ui/audit?by=alice@corp.example&run={run['run_id']}")
    expect(page.locator("table")).to_contain_text("approval")
    page.goto("/ui/intake")
    expect(page.get_by_role("heading", name="Dead letters")).to_be_visible()
    rid = ask_access(served)
    page.goto("/ui/access")
    expect(page.locator(f'.access-request[data-request="{rid}"]')).to_contain_text(WHY)
    page.goto("/ui/playbooks")
    expect(page.get_by_role("heading", name="contain-after-approval")).to_be_visible()
    page.goto("/ui/runs?person=alice@corp.example&status=succeeded")
    expect(page.locator(f'a.run-link[href="/ui/runs/{run["run_id"]}"]')).to_be_visible()


def test_a_run_started_through_the_api_appears_in_an_open_runs_list(
        tab: Any, served: Served, service_fleet: MockFleet) -> None:
    page = tab("siem-reader")
    page.evaluate("window.notReloaded = true")
    run = start_waiting_run(served, service_fleet)
    row = page.locator("#live-runs tr", has=page.locator(
        f'a.run-link[href="/ui/runs/{run["run_id"]}"]'))
    expect(row).to_be_visible()  # no reload: the live part was swapped in
    expect(row.locator(".badge")).to_have_text("waiting")
    expect(row.locator("time[data-expires]")).to_have_text(re.compile(r"left$"))
    waiting = page.locator('#live-counts a[data-status="waiting"] .count')
    before = int(waiting.inner_text())
    answered = served.call("POST", f"/v1/runs/{run['run_id']}/steps/ask/answer",
                           who="alice@corp.example", json_body={"decision": "approve"})
    assert answered.status_code == 200, answered.text
    expect(row.locator(".badge")).to_have_text("succeeded")
    expect(waiting).to_have_text(str(before - 1))
    assert page.evaluate("window.notReloaded") is True


def test_the_access_page_follows_requests_live_and_keeps_a_comment_being_typed(
        tab: Any, served: Served) -> None:
    page = tab("alice@corp.example")
    page.goto("/ui/access")
    page.evaluate("window.notReloaded = true")
    rid = ask_access(served)
    request = page.locator(f'.access-request[data-request="{rid}"]')
    expect(request).to_contain_text(WHY)
    request.get_by_label("Comment").fill("half a thought")
    other = ask_access(served, who="siem-reader")
    time.sleep(5)  # polls happen meanwhile: the part being typed in is left alone
    assert request.get_by_label("Comment").input_value() == "half a thought"
    expect(page.locator(f'.access-request[data-request="{other}"]')).to_have_count(0)
    request.get_by_label("Comment").fill("")
    page.locator("h1").click()
    expect(page.locator(f'.access-request[data-request="{other}"]')).to_be_visible()
    approved = served.call("POST", f"/v1/access-requests/{rid}/approve",
                           who="alice@corp.example", json_body={"comment": "ok"})
    assert approved.status_code == 200, approved.text
    granted = page.locator(f'table.granted tr[data-request="{rid}"]')
    expect(granted.locator("time[data-expires]")).to_have_text(re.compile(r"left$"))
    assert page.evaluate("window.notReloaded") is True
