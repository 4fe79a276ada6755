"""The okta plugin against its stateful mock: every action, idempotent repeats, each error
class Okta has, paging and its rate-limit reset (the faults every vendor shares are in
test_conformance.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from werkzeug import Request

from crownguard.engine import (
    ActionContext,
    AuthError,
    ConflictError,
    NotFoundError,
    route,
)
from crownguard.plugins import okta as okta_plugin
from crownguard.plugins.okta.client import rate_limit_wait
from crownguard.plugins.okta.mock import API_TOKEN, READ_ONLY, OktaMock
from crownguard.plugins.okta.mock.search import InvalidSearch, compile_search

ALICE = "alice.chen@acme.example"


@pytest.fixture
def okta(mock_server: Callable[..., Any]) -> OktaMock:
    return mock_server(OktaMock)


@pytest.fixture
def host(isolated_host: Callable[..., Any]) -> Any:
    return isolated_host(okta_plugin, name="okta")


@pytest.fixture
def connect(host: Any, mock_config: Callable[..., Any]) -> Callable[..., Any]:
    def make(mock: OktaMock, **overrides: Any) -> Any:
        return mock_config("okta", mock, host=host, **overrides)

    return make


@pytest.fixture
def act(host: Any, okta: OktaMock, connect: Callable[..., Any],
        call_action: Callable[..., Any]) -> Callable[..., Any]:
    """Call one action directly (schemas checked), as the runner would."""
    config = connect(okta)

    def call(name: str, **inputs: Any) -> Any:
        return call_action(name, inputs, config, host=host, run_id="r1", step_id="s1",
                           idempotency_key="k" * 32)

    return call


# registration ------------------------------------------------------------------------------------


def test_plugin_registers_actions_connection_and_mock(host: Any) -> None:
    names = {n for n in host.actions if n.startswith("okta.")}
    assert names == {"okta.get_user", "okta.suspend_user", "okta.unsuspend_user",
                     "okta.clear_sessions", "okta.remove_from_group", "okta.add_to_group"}
    assert host.connection_types["okta"].secrets == ("token", "private_key")
    assert host.mock_servers["okta"].factory is OktaMock
    for name in names:
        action = host.action(name)
        assert action.input_schema["additionalProperties"] is False
        assert action.retry is not None and action.retry.max_attempts == 3
        assert action.summary and len(action.description.strip().split("\n\n")) >= 2
        if action.side_effect:
            assert "changed" in action.output_schema["required"]
        if action.undo:
            assert action.undo in host.actions
    assert host.action("okta.suspend_user").undo == "okta.unsuspend_user"
    assert host.action("okta.get_user").side_effect is False


# look-ups ----------------------------------------------------------------------------------------


def test_get_user_by_login_id_shortname_and_email(okta: OktaMock, act: Callable[..., Any]) -> None:
    by_login = act("okta.get_user", user=ALICE)
    assert by_login["status"] == "ACTIVE" and by_login["first_name"] == "Alice"
    assert act("okta.get_user", user=by_login["id"])["login"] == ALICE
    assert act("okta.get_user", user="alice.chen")["id"] == by_login["id"]
    other = okta.add_user("e.lee", email="erin.lee@acme.example", first_name="Erin")
    found = act("okta.get_user", user="erin.lee@acme.example")
    assert found["id"] == other and found["login"] == "e.lee"
    search = okta.calls_to("GET", "/api/v1/users")[-1]
    assert search.arg("search") == 'profile.email eq "erin.lee@acme.example"'


def test_email_search_follows_link_pages_and_prefers_the_live_account(
        okta: OktaMock, act: Callable[..., Any]) -> None:
    okta.page_size = 1
    old = okta.add_user("old.frank", email="frank@acme.example", status="DEPROVISIONED")
    new = okta.add_user("frank.new", email="frank@acme.example")
    okta.add_user("noise", email="someone@acme.example")
    assert act("okta.get_user", user="frank@acme.example")["id"] == new
    pages = okta.calls_to("GET", "/api/v1/users")
    assert len(pages) == 2 and pages[1].arg("after") == min(old, new)
    assert pages[1].arg("search") == 'profile.email eq "frank@acme.example"'


def test_two_live_accounts_with_one_email_is_a_clear_conflict(
        okta: OktaMock, act: Callable[..., Any]) -> None:
    first = okta.add_user("g1", email="gina@acme.example")
    second = okta.add_user("g2", email="gina@acme.example")
    with pytest.raises(ConflictError) as caught:
        act("okta.get_user", user="gina@acme.example")
    assert first in str(caught.value) and second in str(caught.value)
    assert "give the user's id or login" in str(caught.value)


def test_unknown_user_is_not_found_with_vendor_operation_status(act: Callable[..., Any]) -> None:
    with pytest.raises(NotFoundError) as caught:
        act("okta.suspend_user", user="nobody@acme.example")
    error = caught.value
    assert (error.vendor, error.operation, error.status) == ("okta", "suspend user", 404)
    assert "nobody@acme.example" in str(error)
    with pytest.raises(NotFoundError) as by_id:
        act("okta.get_user", user="00uDoesNotExist000000")
    assert by_id.value.status == 404 and "00uDoesNotExist000000" in str(by_id.value)


# lifecycle ---------------------------------------------------------------------------------------


def test_suspend_then_repeat_is_idempotent(okta: OktaMock, act: Callable[..., Any]) -> None:
    first = act("okta.suspend_user", user=ALICE)
    assert first["changed"] is True
    assert (first["status"], first["previous_status"]) == ("SUSPENDED", "ACTIVE")
    assert okta.status_of(ALICE) == "SUSPENDED"
    again = act("okta.suspend_user", user=ALICE)
    assert again["changed"] is False and again["status"] == "SUSPENDED"
    assert len(okta.calls_to("POST", "/api/v1/users/{id}/lifecycle/suspend")) == 1


def test_suspend_leaves_deprovisioned_users_alone(okta: OktaMock, act: Callable[..., Any]) -> None:
    okta.add_user("gone@acme.example", status="DEPROVISIONED")
    result = act("okta.suspend_user", user="gone@acme.example")
    assert result == {"user_id": okta.user_id("gone@acme.example"), "login": "gone@acme.example",
                      "status": "DEPROVISIONED", "previous_status": "DEPROVISIONED",
                      "changed": False}
    assert okta.calls_to("POST", "/api/v1/users/{id}/lifecycle/suspend") == []


def test_suspend_of_a_staged_user_reports_oktas_refusal(
        okta: OktaMock, act: Callable[..., Any]) -> None:
    okta.add_user("new.hire@acme.example", status="STAGED")
    with pytest.raises(ConflictError) as caught:
        act("okta.suspend_user", user="new.hire@acme.example")
    message = str(caught.value)
    assert "okta suspend user (HTTP 400)" in message and "E0000001" in message
    assert "the user is STAGED" in message and "only ACTIVE" in message
    assert okta.status_of("new.hire@acme.example") == "STAGED"


class RacingOkta(OktaMock):
    """Another admin suspends the user between our read and our suspend."""

    @route("GET", "/api/v1/users/{user_id}")
    def get_user(self, request: Request, user_id: str) -> Any:
        answer = super().get_user(request, user_id=user_id)
        if isinstance(answer, dict) and len(self.calls_to("GET", "/api/v1/users/{id}")) == 1:
            self.users[answer["id"]]["status"] = "SUSPENDED"
        return answer


def test_suspend_that_lost_a_race_reports_unchanged(
        mock_server: Callable[..., Any], connect: Callable[..., Any], host: Any) -> None:
    racing = mock_server(RacingOkta)
    ctx = ActionContext(run_id="r", step_id="s", attempt=2, idempotency_key="k",
                        connections=connect(racing).connections)
    result = host.action("okta.suspend_user").func(ctx, {"user": ALICE})
    assert result["changed"] is False and result["status"] == "SUSPENDED"
    assert len(racing.calls_to("POST", "/api/v1/users/{id}/lifecycle/suspend")) == 1


def test_unsuspend_round_trip_and_repeat(okta: OktaMock, act: Callable[..., Any]) -> None:
    act("okta.suspend_user", user=ALICE)
    back = act("okta.unsuspend_user", user=ALICE)
    assert back["changed"] is True and back["status"] == "ACTIVE"
    assert okta.status_of(ALICE) == "ACTIVE"
    again = act("okta.unsuspend_user", user=ALICE)
    assert again["changed"] is False and again["status"] == "ACTIVE"
    assert len(okta.calls_to("POST", "/api/v1/users/{id}/lifecycle/unsuspend")) == 1


# sessions ----------------------------------------------------------------------------------------


def test_clear_sessions_revokes_sessions_tokens_and_devices(
        okta: OktaMock, act: Callable[..., Any]) -> None:
    alice = okta.user_id(ALICE)
    assert okta.sessions[alice] and okta.oauth_tokens[alice]
    result = act("okta.clear_sessions", user=ALICE)
    assert result == {"user_id": alice, "login": ALICE, "oauth_tokens_revoked": True,
                      "devices_forgotten": True, "changed": True}
    assert (okta.sessions[alice], okta.oauth_tokens[alice], okta.remembered_devices[alice]) \
        == (0, 0, 0)
    call = okta.calls_to("DELETE", f"/api/v1/users/{alice}/sessions")[0]
    assert (call.arg("oauthTokens"), call.arg("forgetDevices")) == ("true", "true")
    # Repeating never fails: the revocation is issued again.
    assert act("okta.clear_sessions", user=ALICE)["user_id"] == alice


def test_clear_sessions_can_keep_tokens_and_devices(
        okta: OktaMock, act: Callable[..., Any]) -> None:
    bob = okta.add_user("bob2@acme.example", sessions=3, oauth_tokens=2)
    act("okta.clear_sessions", user=bob, oauth_tokens=False, forget_devices=False)
    assert (okta.sessions[bob], okta.oauth_tokens[bob], okta.remembered_devices[bob]) == (0, 2, 1)
    call = okta.calls_to("DELETE", f"/api/v1/users/{bob}/sessions")[0]
    assert (call.arg("oauthTokens"), call.arg("forgetDevices")) == ("false", "false")


# groups ------------------------------------------------------------------------------------------


def test_remove_from_group_by_name_then_repeat(okta: OktaMock, act: Callable[..., Any]) -> None:
    alice = okta.user_id(ALICE)
    removed = act("okta.remove_from_group", user=ALICE, group="Model Registry Writers")
    group_id = removed["group_id"]
    assert removed["changed"] is True and removed["member"] is False
    assert alice not in okta.members[group_id]
    again = act("okta.remove_from_group", user=ALICE, group="Model Registry Writers")
    assert again["changed"] is False and again["member"] is False
    assert len(okta.calls_to("DELETE", "/api/v1/groups/{g}/users/{u}")) == 1


def test_add_to_group_by_id_then_repeat(okta: OktaMock, act: Callable[..., Any]) -> None:
    group = okta.add_group("Quarantine Review")
    added = act("okta.add_to_group", user=ALICE, group=group)
    assert (added["changed"], added["member"], added["group_name"]) == \
        (True, True, "Quarantine Review")
    assert okta.user_id(ALICE) in okta.members[group]
    assert act("okta.add_to_group", user=ALICE, group=group)["changed"] is False
    assert len(okta.calls_to("PUT", "/api/v1/groups/{g}/users/{u}")) == 1
    # A group id Okta does not know is tried as a name, then reported missing.
    with pytest.raises(NotFoundError, match="no Okta group with id or name"):
        act("okta.add_to_group", user=ALICE, group="00gAAAAAAAAAAAAAAAAA")


def test_app_group_memberships_are_refused_unless_already_right(
        okta: OktaMock, act: Callable[..., Any]) -> None:
    with pytest.raises(ConflictError, match="APP_GROUP"):
        act("okta.remove_from_group", user=ALICE, group="AD-Research")
    assert okta.calls_to("DELETE", "/api/v1/groups/{g}/users/{u}") == []
    bob_result = act("okta.remove_from_group", user="bob.ruiz@acme.example", group="AD-Research")
    assert bob_result["changed"] is False


def test_group_name_lookup_follows_pages(okta: OktaMock, act: Callable[..., Any]) -> None:
    okta.page_size = 1
    okta.add_group("Research")
    okta.add_group("Research")
    with pytest.raises(ConflictError, match="2 Okta groups are named 'Research'"):
        act("okta.add_to_group", user=ALICE, group="Research")
    assert len(okta.calls_to("GET", "/api/v1/groups")) == 2


# errors only this vendor has (the shared ones: test_conformance.py) ------------------------------


def test_missing_permission_names_it(okta: OktaMock, act: Callable[..., Any],
                                     connect: Callable[..., Any], host: Any) -> None:
    okta.add_api_token("00readonly-admin-token-42", READ_ONLY)
    config = connect(okta, token="00readonly-admin-token-42")
    ctx = ActionContext(run_id="r", step_id="s", attempt=1, idempotency_key="k",
                        connections=config.connections)
    assert host.action("okta.get_user").func(ctx, {"user": ALICE})["status"] == "ACTIVE"
    with pytest.raises(AuthError) as caught:
        host.action("okta.suspend_user").func(ctx, {"user": ALICE})
    assert caught.value.status == 403
    assert "okta.users.manage" in str(caught.value) and "E0000006" in str(caught.value)
    with pytest.raises(AuthError, match="okta.groups.manage"):
        host.action("okta.remove_from_group").func(ctx, {"user": ALICE, "group": "ML Engineers"})


def test_rate_limit_wait_comes_from_x_rate_limit_reset() -> None:
    date = "Sat, 28 Nov 2026 10:00:00 GMT"
    epoch = 1795860000.0  # that Date
    assert rate_limit_wait({"X-Rate-Limit-Reset": str(int(epoch) + 7), "Date": date}) == 7.0
    assert rate_limit_wait({"X-Rate-Limit-Reset": "100"}, now=40.0) == 60.0
    assert rate_limit_wait({}) is None


def test_429_waits_for_the_reset_then_succeeds(
        okta: OktaMock, host: Any, connect: Callable[..., Any],
        run_step: Callable[..., Any]) -> None:
    okta.inject("status", status=429, retry_after=1, path="/api/v1/users/{id}/lifecycle/suspend")
    events: list[dict[str, Any]] = []
    step = run_step("okta.suspend_user", {"user": ALICE}, config=connect(okta), host=host,
                    events=events)
    assert step["status"] == "succeeded" and step["attempts"] == 2
    assert step["output"]["changed"] is True
    failed = [e for e in events if e["type"] == "attempt_failed"]
    assert failed[0]["error_type"] == "RateLimited" and "HTTP 429" in failed[0]["error"]
    assert "E0000047" in failed[0]["error"]
    # The 0.01 s backoff was stretched to Okta's X-Rate-Limit-Reset (at least ~1 s away).
    assert failed[0]["retry_in"] >= 0.9
    limited = okta.calls_to("POST", "/api/v1/users/{id}/lifecycle/suspend")
    assert len(limited) == 2


def test_dry_run_changes_nothing(okta: OktaMock, host: Any, connect: Callable[..., Any],
                                 run_step: Callable[..., Any]) -> None:
    step = run_step("okta.suspend_user", {"user": ALICE}, config=connect(okta), host=host,
                    dry_run=True)
    assert step["output"]["would_call"] == "okta.suspend_user"
    assert okta.calls == [] and okta.status_of(ALICE) == "ACTIVE"


# the mock's own behaviour ------------------------------------------------------------------------


def test_mock_hides_deprovisioned_users_from_plain_lists_only(okta: OktaMock) -> None:
    import requests

    okta.add_user("ghost@acme.example", status="DEPROVISIONED")
    headers = {"Authorization": f"SSWS {API_TOKEN}", "Accept": "application/json"}
    plain = requests.get(f"{okta.base_url}/api/v1/users", headers=headers, timeout=5).json()
    searched = requests.get(f"{okta.base_url}/api/v1/users", headers=headers, timeout=5,
                            params={"search": 'status eq "DEPROVISIONED"'})
    assert "ghost@acme.example" not in {u["profile"]["login"] for u in plain}
    assert [u["profile"]["login"] for u in searched.json()] == ["ghost@acme.example"]
    assert searched.headers["X-Rate-Limit-Limit"] == "600"
    bad = requests.get(f"{okta.base_url}/api/v1/users", headers=headers, timeout=5,
                       params={"search": "profile.email eq"})
    assert bad.status_code == 400 and bad.json()["errorCode"] == "E0000031"


@pytest.mark.parametrize(("expression", "expected"), [
    ('profile.email eq "ALICE.chen@acme.example"', True),
    ('status eq "ACTIVE" and profile.firstName sw "al"', True),
    ('(status eq "SUSPENDED" or status eq "ACTIVE") and profile.lastName eq "Chen"', True),
    ('profile.email eq "bob@acme.example"', False),
    ("profile.mobilePhone pr", False),
])
def test_mock_search_expressions(expression: str, expected: bool) -> None:
    user = {"status": "ACTIVE", "profile": {"email": "alice.chen@acme.example",
                                            "firstName": "Alice", "lastName": "Chen",
                                            "mobilePhone": None}}
    assert compile_search(expression)(user) is expected


@pytest.mark.parametrize("expression", ["", "profile.email", 'profile.email is "x"',
                                        'profile.email eq "x" and', '(status eq "A"'])
def test_mock_search_rejects_invalid_expressions(expression: str) -> None:
    with pytest.raises(InvalidSearch):
        compile_search(expression)
