"""The console's intake and access-request pages in process (FastAPI's TestClient): dead
letters with their reasons and the intake's counts; pending requests decided by the desk's
own approver checks, grants with their time left, revoke."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from servicetest import TOKENS
from test_console import csrf_of, signed_in

from crownguard.engine.plugins import PluginHost
from crownguard.engine.service.access_store import (
    AccessState,
    AccessStore,
    Change,
    NewRequest,
    format_time,
)
from crownguard.engine.service.app import build_app
from crownguard.engine.service.intake import DeadLetter
from crownguard.engine.service.service import Options, Service

WHY = "retraining the fraud model on the Q3 data"


@pytest.fixture(scope="module")
def service(service_files: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Service]:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in service_files["env"].items():
            patch.setenv(name, value)
        started = Service.start(PluginHost.from_entry_points(), Options(
            str(service_files["config"]), str(service_files["policy"]),
            str(tmp_path_factory.mktemp("desk") / "j.sqlite")))
        yield started
        started.close()


@pytest.fixture(scope="module")
def app(service: Service) -> Any:
    return build_app(service)


@pytest.fixture(scope="module")
def store(service: Service) -> Iterator[AccessStore]:
    made = AccessStore(service.journal)
    yield made
    made.close()


def pending(store: AccessStore, requester: str = "bob@corp.example",
            approvers: list[str] | None = None, model: str = "fraud") -> str:
    made = store.create(NewRequest(requester, model, "read", WHY, 3600), decision={
        "outcome": "ask", "reason": "an approval needed: risk 40 (medium)",
        "risk": {"score": 40, "reasons": [{"indicator": "model_sensitivity", "weight": 40,
                                           "detail": "the model is tagged <b>restricted</b>"}]},
        "approvals_required": 1, "approvers": approvers or []})
    return made.id


def granted(store: AccessStore, requester: str = "siem-reader", minutes: int = 90) -> str:
    rid = pending(store, requester)
    store.change(rid, Change.APPROVED, "alice@corp.example", decided_by="alice@corp.example",
                 decided_at=format_time(datetime.now(UTC)))
    now = datetime.now(UTC)
    store.change(rid, Change.GRANTED, "crownguard", granted_at=format_time(now),
                 expires_at=format_time(now + timedelta(minutes=minutes)),
                 grant_info={"permission": "READ", "pre_existing": "READ"})
    return rid


def section(page: str, request_id: str) -> str:
    start = page.index(f'data-request="{request_id}"')
    return page[start:start + 4000]


def test_the_intake_page_shows_dead_letters_with_reasons_and_counts(
        app: Any, service: Service) -> None:
    service.store.add("incydr-poll", [], dead=[DeadLetter(
        "k-1", "evt-broken-1", "not an event: file.sha256 is missing",
        {"eventId": "evt-broken-1", "note": "<script>x</script>"})])
    client = signed_in(app, "siem-reader")
    page = client.get("/ui/intake").text
    assert "evt-broken-1" in page and "file.sha256 is missing" in page
    assert "\\u003cscript\\u003ex" in page and "<script>x" not in page
    assert "incydr-poll: 1" in page
    assert 'aria-current="page">Intake' in page.replace("\n", "")
    bad = client.get("/ui/intake?after=x")
    assert bad.status_code == 400 and "after must be a whole number" in bad.text


def test_the_intake_page_counts_accepted_and_refused_requests(app: Any,
                                                              service: Service) -> None:
    service.metrics.events_accepted.labels("siem", "false").inc(3)
    service.metrics.events_accepted.labels("siem", "true").inc()
    service.metrics.events_refused.labels("siem", "bad_signature").inc(2)
    page = signed_in(app, "siem-reader").get("/ui/intake").text
    row = page[page.index('<th scope="row">siem</th>'):][:400]
    assert "<td>3</td><td>1</td>" in row and "bad_signature 2" in row


def test_an_approver_approves_a_pending_request_as_the_signed_in_name(
        app: Any, store: AccessStore) -> None:
    rid = pending(store)
    client = signed_in(app, "alice@corp.example")
    page = client.get("/ui/access").text
    shown = section(page, rid)
    assert WHY in shown and "bob@corp.example" in shown and "Approve" in shown
    assert "tagged &lt;b&gt;restricted&lt;/b&gt;" in shown
    done = client.post(f"/ui/access/{rid}/approve", data={"csrf": csrf_of(page),
                                                          "comment": "ok for Q3"})
    assert done.status_code == 200 and f"Approved access request {rid[:8]}" in done.text
    after = store.get(rid)
    assert after.state == AccessState.APPROVED  # no registry here: granted later by the timer
    assert after.approvals[0]["by"] == "alice@corp.example"


def test_the_requester_cannot_approve_their_own_request(app: Any, store: AccessStore) -> None:
    rid = pending(store, requester="alice@corp.example")
    client = signed_in(app, "alice@corp.example")
    page = client.get("/ui/access").text
    assert "it is your own request" in section(page, rid)
    forged = client.post(f"/ui/access/{rid}/approve", data={"csrf": csrf_of(page)})
    assert "cannot approve their own access request" in forged.text
    assert store.get(rid).state == AccessState.PENDING


def test_an_approver_the_policy_did_not_name_is_refused(app: Any, store: AccessStore) -> None:
    rid = pending(store, requester="ops-bot", approvers=["alice@corp.example"])
    client = signed_in(app, "bob@corp.example")
    page = client.get("/ui/access").text
    assert "is not an approver of access request" in section(page, rid)
    forged = client.post(f"/ui/access/{rid}/deny", data={"csrf": csrf_of(page)})
    assert "Deny refused" in forged.text and store.get(rid).state == AccessState.PENDING


def test_a_viewer_gets_no_buttons_and_a_forged_approve_is_refused(
        app: Any, store: AccessStore) -> None:
    rid = pending(store)
    client = signed_in(app, "siem-reader")
    page = client.get("/ui/access").text
    assert "deciding needs the approver role" in section(page, rid)
    forged = client.post(f"/ui/access/{rid}/approve", data={"csrf": csrf_of(page)})
    assert forged.status_code == 403 and "needs approver or above" in forged.text
    unsigned = client.post(f"/ui/access/{rid}/approve", data={})
    assert unsigned.status_code == 403 and "security token" in unsigned.text
    assert store.get(rid).state == AccessState.PENDING


def test_a_grant_shows_its_time_left_and_a_responder_revokes_it(
        app: Any, store: AccessStore) -> None:
    rid = granted(store, requester="bob@corp.example", minutes=90)
    viewer = signed_in(app, "siem-reader")  # a viewer, not the requester: no revoke
    assert "the requester or a responder" in section(viewer.get("/ui/access").text, rid)
    client = signed_in(app, "ops-bot")
    page = client.get("/ui/access").text
    row = section(page, rid)
    assert "1 h 29 min left" in row or "1 h 30 min left" in row
    done = client.post(f"/ui/access/{rid}/revoke", data={"csrf": csrf_of(page),
                                                         "comment": "project over"})
    assert f"Revoked access request {rid[:8]}" in done.text
    assert store.get(rid).state == AccessState.REVOKED
    assert store.get(rid).revoked_by == "ops-bot"


def test_the_requester_revokes_their_own_grant(app: Any, store: AccessStore) -> None:
    rid = granted(store, requester="siem-reader")
    client = signed_in(app, "siem-reader")
    page = client.get("/ui/access").text
    client.post(f"/ui/access/{rid}/revoke", data={"csrf": csrf_of(page)})
    assert store.get(rid).state == AccessState.REVOKED


def test_desk_pages_need_a_session(app: Any) -> None:
    client = TestClient(app, base_url="http://127.0.0.1")
    for path in ("/ui/intake", "/ui/access"):
        assert client.get(path, follow_redirects=False).status_code == 303
    assert TOKENS  # the tokens the other module's fixtures sign in with
