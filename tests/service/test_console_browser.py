"""The console in a real browser (Chromium through Playwright) against a real `crownguard
serve` with the mock vendors (and the mlflow mock for access requests): sign in, runs and
their filters, a run's graph changing live, approve (by mouse and by keyboard alone), undo,
intake, access requests, audit, a session surviving a restart, and the refusals (a viewer's
forged approve, a POST without its CSRF token). One service and one browser for the module;
each test its own browser context (its own cookies)."""

from __future__ import annotations

import json
import os
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browsertest import ensure_chromium, launch
from servicetest import SLOW, TOKENS, Served, new_event, start_service, write_service_files

from crownguard.engine.scenarios import MockFleet
from crownguard.plugins.mlflow.mock import MlflowMock

pytestmark = pytest.mark.browser
sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect
WHY = "retraining the fraud model on the Q3 data"
ACCESS_POLICY = {"weights": {"off_hours": 0},  # answers that do not depend on the hour
                 "access": {"models": {"tag": "sensitivity"}, "auto_grant_below": 15,
                            "two_approvers_from": 60, "approvers": {"owner_tag": "owner"}}}


@pytest.fixture(scope="module")
def mlflow() -> Iterator[MlflowMock]:
    """The registry access requests grant in: `secret`, owned by alice, asks her first."""
    mock = MlflowMock(auth="basic")
    mock.start()
    mock.default_permission = "NO_PERMISSIONS"
    mock.add_version("secret", {"weights.bin": b"secret"})
    mock.tag_model("secret", {"sensitivity": "restricted", "owner": "alice@corp.example"})
    for name in TOKENS:
        mock.add_user(name, f"{name}-mlflow-pw")
    yield mock
    mock.stop()


@pytest.fixture(scope="module")
def service_files(tmp_path_factory: pytest.TempPathFactory, service_fleet: MockFleet,
                  mlflow: MlflowMock) -> dict[str, Any]:
    """The service tests' files, with the mlflow connection and an access policy."""
    made = write_service_files(tmp_path_factory.mktemp("serve"), service_fleet)
    config = json.loads(made["config"].read_text())
    settings = mlflow.connection_settings()
    made["env"]["CG_TEST_MLFLOW_PASSWORD"] = settings.pop("password")
    config["connections"]["mlflow"] = {**settings, "password": "${env:CG_TEST_MLFLOW_PASSWORD}"}
    made["config"].write_text(json.dumps(config))
    policy = json.loads(made["policy"].read_text())
    made["policy"].write_text(json.dumps({**policy, **ACCESS_POLICY}))
    return made


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Chromium for the module (where every browser test is). Not for the session: while
    Playwright's sync API is open, its event loop counts as running in this thread, and the
    later modules' asyncio.run() would fail."""
    missing = ensure_chromium()
    if missing and os.environ.get("CI"):  # CI runs as root: the browser tests must run there
        pytest.fail(missing)
    if missing:
        pytest.skip(missing)
    with sync_api.sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


class Console:
    """One person's browser tab on the console: what they sign in as, and what went wrong."""

    def __init__(self, browser: Any, base: str, width: int = 1280, height: int = 900):
        self.context = browser.new_context(base_url=base, viewport={"width": width,
                                                                    "height": height})
        self.page = self.context.new_page()
        self.page.set_default_timeout(15000)
        self.errors: list[str] = []  # console errors: a CSP refusal, a script failure
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error"
                     else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("dialog", lambda dialog: dialog.accept())

    def sign_in(self, who: str) -> Any:
        self.page.goto("/ui/runs")
        expect(self.page).to_have_url(re.compile(r"/ui/login\?next="))
        self.page.get_by_label("API token").fill(TOKENS[who][1])
        self.page.get_by_role("button", name="Sign in").click()
        expect(self.page.locator(".who .name")).to_have_text(who)
        return self.page

    def csrf(self) -> str:
        return str(self.page.locator('input[name="csrf"]').first.get_attribute("value"))

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def console(browser: Any, served: Served) -> Iterator[Any]:
    opened: list[Console] = []

    def open_tab(**size: int) -> Console:
        tab = Console(browser, served.base, **size)
        opened.append(tab)
        return tab

    yield open_tab
    for tab in opened:
        assert tab.errors == [], tab.errors
        tab.close()


def waiting_run(served: Served, fleet: MockFleet) -> dict[str, Any]:
    event = new_event()
    event["actor"]["email"] = f"{event['id']}@example.com"
    fleet.get("okta").add_user(event["actor"]["email"])
    assert served.post_event(event).status_code == 202
    [run] = served.runs_of(event["id"])
    assert run["status"] == "waiting"
    return {**run, "actor": event["actor"]["email"]}


def node(page: Any, step: str) -> Any:
    return page.locator(f'svg.graph g.node[data-step="{step}"]')


def test_sign_in_and_see_the_runs(console: Any, served: Served,
                                  service_fleet: MockFleet) -> None:
    run = waiting_run(served, service_fleet)
    page = console().sign_in("siem-reader")
    expect(page).to_have_url(re.compile(r"/ui/runs$"))
    link = page.locator(f'a.run-link[href="/ui/runs/{run["run_id"]}"]')
    expect(link).to_be_visible()
    page.get_by_label("Status", exact=True).select_option("waiting")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"status=waiting"))
    expect(link).to_be_visible()
    link.click()
    expect(page.locator("h1")).to_contain_text(run["run_id"][:8])
    expect(page.locator(".waiting time[data-expires]")).to_have_text(re.compile(r"left$"))


def test_the_graph_changes_as_the_run_is_approved_elsewhere(console: Any, served: Served,
                                                             service_fleet: MockFleet) -> None:
    run = waiting_run(served, service_fleet)
    page = console().sign_in("siem-reader")
    page.goto(f"/ui/runs/{run['run_id']}")
    expect(node(page, "ask")).to_have_class(re.compile(r"\bst-waiting\b"))
    expect(node(page, "suspend")).to_have_class(re.compile(r"\bst-pending\b"))
    answered = served.call("POST", f"/v1/runs/{run['run_id']}/steps/ask/answer",
                           who="alice@corp.example", json_body={"decision": "approve"})
    assert answered.status_code == 200, answered.text
    # No reload by the test: the page's script polls and recolours (or reloads) by itself.
    expect(node(page, "ask")).to_have_class(re.compile(r"\bst-succeeded\b"))
    expect(node(page, "suspend")).to_have_class(re.compile(r"\bst-succeeded\b"))
    expect(page.locator("#run-status")).to_have_text("succeeded")


def test_an_approver_approves_and_the_run_goes_on(console: Any, served: Served,
                                                  service_fleet: MockFleet) -> None:
    run = waiting_run(served, service_fleet)
    page = console().sign_in("alice@corp.example")
    page.goto(f"/ui/runs/{run['run_id']}")
    expect(page.locator(".question")).to_have_text("suspend?")
    page.get_by_label("Comment").fill("contained, go ahead")
    page.get_by_role("button", name="Approve").click()
    expect(page.locator(".notice-ok")).to_contain_text("the run is now succeeded")
    expect(node(page, "suspend")).to_have_class(re.compile(r"\bst-succeeded\b"))
    expect(page.locator(".who-did")).to_contain_text("alice@corp.example approved ask")
    expect(page.locator(".who-did")).to_contain_text("contained, go ahead")
    expect(page.get_by_role("button", name="Approve")).to_have_count(0)
    shown = served.call("GET", f"/v1/runs/{run['run_id']}").json()
    assert [a["by"] for a in shown["approvals"]] == ["alice@corp.example"]


def test_a_responder_undoes_a_run(console: Any, served: Served,
                                  service_fleet: MockFleet) -> None:
    okta = service_fleet.get("okta")
    event = new_event(SLOW)
    email = event["actor"]["email"] = f"{event['id']}@example.com"
    okta.add_user(email)
    served.post_event(event)
    [run] = served.runs_of(event["id"])
    assert run["status"] == "succeeded" and okta.status_of(email) == "SUSPENDED"
    page = console().sign_in("ops-bot")
    page.goto(f"/ui/runs/{run['run_id']}")
    page.get_by_role("button", name="Undo run").click()  # the confirmation is accepted
    expect(page.locator(".notice-ok")).to_contain_text("(1 undo calls)")
    expect(page.locator("h1")).to_contain_text("undo")
    expect(node(page, "undo_suspend")).to_have_class(re.compile(r"\bst-succeeded\b"))
    expect(page.locator(".who-did")).to_contain_text("ops-bot started the run")
    assert okta.status_of(email) == "ACTIVE"


def test_a_viewer_has_no_approve_button_and_a_forged_one_is_refused(
        console: Any, served: Served, service_fleet: MockFleet) -> None:
    run = waiting_run(served, service_fleet)
    tab = console()
    page = tab.sign_in("siem-reader")
    page.goto(f"/ui/runs/{run['run_id']}")
    expect(page.locator(".waiting")).to_contain_text("needs the approver role")
    expect(page.get_by_role("button", name="Approve")).to_have_count(0)
    expect(page.get_by_role("button", name="Cancel run")).to_have_count(0)
    forged = page.request.post(f"/ui/runs/{run['run_id']}/steps/ask/answer",
                               form={"csrf": tab.csrf(), "decision": "approve"})
    assert forged.status == 403 and "needs approver or above" in forged.text()
    shown = served.call("GET", f"/v1/runs/{run['run_id']}").json()
    assert shown["status"] == "waiting" and shown["approvals"] == []


def test_a_post_without_its_csrf_token_is_refused(console: Any, served: Served,
                                                  service_fleet: MockFleet) -> None:
    run = waiting_run(served, service_fleet)
    page = console().sign_in("alice@corp.example")
    page.goto(f"/ui/runs/{run['run_id']}")
    refused = page.request.post(f"/ui/runs/{run['run_id']}/steps/ask/answer",
                                form={"decision": "approve"})
    assert refused.status == 403 and "security token" in refused.text()
    shown = served.call("GET", f"/v1/runs/{run['run_id']}").json()
    assert shown["status"] == "waiting" and shown["approvals"] == []


def test_at_phone_width_nothing_overflows_the_page(console: Any, served: Served,
                                                   service_fleet: MockFleet) -> None:
    run = waiting_run(served, service_fleet)
    page = console(width=390, height=844).sign_in("alice@corp.example")
    for path in ("/ui/runs", f"/ui/runs/{run['run_id']}", "/ui/audit", "/ui/playbooks"):
        page.goto(path)
        wide = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert wide <= 0, f"{path} is {wide}px wider than a phone"
    page.keyboard.press("Tab")  # the first stop is the skip link, and it shows its focus
    assert page.evaluate("document.activeElement.className") == "skip"


def test_reading_works_without_javascript(browser: Any, served: Served,
                                          service_fleet: MockFleet) -> None:
    run = waiting_run(served, service_fleet)
    rid = ask_access(served)
    context = browser.new_context(base_url=served.base, java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto("/ui/login")
        page.get_by_label("API token").fill(TOKENS["siem-reader"][1])
        page.get_by_role("button", name="Sign in").click()
        page.goto(f"/ui/runs/{run['run_id']}")
        expect(node(page, "ask")).to_have_class(re.compile(r"\bst-waiting\b"))
        expect(page.locator(".waiting time[data-expires]")).to_have_text(re.compile(r"left$"))
        page.goto("/ui/access")
        expect(page.locator(f'.access-request[data-request="{rid}"]')).to_contain_text(WHY)
        page.goto("/ui/intake")
        expect(page.get_by_role("heading", name="Dead letters")).to_be_visible()
        page.goto(f"/ui/runs?person={run['actor']}")
        expect(page.locator("a.run-link")).to_have_count(1)
    finally:
        context.close()


def ask_access(served: Served, who: str = "ops-bot") -> str:
    made = served.call("POST", "/v1/access-requests", who=who, json_body={
        "model": "secret", "justification": WHY, "duration_hours": 2})
    assert made.status_code == 201 and made.json()["state"] == "pending", made.text
    return str(made.json()["id"])


def access_state(served: Served, rid: str) -> str:
    return str(served.call("GET", f"/v1/access-requests/{rid}").json()["state"])


def test_an_owner_approves_an_access_request_and_a_responder_revokes_it(
        console: Any, served: Served) -> None:
    rid = ask_access(served)
    page = console().sign_in("alice@corp.example")
    page.get_by_role("link", name="Access").click()
    request = page.locator(f'.access-request[data-request="{rid}"]')
    expect(request).to_contain_text(WHY)
    expect(request).to_contain_text("alice@corp.example (or an admin)")
    request.get_by_label("Comment").fill("ok for Q3")
    request.get_by_role("button", name="Approve").click()
    expect(page.locator(".notice-ok")).to_contain_text(f"Approved access request {rid[:8]}")
    expect(page.locator(".notice-ok")).to_contain_text("it is now granted")
    row = page.locator(f'table.granted tr[data-request="{rid}"]')
    expect(row.locator("time[data-expires]")).to_have_text(re.compile(r"^1 h 59 min .*left$"))
    assert access_state(served, rid) == "granted"
    ops = console().sign_in("ops-bot")
    ops.goto("/ui/access")
    ops.locator(f'table.granted tr[data-request="{rid}"]').get_by_role(
        "button", name="Revoke").click()
    expect(ops.locator(".notice-ok")).to_contain_text("it is now revoked")
    assert access_state(served, rid) == "revoked"
    expect(ops.locator("table.ended")).to_contain_text("revoked")


def test_a_viewer_is_refused_an_approve_on_the_access_page(console: Any,
                                                           served: Served) -> None:
    rid = ask_access(served)
    tab = console()
    page = tab.sign_in("siem-reader")
    page.goto("/ui/access")
    request = page.locator(f'.access-request[data-request="{rid}"]')
    expect(request).to_contain_text("deciding needs the approver role")
    expect(request.get_by_role("button", name="Approve")).to_have_count(0)
    forged = page.request.post(f"/ui/access/{rid}/approve", form={"csrf": tab.csrf()})
    assert forged.status == 403 and "needs approver or above" in forged.text()
    assert access_state(served, rid) == "pending"


def test_an_approver_the_policy_did_not_name_is_refused_in_the_browser(
        console: Any, served: Served) -> None:
    rid = ask_access(served)
    tab = console()
    page = tab.sign_in("bob@corp.example")
    page.goto("/ui/access")
    expect(page.locator(f'.access-request[data-request="{rid}"]')).to_contain_text(
        "is not an approver of access request")
    forged = page.request.post(f"/ui/access/{rid}/approve", form={"csrf": tab.csrf()})
    assert forged.ok and "Approve refused" in forged.text()  # shown, and nothing changed
    assert access_state(served, rid) == "pending"


def test_an_access_post_without_its_csrf_token_is_refused(console: Any,
                                                          served: Served) -> None:
    rid = ask_access(served)
    page = console().sign_in("alice@corp.example")
    page.goto("/ui/access")
    refused = page.request.post(f"/ui/access/{rid}/approve", form={"comment": "sure"})
    assert refused.status == 403 and "security token" in refused.text()
    assert access_state(served, rid) == "pending"


def test_the_intake_page_shows_dead_letters_and_refusals(console: Any,
                                                         served: Served) -> None:
    with sqlite3.connect(served.journal) as db:  # as the Incydr poller sets one aside
        db.execute("INSERT INTO service_dead_letters (source, key, event_id, reason, raw, at) "
                   "VALUES ('incydr-poll', 'k-browser', 'evt-unreadable', 'not an event: "
                   "file.sha256 is missing', '{\"eventId\": \"evt-unreadable\"}', "
                   "'2026-12-02T08:00:00.000000Z')")
    assert served.post_event(new_event(), secret="wrong-secret-0123456789").status_code == 401
    page = console().sign_in("siem-reader")
    page.get_by_role("link", name="Intake").click()
    row = page.locator("table.dead-letters tr", has_text="evt-unreadable")
    expect(row).to_contain_text("file.sha256 is missing")
    row.get_by_text("The event as received").click()
    expect(row.locator("pre")).to_contain_text('"eventId": "evt-unreadable"')
    siem = page.locator("table.intake-requests tr", has_text="siem")
    expect(siem).to_contain_text("bad_signature 1")


def test_the_runs_page_filters_by_person_and_the_audit_page_by_who(
        console: Any, served: Served, service_fleet: MockFleet) -> None:
    run = waiting_run(served, service_fleet)
    other = waiting_run(served, service_fleet)
    page = console().sign_in("siem-reader")
    link = page.locator(f'a.run-link[href="/ui/runs/{run["run_id"]}"]')
    page.get_by_label("Person").fill(run["actor"].upper())  # any case
    page.get_by_role("button", name="Filter").click()
    expect(link).to_be_visible()
    expect(page.locator(f'a.run-link[href="/ui/runs/{other["run_id"]}"]')).to_have_count(0)
    expect(page.locator('.counts a[data-status="waiting"] .count')).to_have_text("1")
    served.call("POST", f"/v1/runs/{run['run_id']}/cancel", who="ops-bot",
                json_body={"reason": "a sanctioned backup"})
    page.goto("/ui/audit")
    page.get_by_label("By").fill("ops-bot")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("table.audit tbody tr").last).to_contain_text(run["run_id"][:8])
    page.get_by_label("Run").fill(other["run_id"][:8])
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_text("No entries match.")).to_be_visible()  # nobody acted on it
    page.goto(f"/ui/runs/{run['run_id']}")
    expect(page.locator(".who-did")).to_contain_text("ops-bot cancelled the run: "
                                                     "“a sanctioned backup”")


def test_an_approver_approves_with_the_keyboard_alone(console: Any, served: Served,
                                                      service_fleet: MockFleet) -> None:
    run = waiting_run(served, service_fleet)
    page = console().sign_in("alice@corp.example")
    page.goto(f"/ui/runs/{run['run_id']}")
    page.locator("body").focus()
    for _ in range(40):  # Tab along the page, as someone without a mouse does
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.tagName") == "TEXTAREA":
            break
    assert page.evaluate("document.activeElement.name") == "comment"
    page.keyboard.type("checked with HR, by keyboard")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Approve"
    focus = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert focus != "none", "the focused button shows no focus ring"
    page.keyboard.press("Enter")
    expect(page.locator(".notice-ok")).to_contain_text("the run is now succeeded")
    expect(page.locator(".who-did")).to_contain_text("checked with HR, by keyboard")


def test_at_phone_width_an_approver_approves_and_every_field_has_a_label(
        console: Any, served: Served, service_fleet: MockFleet) -> None:
    run = waiting_run(served, service_fleet)
    rid = ask_access(served)
    page = console(width=360, height=740).sign_in("alice@corp.example")
    unlabelled = """[...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
        .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
        .map(e => e.name || e.id)"""
    for path in ("/ui/runs", f"/ui/runs/{run['run_id']}", "/ui/access", "/ui/intake",
                 "/ui/audit", "/ui/playbooks"):
        page.goto(path)
        wide = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert wide <= 0, f"{path} is {wide}px wider than a phone"
        assert page.evaluate(unlabelled) == [], path
    page.goto("/ui/access")
    request = page.locator(f'.access-request[data-request="{rid}"]')
    request.get_by_role("button", name="Approve").click()
    expect(page.locator(".notice-ok")).to_contain_text("it is now granted")
    page.goto(f"/ui/runs/{run['run_id']}")
    page.get_by_role("button", name="Approve").click()
    expect(page.locator(".notice-ok")).to_contain_text("the run is now succeeded")


def test_a_session_outlives_a_restart_of_the_service(browser: Any, service_files: dict[str, Any],
                                                     tmp_path: Path) -> None:
    journal = tmp_path / "j.sqlite"
    first = start_service(service_files, journal)
    try:
        context = browser.new_context(base_url=first.base)
        page = context.new_page()
        page.goto("/ui/login")
        page.get_by_label("API token").fill(TOKENS["ops-bot"][1])
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator(".who .name")).to_have_text("ops-bot")
        cookies = context.cookies()
    finally:
        assert first.stop() == 0
    second = start_service(service_files, journal)  # a new process, maybe on a new port
    try:
        again = browser.new_context(base_url=second.base)
        port = second.base.rsplit(":", 1)[1]
        again.add_cookies([{**c, "domain": "127.0.0.1", "path": "/ui"} for c in cookies])
        page = again.new_page()
        page.goto("/ui/runs")
        expect(page).to_have_url(re.compile(rf":{port}/ui/runs$"))
        expect(page.locator(".who .name")).to_have_text("ops-bot")
        page.get_by_role("button", name="Sign out").click()
        expect(page).to_have_url(re.compile(r"/ui/login"))
        page.goto("/ui/runs")
        expect(page).to_have_url(re.compile(r"/ui/login\?next="))
        with sqlite3.connect(journal) as db:
            assert db.execute("SELECT count(*) FROM console_sessions WHERE name IS NOT NULL"
                              ).fetchone()[0] == 0
        again.close()
        context.close()
    finally:
        assert second.stop() == 0
