"""The entra plugin against its stateful Graph + token-endpoint mock: every action, idempotent
repeats, its own error classes, paging and throttling (the faults every vendor shares are
in test_conformance.py)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
import requests
from werkzeug import Request

from crownguard.engine import (
    AuthError,
    BadResponse,
    ConflictError,
    NotFoundError,
    route,
)
from crownguard.plugins import entra as entra_plugin
from crownguard.plugins.entra.client import user_path
from crownguard.plugins.entra.mock import CLIENT_SECRET, READ_ONLY, TENANT_ID, EntraMock

ALICE = "alice.chen@acme.example"
TOKEN_PATH = f"/{TENANT_ID}/oauth2/v2.0/token"


@pytest.fixture
def entra(mock_server: Callable[..., Any]) -> EntraMock:
    return mock_server(EntraMock)


@pytest.fixture
def host(isolated_host: Callable[..., Any]) -> Any:
    return isolated_host(entra_plugin, name="entra")


@pytest.fixture
def connect(host: Any, mock_config: Callable[..., Any]) -> Callable[..., Any]:
    def make(mock: EntraMock, **overrides: Any) -> Any:
        return mock_config("entra", mock, host=host, **overrides)

    return make


@pytest.fixture
def caller(call_action: Callable[..., Any]) -> Callable[..., Callable[..., Any]]:
    """caller(host, config)(name, **inputs): one action called directly, as the runner would."""

    def bind(host: Any, config: Any) -> Callable[..., Any]:
        def call(name: str, **inputs: Any) -> Any:
            return call_action(name, inputs, config, host=host, run_id="r1", step_id="s1",
                               idempotency_key="0123456789abcdef0123456789abcdef")

        return call

    return bind


@pytest.fixture
def act(caller: Any, host: Any, entra: EntraMock,
        connect: Callable[..., Any]) -> Callable[..., Any]:
    return caller(host, connect(entra))


# registration ------------------------------------------------------------------------------------


def test_plugin_registers_actions_connection_and_mock(host: Any) -> None:
    names = {n for n in host.actions if n.startswith("entra.")}
    assert names == {"entra.get_user", "entra.revoke_sessions", "entra.disable_user",
                     "entra.enable_user", "entra.remove_group_member", "entra.add_group_member"}
    assert host.connection_types["entra"].secrets == ("client_secret", "private_key")
    assert host.mock_servers["entra"].factory is EntraMock
    for name in names:
        action = host.action(name)
        assert action.input_schema["additionalProperties"] is False
        assert action.retry is not None and action.retry.max_attempts == 3
        assert action.summary and len(action.description.strip().split("\n\n")) >= 2
        if action.side_effect:
            assert "changed" in action.output_schema["required"]
        if action.undo:
            assert action.undo in host.actions and host.action(action.undo).undo == name


def test_connection_needs_a_tenant_or_a_token_url(
        entra: EntraMock, connect: Callable[..., Any]) -> None:
    from crownguard.engine import SpecError

    with pytest.raises(SpecError):
        connect(entra, token_url=None)
    assert connect(entra, token_url=None, tenant_id=TENANT_ID)


# look-ups ----------------------------------------------------------------------------------------


def test_get_user_by_upn_id_and_mail(entra: EntraMock, act: Callable[..., Any]) -> None:
    alice = act("entra.get_user", user=ALICE)
    assert alice["account_enabled"] is True and alice["display_name"] == "Alice Chen"
    assert act("entra.get_user", user=alice["id"])["user_principal_name"] == ALICE
    other = entra.add_user("e.lee@acme.onmicrosoft.com", mail="erin.lee@acme.example")
    assert act("entra.get_user", user="erin.lee@acme.example")["id"] == other
    search = entra.calls_to("GET", "/v1.0/users")[-1]
    assert search.arg("$filter") == "mail eq 'erin.lee@acme.example'"
    assert "accountEnabled" in (search.arg("$select") or "")


def test_get_user_uses_the_key_form_for_dollar_upns(entra: EntraMock,
                                                     act: Callable[..., Any]) -> None:
    odd = entra.add_user("$svc-o'hara@acme.example")
    assert user_path("$svc-o'hara@acme.example") == "/users('$svc-o%27%27hara@acme.example')"
    assert act("entra.get_user", user="$svc-o'hara@acme.example")["id"] == odd


def test_mail_search_follows_next_links(entra: EntraMock, act: Callable[..., Any]) -> None:
    entra.page_size = 1
    first = entra.add_user("f1@acme.onmicrosoft.com", mail="frank@acme.example")
    second = entra.add_user("f2@acme.onmicrosoft.com", mail="frank@acme.example")
    with pytest.raises(ConflictError) as caught:
        act("entra.get_user", user="frank@acme.example")
    assert first in str(caught.value) and second in str(caught.value)
    pages = entra.calls_to("GET", "/v1.0/users")
    assert len(pages) == 2 and pages[1].arg("$skiptoken") is not None
    assert pages[1].arg("$filter") == "mail eq 'frank@acme.example'"


class ForeignLinkEntra(EntraMock):
    """A next link that points at another host must not be followed (it would get the token)."""

    @route("GET", "/v1.0/users")
    def list_users(self, request: Request) -> Any:
        return {"value": [], "@odata.nextLink": "https://evil.example/v1.0/users?$skiptoken=x"}


def test_next_links_to_other_hosts_are_refused(
        caller: Any, mock_server: Callable[..., Any], host: Any,
        connect: Callable[..., Any]) -> None:
    mock = mock_server(ForeignLinkEntra)
    with pytest.raises(BadResponse, match="refusing to follow a link to another host"):
        caller(host, connect(mock))("entra.get_user", user="nobody@acme.example")


def test_unknown_user_is_not_found(act: Callable[..., Any]) -> None:
    with pytest.raises(NotFoundError) as caught:
        act("entra.disable_user", user="nobody@acme.example")
    error = caught.value
    assert (error.vendor, error.operation, error.status) == ("entra", "disable user", 404)
    assert "nobody@acme.example" in str(error)
    unknown = str(uuid.uuid4())
    with pytest.raises(NotFoundError, match=f"no Entra user with id or userPrincipalName "
                                            f"'{unknown}'"):
        act("entra.get_user", user=unknown)


# sessions and the account ------------------------------------------------------------------------


def test_revoke_sessions_moves_the_valid_from_time(entra: EntraMock,
                                                   act: Callable[..., Any]) -> None:
    before = entra.user(ALICE)["signInSessionsValidFromDateTime"]
    result = act("entra.revoke_sessions", user=ALICE)
    assert result == {"user_id": entra.user_id(ALICE), "user_principal_name": ALICE,
                      "changed": True}
    assert entra.user(ALICE)["signInSessionsValidFromDateTime"] > before
    assert entra.refresh_tokens[entra.user_id(ALICE)] == 0
    call = entra.calls_to("POST", "/v1.0/users/{id}/revokeSignInSessions")[0]
    assert call.body == b""
    assert call.headers["Client-Request-Id"] == "01234567-89ab-cdef-0123-456789abcdef"
    assert act("entra.revoke_sessions", user=ALICE)["user_id"] == entra.user_id(ALICE)


class RefusingEntra(EntraMock):
    """A Graph that answers the revocation with value: false."""

    @route("POST", "/v1.0/users/{key}/revokeSignInSessions")
    def revoke_sessions(self, request: Request, key: str) -> Any:
        return {"value": False}


def test_a_revocation_graph_did_not_confirm_fails(
        caller: Any, mock_server: Callable[..., Any], host: Any,
        connect: Callable[..., Any]) -> None:
    mock = mock_server(RefusingEntra)
    with pytest.raises(BadResponse, match="value: false"):
        caller(host, connect(mock))("entra.revoke_sessions", user=ALICE)


def test_disable_then_repeat_then_enable(entra: EntraMock, act: Callable[..., Any]) -> None:
    first = act("entra.disable_user", user=ALICE)
    assert first["changed"] is True and first["account_enabled"] is False
    assert entra.user(ALICE)["accountEnabled"] is False
    assert act("entra.disable_user", user=ALICE)["changed"] is False
    patches = entra.calls_to("PATCH", "/v1.0/users/{id}")
    assert len(patches) == 1 and patches[0].json == {"accountEnabled": False}
    assert act("entra.enable_user", user=ALICE)["changed"] is True
    assert entra.user(ALICE)["accountEnabled"] is True
    assert act("entra.enable_user", user=ALICE)["changed"] is False


def test_disabling_a_hybrid_account_says_where_to_do_it(act: Callable[..., Any]) -> None:
    with pytest.raises(ConflictError) as caught:
        act("entra.disable_user", user="hybrid.user@acme.example")
    message = str(caught.value)
    assert "entra disable user (HTTP 400)" in message
    assert "on-premises mastered" in message and "change it there" in message


# groups ------------------------------------------------------------------------------------------


def test_remove_group_member_by_name_then_repeat(entra: EntraMock,
                                                  act: Callable[..., Any]) -> None:
    removed = act("entra.remove_group_member", user=ALICE, group="Model Registry Writers")
    assert removed["changed"] is True and removed["member"] is False
    assert entra.user_id(ALICE) not in entra.members[removed["group_id"]]
    again = act("entra.remove_group_member", user=ALICE, group="Model Registry Writers")
    assert again["changed"] is False and again["member"] is False
    lookups = entra.calls_to("GET", "/v1.0/groups")
    assert lookups[0].arg("$filter") == "displayName eq 'Model Registry Writers'"


def test_add_group_member_by_id_then_repeat(entra: EntraMock, act: Callable[..., Any]) -> None:
    group = entra.add_group("Quarantine Review")
    added = act("entra.add_group_member", user=ALICE, group=group)
    assert (added["changed"], added["member"], added["group_name"]) == \
        (True, True, "Quarantine Review")
    assert entra.user_id(ALICE) in entra.members[group]
    assert act("entra.add_group_member", user=ALICE, group=group)["changed"] is False
    posted = entra.calls_to("POST", "/v1.0/groups/{g}/members/$ref")[0]
    assert posted.json == {"@odata.id": f"{entra.base_url}/v1.0/directoryObjects/"
                                        f"{entra.user_id(ALICE)}"}
    assert posted.headers["Content-Type"] == "application/json"


def test_dynamic_groups_fail_with_the_reason(act: Callable[..., Any]) -> None:
    with pytest.raises(ConflictError, match="membership is dynamic"):
        act("entra.add_group_member", user=ALICE, group="All Staff (dynamic)")


def test_unknown_and_ambiguous_groups(entra: EntraMock, act: Callable[..., Any]) -> None:
    with pytest.raises(NotFoundError, match="no Entra group"):
        act("entra.add_group_member", user=ALICE, group="No Such Group")
    with pytest.raises(NotFoundError):
        act("entra.add_group_member", user=ALICE, group=str(uuid.uuid4()))
    entra.add_group("Research")
    entra.add_group("Research")
    with pytest.raises(ConflictError, match="2 Entra groups are named 'Research'"):
        act("entra.remove_group_member", user=ALICE, group="Research")


# errors only this vendor has (the shared ones: test_conformance.py) ------------------------------


@pytest.mark.parametrize(("overrides", "expected"), [
    ({"client_id": "11111111-2222-3333-4444-555555555555"}, "AADSTS700016"),
    ({"token_url": None, "tenant_id": "contoso.example"}, "AADSTS90002"),
])
def test_wrong_app_or_tenant_is_an_auth_error(
        caller: Any, entra: EntraMock, host: Any, connect: Callable[..., Any],
        overrides: dict[str, Any], expected: str) -> None:
    if "tenant_id" in overrides:
        # Point the default login.microsoftonline.com URL shape at the mock.
        overrides = {"token_url": f"{entra.base_url}/{overrides['tenant_id']}/oauth2/v2.0/token"}
    with pytest.raises(AuthError) as caught:
        caller(host, connect(entra, **overrides))("entra.get_user", user=ALICE)
    assert caught.value.status == 400 and expected in str(caught.value)
    assert "check tenant_id/token_url, client_id, client_secret and scope" in str(caught.value)


def test_missing_permission_names_it(entra: EntraMock, act: Callable[..., Any]) -> None:
    entra.set_permissions(READ_ONLY)
    assert act("entra.get_user", user=ALICE)["id"]
    with pytest.raises(AuthError) as caught:
        act("entra.revoke_sessions", user=ALICE)
    assert caught.value.status == 403
    assert "Authorization_RequestDenied" in str(caught.value)
    assert "User.RevokeSessions.All" in str(caught.value)
    with pytest.raises(AuthError, match="User.EnableDisableAccount.All"):
        act("entra.disable_user", user=ALICE)
    with pytest.raises(AuthError, match="GroupMember.ReadWrite.All"):
        act("entra.add_group_member", user=ALICE, group="ML Engineers")


def test_server_errors_are_retried_and_reported(
        entra: EntraMock, host: Any, connect: Callable[..., Any],
        run_step: Callable[..., Any]) -> None:
    entra.inject("status", status=503, path="/v1.0/users/{id}", method="PATCH", times=2)
    recovered = run_step("entra.disable_user", {"user": ALICE}, config=connect(entra), host=host)
    assert recovered["status"] == "succeeded" and recovered["attempts"] == 3
    entra.inject("status", status=500, path=TOKEN_PATH, times=None)
    entra.expire_tokens()
    step = run_step("entra.get_user", {"user": ALICE}, config=connect(entra), host=host)
    assert step["status"] == "failed" and step["attempts"] == 3
    assert step["error"].startswith("entra get OAuth2 token (HTTP 500)")


# the mock's own behaviour ------------------------------------------------------------------------


def test_mock_graph_behaves_like_graph(entra: EntraMock) -> None:
    token = requests.post(f"{entra.base_url}{TOKEN_PATH}", timeout=5, data={
        "grant_type": "client_credentials", "client_id": entra.connection_settings()["client_id"],
        "client_secret": CLIENT_SECRET, "scope": "https://graph.microsoft.com/.default",
    }).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    plain = requests.get(f"{entra.base_url}/v1.0/users/{ALICE}", headers=headers, timeout=5)
    assert "accountEnabled" not in plain.json() and plain.json()["userPrincipalName"] == ALICE
    assert plain.headers["request-id"]
    bad_select = requests.get(f"{entra.base_url}/v1.0/users/{ALICE}", headers=headers,
                              timeout=5, params={"$select": "nope"})
    assert bad_select.status_code == 400
    bad_filter = requests.get(f"{entra.base_url}/v1.0/users", headers=headers, timeout=5,
                              params={"$filter": "mail gt 'a'"})
    assert bad_filter.json()["error"]["code"] == "Request_UnsupportedQuery"
    bad_scope = requests.post(f"{entra.base_url}{TOKEN_PATH}", timeout=5, data={
        "grant_type": "client_credentials", "client_id": entra.connection_settings()["client_id"],
        "client_secret": CLIENT_SECRET, "scope": "User.Read.All"})
    assert bad_scope.status_code == 400 and bad_scope.json()["error"] == "invalid_scope"
    no_token = requests.get(f"{entra.base_url}/v1.0/users", timeout=5)
    assert no_token.status_code == 401
    assert no_token.json()["error"]["code"] == "InvalidAuthenticationToken"
