"""The console's HTML routes in process (FastAPI's TestClient, no browser): sign-in, sessions
and cookies, CSRF, roles, escaping, and the pages over real journaled runs."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from servicetest import TOKENS, new_event

from crownguard.engine.plugins import PluginHost
from crownguard.engine.runner import Runner
from crownguard.engine.scenarios import MockFleet
from crownguard.engine.service.app import build_app
from crownguard.engine.service.console.sessions import SessionStore
from crownguard.engine.service.console.views import graph_view, time_left, when
from crownguard.engine.service.service import Options, Service
from crownguard.engine.service.settings import Role

XSS_NAME = "<script>alert('pwned')</script>.safetensors"


@pytest.fixture(scope="module")
def service(service_files: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Service]:
    saved = dict(os.environ)
    os.environ.update(service_files["env"])  # answers read the connections file again
    try:
        started = Service.start(PluginHost.from_entry_points(), Options(
            str(service_files["config"]), str(service_files["policy"]),
            str(tmp_path_factory.mktemp("console") / "j.sqlite")))
        yield started
        started.close()
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(scope="module")
def app(service: Service) -> Any:
    return build_app(service)


@pytest.fixture(scope="module")
def okta(service_fleet: MockFleet) -> Any:
    return service_fleet.get("okta")


@pytest.fixture(scope="module")
def start_run(service: Service, okta: Any) -> Callable[..., str]:
    """Journal a run as the service's intake would start it, about an Okta user that exists."""

    def start(playbook: str = "contain-after-approval", name: str | None = None) -> str:
        event = new_event(name)
        event["actor"]["email"] = f"{event['id']}@example.com"
        okta.add_user(event["actor"]["email"])
        runner = Runner(service.host, service.config, journal=service.journal)
        record = runner.run(service.triage.router.playbooks[playbook], event, risk={
            "score": 87, "level": "high", "detection": {"format": "safetensors"},
            "reasons": [{"indicator": "departing", "weight": 30, "detail": "<b>leaving</b>"}]})
        return str(record["run_id"])

    return start


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def signed_in(app: Any, who: str) -> TestClient:
    client = TestClient(app, base_url="http://127.0.0.1")
    page = client.get("/ui/login")
    answer = client.post("/ui/login", data={"csrf": csrf_of(page.text),
                                            "token": TOKENS[who][1], "next": "/ui/runs"},
                         follow_redirects=False)
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/ui/runs"
    return client


def test_a_page_without_a_session_goes_to_sign_in_and_comes_back(app: Any) -> None:
    client = TestClient(app, base_url="http://127.0.0.1")
    answer = client.get("/ui/runs?status=waiting", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/login?next=%2Fui%2Fruns%3Fstatus%3Dwaiting"
    assert client.get("/ui/runs/0123456789/state.json").status_code == 401


def test_sign_in_sets_a_strict_httponly_cookie_without_the_token(app: Any) -> None:
    client = TestClient(app, base_url="http://127.0.0.1")
    page = client.get("/ui/login")
    first = page.cookies["crownguard_session"]
    token = TOKENS["alice@corp.example"][1]
    answer = client.post("/ui/login", data={"csrf": csrf_of(page.text), "token": token,
                                            "next": "/ui/audit"}, follow_redirects=False)
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui" in cookie
    assert "Secure" not in cookie  # plain HTTP on loopback, no proxy saying https
    assert token not in cookie and token not in answer.headers["location"]
    assert answer.headers["location"] == "/ui/audit"
    assert client.cookies["crownguard_session"] != first  # a new session id once signed in
    runs = client.get("/ui/runs")
    assert runs.status_code == 200 and "alice@corp.example" in runs.text
    assert token not in runs.text
    assert "default-src 'none'" in runs.headers["content-security-policy"]


def test_behind_a_tls_proxy_the_cookie_is_secure(app: Any) -> None:
    client = TestClient(app, base_url="http://127.0.0.1")
    page = client.get("/ui/login", headers={"X-Forwarded-Proto": "https"})
    assert "Secure" in page.headers["set-cookie"]


def test_a_wrong_token_is_refused_and_no_session_is_signed_in(app: Any) -> None:
    client = TestClient(app, base_url="http://127.0.0.1")
    page = client.get("/ui/login")
    answer = client.post("/ui/login", data={"csrf": csrf_of(page.text),
                                            "token": "not-a-token-0123456789"})
    assert answer.status_code == 401 and "not one of the service" in answer.text
    assert "not-a-token-0123456789" not in answer.text
    assert client.get("/ui/runs", follow_redirects=False).status_code == 303


def test_sign_in_without_the_forms_csrf_token_is_refused(app: Any) -> None:
    client = TestClient(app, base_url="http://127.0.0.1")
    client.get("/ui/login")
    answer = client.post("/ui/login", data={"token": TOKENS["alice@corp.example"][1]})
    assert answer.status_code == 403
    assert client.get("/ui/runs", follow_redirects=False).status_code == 303


def test_after_sign_in_next_never_leaves_the_console(app: Any) -> None:
    client = TestClient(app, base_url="http://127.0.0.1")
    page = client.get("/ui/login")
    answer = client.post("/ui/login", data={"csrf": csrf_of(page.text), "next":
                                            "//evil.example/ui/", "token":
                                            TOKENS["siem-reader"][1]}, follow_redirects=False)
    assert answer.headers["location"] == "/ui/runs"


def test_sign_out_ends_the_session(app: Any) -> None:
    client = signed_in(app, "siem-reader")
    page = client.get("/ui/runs")
    old = client.cookies["crownguard_session"]
    answer = client.post("/ui/logout", data={"csrf": csrf_of(page.text)},
                         follow_redirects=False)
    assert answer.status_code == 303
    replay = TestClient(app, base_url="http://127.0.0.1", cookies={"crownguard_session": old})
    assert replay.get("/ui/runs", follow_redirects=False).status_code == 303


def test_event_text_is_escaped(app: Any, start_run: Any) -> None:
    run_id = start_run(name=XSS_NAME)
    client = signed_in(app, "siem-reader")
    page = client.get(f"/ui/runs/{run_id}")
    assert page.status_code == 200
    assert "<script>alert" not in page.text and "<b>leaving</b>" not in page.text
    assert "&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt;.safetensors" in page.text
    assert "&lt;b&gt;leaving&lt;/b&gt;" in page.text
    assert "\\u003cscript\\u003e" in page.text  # the whole event, as JSON, escaped too


def test_the_run_page_shows_graph_wait_event_and_score(app: Any, start_run: Any) -> None:
    run_id = start_run()
    client = signed_in(app, "alice@corp.example")
    page = client.get(f"/ui/runs/{run_id[:8]}").text
    assert 'class="node st-waiting" data-step="ask"' in page
    assert 'class="node st-pending" data-step="suspend"' in page
    assert "suspend?" in page and "Who may answer: alice@corp.example" in page
    assert "left</time>" in page and 'value="approve"' in page
    assert "departing</strong> +30" in page and "safetensors" in page
    state = client.get(f"/ui/runs/{run_id}/state.json").json()
    assert state["status"] == "waiting" and state["steps"] == {"ask": "waiting",
                                                               "suspend": "pending"}


def test_an_approver_not_named_by_the_step_gets_no_answer_form(app: Any, start_run: Any) -> None:
    run_id = start_run()
    page = signed_in(app, "bob@corp.example").get(f"/ui/runs/{run_id}").text
    assert 'value="approve"' not in page and "not among those who may answer" in page


def test_approve_continues_the_run_as_the_signed_in_name(
        app: Any, service: Service, start_run: Any) -> None:
    run_id = start_run()
    client = signed_in(app, "alice@corp.example")
    page = client.get(f"/ui/runs/{run_id}")
    answer = client.post(f"/ui/runs/{run_id}/steps/ask/answer", data={
        "csrf": csrf_of(page.text), "decision": "approve", "comment": "go"})
    assert answer.status_code == 200 and "the run is now succeeded" in answer.text
    assert 'class="node st-succeeded" data-step="suspend"' in answer.text
    [approval] = service.journal.approvals(run_id)
    assert approval.by == "alice@corp.example" and approval.accepted
    assert "<strong>alice@corp.example</strong>" in answer.text


def test_an_answer_from_someone_the_step_does_not_name_is_shown_refused(
        app: Any, service: Service, start_run: Any) -> None:
    run_id = start_run()
    client = signed_in(app, "bob@corp.example")
    page = client.get(f"/ui/runs/{run_id}")  # no form for bob; he posts one anyway
    answer = client.post(f"/ui/runs/{run_id}/steps/ask/answer", data={
        "csrf": csrf_of(page.text), "decision": "approve", "comment": "me too"})
    assert "Refused and recorded" in answer.text
    assert re.search(r'<li class="refused">.*bob@corp.example</strong>\s*<span class="badge '
                     r'st-failed">refused</span> approve of ask', answer.text, re.S)
    [refused] = service.journal.approvals(run_id)
    assert refused.by == "bob@corp.example" and not refused.accepted
    assert service.journal.get_run(run_id).status == "waiting"


def test_a_reject_is_recorded_as_the_signed_in_name(app: Any, service: Service,
                                                    start_run: Any) -> None:
    run_id = start_run()
    client = signed_in(app, "alice@corp.example")
    page = client.get(f"/ui/runs/{run_id}")
    answer = client.post(f"/ui/runs/{run_id}/steps/ask/answer", data={
        "csrf": csrf_of(page.text), "decision": "reject", "comment": "not without HR"})
    assert "Rejected &#39;ask&#39;" in answer.text
    assert re.search(r"alice@corp.example</strong>\s*rejected ask: “not without HR”", answer.text)
    [approval] = service.journal.approvals(run_id)
    assert approval.decision == "reject" and approval.by == "alice@corp.example"


def test_a_responder_undoes_an_approved_run(
        app: Any, service: Service, start_run: Any, okta: Any) -> None:
    run_id = start_run()
    email = service.journal.get_run(run_id).inputs["event"]["actor"]["email"]
    approver = signed_in(app, "alice@corp.example")
    page = approver.get(f"/ui/runs/{run_id}")
    approver.post(f"/ui/runs/{run_id}/steps/ask/answer",
                  data={"csrf": csrf_of(page.text), "decision": "approve"})
    assert okta.status_of(email) == "SUSPENDED"
    client = signed_in(app, "ops-bot")
    page = client.get(f"/ui/runs/{run_id}")
    changes = page.text[page.text.index('id="h-changes"'):page.text.index('id="h-controls"')]
    assert "<code>okta.suspend_user</code>" in changes and "<td>yes</td>" in changes
    assert f"<code>okta.unsuspend_user</code> <span class=\"hint\">user={email}" in changes
    undone = client.post(f"/ui/runs/{run_id}/undo", data={"csrf": csrf_of(page.text)})
    assert undone.status_code == 200 and "(1 undo calls)" in undone.text
    assert f"undo of <a href=\"/ui/runs/{run_id}\"" in undone.text
    assert 'class="node st-succeeded" data-step="undo_suspend"' in undone.text
    assert okta.status_of(email) == "ACTIVE"
    original = client.get(f"/ui/runs/{run_id}").text
    who = original[original.index('id="h-who"'):original.index('id="h-event"')]
    assert "Undone by" in original and "was started by <strong>ops-bot</strong>" in who
    assert "<strong>ops-bot</strong> cancelled the run" not in who  # it had ended: no cancel


def test_a_post_without_the_csrf_token_is_refused(
        app: Any, service: Service, start_run: Any) -> None:
    run_id = start_run()
    client = signed_in(app, "alice@corp.example")
    answer = client.post(f"/ui/runs/{run_id}/steps/ask/answer", data={"decision": "approve"})
    assert answer.status_code == 403 and "security token" in answer.text
    wrong = client.post(f"/ui/runs/{run_id}/cancel", data={"csrf": "x" * 43})
    assert wrong.status_code == 403
    assert service.journal.approvals(run_id) == []
    assert service.journal.get_run(run_id).status == "waiting"


def test_a_viewer_gets_no_controls_and_a_forged_post_is_refused(
        app: Any, service: Service, start_run: Any) -> None:
    run_id = start_run()
    client = signed_in(app, "siem-reader")
    page = client.get(f"/ui/runs/{run_id}")
    assert 'value="approve"' not in page.text and "Cancel run" not in page.text
    assert "needs the approver role" in page.text
    forged = client.post(f"/ui/runs/{run_id}/steps/ask/answer",
                         data={"csrf": csrf_of(page.text), "decision": "approve"})
    assert forged.status_code == 403 and "needs approver or above" in forged.text
    assert client.post(f"/ui/runs/{run_id}/cancel",
                       data={"csrf": csrf_of(page.text)}).status_code == 403
    assert service.journal.approvals(run_id) == []


def test_a_responder_cancels_then_reruns(app: Any, start_run: Any) -> None:
    run_id = start_run()
    client = signed_in(app, "ops-bot")
    page = client.get(f"/ui/runs/{run_id}")
    assert "Cancel run" in page.text and 'value="approve"' not in page.text
    done = client.post(f"/ui/runs/{run_id}/cancel", data={"csrf": csrf_of(page.text),
                                                          "reason": "false positive"})
    assert "Cancelled the run." in done.text and "<strong>ops-bot</strong> cancelled" in done.text
    assert "cancelled the run: “false positive”" in done.text
    again = client.post(f"/ui/runs/{run_id}/rerun", data={"csrf": csrf_of(done.text)})
    assert "Started rerun" in again.text and f"rerun of <a href=\"/ui/runs/{run_id}\"" in again.text
    rerun_of = client.get(f"/ui/runs/{run_id}").text
    assert "Run again as <a href=\"/ui/runs/" in rerun_of
    ended = client.post(f"/ui/runs/{run_id}/cancel", data={"csrf": csrf_of(done.text)})
    assert ended.status_code == 200 and "Cancel: run" in ended.text  # refused, shown


def test_the_runs_page_filters_counts_and_pages(app: Any, start_run: Any) -> None:
    for _ in range(3):
        start_run("short-wait")
    client = signed_in(app, "siem-reader")
    page = client.get("/ui/runs?status=waiting&playbook=short-wait").text
    assert re.search(r'st-waiting" data-status="waiting" href="[^"]+" aria-current="true">'
                     r'waiting <span class="count">(\d+)', page)
    assert "contain-after-approval</td>" not in page
    listed = page.count('class="run-link"')
    assert listed >= 3 and page.count('data-expires="20') >= 3
    assert client.get("/ui/runs?status=bogus").status_code == 400


def test_the_runs_page_filters_by_person_and_time(app: Any, service: Service,
                                                  start_run: Any) -> None:
    mine, other = start_run("short-wait"), start_run("short-wait")
    actor = service.journal.get_run(mine).inputs["event"]["actor"]["email"]
    client = signed_in(app, "siem-reader")

    def listed(query: str) -> list[str]:
        page = client.get(f"/ui/runs?{query}")
        assert page.status_code == 200, page.text
        return re.findall(r'class="run-link" href="/ui/runs/([0-9a-f]+)"', page.text)

    assert listed(f"person={actor.upper()}") == [mine]
    count = client.get(f"/ui/runs?person={actor}").text
    assert re.search(r'data-status="waiting" href="[^"]+"[^>]*>waiting <span class="count">1<',
                     count)
    made = service.journal.get_run(other).created_at
    assert listed(f"playbook=short-wait&since={made}")[-1] == other
    assert mine not in listed(f"since={made}")
    assert other not in listed(f"until={made}") and mine in listed(f"until={made}")
    assert listed("since=2999-01-01") == []
    assert listed("until=2000-01-01T00:00") == []
    bad = client.get("/ui/runs?since=yesterday")
    assert bad.status_code == 400 and "from: not a date or time" in bad.text


def test_the_runs_page_finds_who_answered_or_cancelled(app: Any, start_run: Any) -> None:
    answered, cancelled = start_run(), start_run()
    alice = signed_in(app, "alice@corp.example")
    page = alice.get(f"/ui/runs/{answered}").text
    alice.post(f"/ui/runs/{answered}/steps/ask/answer", data={"csrf": csrf_of(page),
                                                             "decision": "approve"})
    ops = signed_in(app, "ops-bot")
    page = ops.get(f"/ui/runs/{cancelled}").text
    ops.post(f"/ui/runs/{cancelled}/cancel", data={"csrf": csrf_of(page)})
    found = ops.get("/ui/runs?person=alice@corp.example").text
    assert answered in found and cancelled not in found
    found = ops.get("/ui/runs?person=ops-bot").text
    assert cancelled in found and answered not in found


def test_the_runs_page_pages_newest_first(app: Any, start_run: Any,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from crownguard.engine.service.console import routes
    made = [start_run("short-wait") for _ in range(3)]
    monkeypatch.setattr(routes, "PAGE", 2)
    client = signed_in(app, "siem-reader")
    first = client.get("/ui/runs?playbook=short-wait").text
    shown = re.findall(r'class="run-link" href="/ui/runs/([0-9a-f]+)"', first)
    assert shown == made[::-1][:2]
    older = re.search(r'rel="next" href="([^"]+)"', first)
    assert older, first
    second = client.get(older.group(1).replace("&amp;", "&")).text
    following = re.findall(r'class="run-link" href="/ui/runs/([0-9a-f]+)"', second)
    assert following[0] == made[0] and not set(following) & set(shown)
    assert ">Newest</a>" in second


def test_the_audit_page_filters_and_verifies(app: Any, start_run: Any) -> None:
    run_id = start_run()
    client = signed_in(app, "siem-reader")
    page = client.get(f"/ui/audit?run={run_id[:8]}&kind=event").text
    assert "step_waiting" in page and "run_created" not in page
    assert "Intact" not in page
    checked = client.get("/ui/audit?verify=1").text
    assert "Intact: no entry edited" in checked
    assert client.get("/ui/audit?since_seq=x").status_code == 400


def test_the_audit_page_filters_by_who_and_time(app: Any, service: Service,
                                                start_run: Any) -> None:
    run_id = start_run()
    client = signed_in(app, "alice@corp.example")
    page = client.get(f"/ui/runs/{run_id}").text
    client.post(f"/ui/runs/{run_id}/steps/ask/answer", data={"csrf": csrf_of(page),
                                                            "decision": "approve"})
    shown = client.get(f"/ui/audit?run={run_id}&by=ALICE@corp.example").text
    types = re.findall(r"<td>(?:run|event|approval|status)</td><td>([a-z_]+)</td>", shown)
    assert types and "step_waiting" not in types and "approval" in "".join(types)
    created = service.journal.get_run(run_id).created_at
    assert "run_created" not in client.get(f"/ui/audit?run={run_id}&since=2999-01-01").text
    before = client.get(f"/ui/audit?run={run_id}&until={created}").text
    assert "No entries match." in before
    assert client.get("/ui/audit?until=soon").status_code == 400


def test_the_audit_page_shows_where_the_chain_breaks(service: Service, tmp_path: Any,
                                                     okta: Any) -> None:
    import sqlite3

    from crownguard.engine.journal import SQLiteJournal
    from crownguard.engine.service.console.audit import AuditFilter, audit_page
    from crownguard.engine.service.console.pages import environment
    from crownguard.engine.service.settings import Role
    journal = SQLiteJournal(tmp_path / "j.sqlite")
    event = new_event()
    okta.add_user(event["actor"]["email"])
    Runner(service.host, service.config, journal=journal).run(
        service.triage.router.playbooks["contain-after-approval"], event, risk={"score": 1})
    journal.close()
    with sqlite3.connect(tmp_path / "j.sqlite") as db:
        db.execute("UPDATE entries SET payload = replace(payload, 'suspend?', 'nothing?') "
                   "WHERE type = 'step_waiting'")
        [seq] = db.execute("SELECT seq FROM entries WHERE type = 'step_waiting'").fetchone()
    journal = SQLiteJournal(tmp_path / "j.sqlite")
    try:
        data = audit_page(journal, AuditFilter(), "0", True)
        assert data["problems"] and data["problems"][0]["seq"] == seq
        assert seq in data["broken"]
        page = environment().get_template("audit.html").render(
            session=None, notices=[], path="/ui/audit", Role=Role, **data)
        assert f"it first breaks at entry {seq}" in page
        assert f'<tr id="entry-{seq}" class="broken">' in page
        assert f'#entry-{seq}">entry {seq}</a>' in page
    finally:
        journal.close()


def test_the_playbooks_page_shows_triggers_and_graphs(app: Any) -> None:
    page = signed_in(app, "siem-reader").get("/ui/playbooks").text
    assert "contain-after-approval" in page and "event.file.is_model" in page
    assert 'data-step="suspend"' in page


def test_the_playbooks_page_lists_the_scenarios_that_test_each(
        app: Any, service_files: dict[str, Any]) -> None:
    folder = service_files["policy"].parent / "scenarios"
    folder.mkdir(exist_ok=True)
    (folder / "routed.scenario.yaml").write_text(
        "name: approval routes here\ndescription: the SOC is asked first\nevent: {}\n"
        "expect: {status: waiting, playbooks: [contain-after-approval]}\n")
    (folder / "named.scenario.yaml").write_text(
        "name: suspends at once\nplaybook: ../suspend-now.yaml\nevent: {}\n"
        "expect: {status: succeeded}\n")
    (folder / "broken.scenario.yaml").write_text("name: [unclosed\n")
    page = signed_in(app, "siem-reader").get("/ui/playbooks").text
    sections = {m.group(1): m.group(2) for m in re.finditer(
        r'<h2 id="pb-\d+">([a-z-]+)</h2>(.*?)</section>', page, re.S)}
    assert "approval routes here" in sections["contain-after-approval"]
    assert "expects waiting" in sections["contain-after-approval"]
    assert "the SOC is asked first" in sections["contain-after-approval"]
    assert "suspends at once" in sections["suspend-now"]
    assert "suspends at once" not in sections["contain-after-approval"]
    assert "No scenario beside its file names it" in sections["short-wait"]
    assert "broken.scenario.yaml" in page and "do not load" in page


def test_an_unknown_run_is_a_404_page(app: Any) -> None:
    page = signed_in(app, "siem-reader").get("/ui/runs/0123456789abcdef")
    assert page.status_code == 404 and "No such run" in page.text


def test_static_files_are_served_from_the_package(app: Any) -> None:
    client = TestClient(app, base_url="http://127.0.0.1")
    assert "watchRun" in client.get("/ui/static/console.js").text
    assert client.get("/ui/static/console.css").status_code == 200


def test_graph_view_places_needs_left_of_their_dependants(service: Service) -> None:
    playbook = service.triage.router.playbooks["contain-after-approval"]
    view = graph_view(playbook, {"ask": "succeeded"})
    spots = {n.id: (n.x, n.status) for n in view.nodes}
    assert spots["ask"][0] < spots["suspend"][0]
    assert spots["ask"][1] == "succeeded" and spots["suspend"][1] == "pending"
    assert len(view.edges) == 1


def test_time_left_reads_like_a_person_would_say_it() -> None:
    from datetime import UTC, datetime
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert time_left("2026-01-01T00:04:12Z", now) == "4 min 12 s left"
    assert time_left("2026-01-01T02:30:00Z", now) == "2 h 30 min left"
    assert time_left("2025-12-31T23:00:00Z", now) == "expired"
    assert time_left(None, now) == ""
    assert when("2026-12-02T05:58:09.742565Z") == "2026-12-02 05:58:09 UTC"
    assert when("not a time") == "not a time" and when(None) == ""


def test_a_flood_of_sign_in_pages_signs_nobody_out(app: Any) -> None:
    client = signed_in(app, "siem-reader")
    store = app.state.console.sessions
    saved, store._limit = store._limit, 5
    try:
        for _ in range(20):
            assert TestClient(app, base_url="http://127.0.0.1").get("/ui/login"
                                                                     ).status_code == 200
        assert store.count(signed_in=False) <= 5
        assert client.get("/ui/runs", follow_redirects=False).status_code == 200
    finally:
        store._limit = saved


def test_the_session_store_forgets_idle_and_excess_sessions(tmp_path: Any) -> None:
    store = SessionStore(tmp_path / "j.sqlite", idle_seconds=-1.0, limit=3)
    gone = store.new("a", Role.VIEWER)
    assert store.get(gone.id) is None
    store = SessionStore(tmp_path / "j.sqlite", max_age=-1.0)
    assert store.get(store.new("a", Role.VIEWER).id) is None
    store = SessionStore(tmp_path / "j.sqlite", limit=3)
    first = [store.new(f"p{n}", Role.VIEWER) for n in range(3)]
    store.new("p3", Role.VIEWER)
    assert store.get(first[0].id) is None and store.count(signed_in=True) == 3
    assert store.get(first[2].id) is not None


def test_sessions_are_stored_hashed_and_shared_through_the_journal(tmp_path: Any) -> None:
    one, other = SessionStore(tmp_path / "j.sqlite"), SessionStore(tmp_path / "j.sqlite")
    session = one.new("alice@corp.example", Role.APPROVER)
    session.notice("ok", "Approved 'ask'")
    seen = other.get(session.id)  # another process on the same journal
    assert seen is not None and (seen.name, seen.role) == ("alice@corp.example", Role.APPROVER)
    assert seen.csrf == session.csrf and seen.take_notices() == [("ok", "Approved 'ask'")]
    assert session.take_notices() == []  # shown once, wherever
    import sqlite3
    stored = sqlite3.connect(tmp_path / "j.sqlite").execute(
        "SELECT id_sha256 FROM console_sessions").fetchall()
    assert stored and all(session.id not in row[0] for row in stored)
    other.drop(session.id)
    assert one.get(session.id) is None


def test_a_session_outlives_a_restart_and_sign_out_deletes_it(
        service_files: dict[str, Any], tmp_path: Any) -> None:
    saved = dict(os.environ)
    os.environ.update(service_files["env"])
    journal = str(tmp_path / "j.sqlite")

    def started() -> Service:
        return Service.start(PluginHost.from_entry_points(), Options(
            str(service_files["config"]), str(service_files["policy"]), journal))

    try:
        first = started()
        client = signed_in(build_app(first), "ops-bot")
        cookie = str(client.cookies.get("crownguard_session"))
        first.close()
        second = started()  # a restart: a new process's app on the same journal
        try:
            again = TestClient(build_app(second), base_url="http://127.0.0.1")
            again.cookies.set("crownguard_session", cookie, path="/ui")
            page = again.get("/ui/runs", follow_redirects=False)
            assert page.status_code == 200 and "ops-bot" in page.text
            out = again.post("/ui/logout", data={"csrf": csrf_of(page.text)},
                             follow_redirects=False)
            assert out.status_code == 303
            later = TestClient(build_app(second), base_url="http://127.0.0.1")
            later.cookies.set("crownguard_session", cookie, path="/ui")
            assert later.get("/ui/runs", follow_redirects=False).status_code == 303
        finally:
            second.close()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_templates_are_sandboxed_escaped_and_never_marked_safe() -> None:
    from pathlib import Path

    from jinja2.sandbox import SandboxedEnvironment

    from crownguard.engine.service.console.pages import HERE, environment
    env = environment()
    assert isinstance(env, SandboxedEnvironment)
    assert env.from_string("{{ x }}").render(x="<i>") == "&lt;i&gt;"
    for template in Path(HERE, "templates").glob("*.html"):
        text = template.read_text()
        assert callable(env.autoescape) and env.autoescape(template.name) is True
        assert "|safe" not in text.replace(" ", "") and "autoescape false" not in text, template
