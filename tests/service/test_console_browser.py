"""The console in a real browser (Chromium through Playwright) against a real `crownguard
serve` with the mock vendors: sign in, runs, a run's graph changing live, approve, undo, and
the refusals (a viewer's forged approve, a POST without its CSRF token). One service and one
browser for the module; each test its own browser context (its own cookies)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

import pytest
from browsertest import ensure_chromium, launch
from servicetest import SLOW, TOKENS, Served, new_event

from crownguard.engine.scenarios import MockFleet

pytestmark = pytest.mark.browser
sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect


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
    return run


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
    context = browser.new_context(base_url=served.base, java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto("/ui/login")
        page.get_by_label("API token").fill(TOKENS["siem-reader"][1])
        page.get_by_role("button", name="Sign in").click()
        page.goto(f"/ui/runs/{run['run_id']}")
        expect(node(page, "ask")).to_have_class(re.compile(r"\bst-waiting\b"))
        expect(page.locator(".waiting time[data-expires]")).to_have_text(re.compile(r"left$"))
    finally:
        context.close()
