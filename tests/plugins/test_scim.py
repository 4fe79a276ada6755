"""The scim plugin against its SCIM 2.0 service mock: every action, idempotent repeats, the
provider differences it absorbs (204, no-path PATCH, ETags), its own error classes, paging, and
that every request it sends is an RFC 7644 request."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jsonschema
import pytest
from werkzeug import Request, Response

from crownguard.engine import (
    AuthError,
    BadResponse,
    ConflictError,
    NotFoundError,
    route,
)
from crownguard.plugins import scim as scim_plugin
from crownguard.plugins.scim.client import patch_body
from crownguard.plugins.scim.mock import BASE, TOKEN, ScimMock
from crownguard.plugins.scim.mock.filters import InvalidFilter, compile_filter

ALICE = "alice.chen@acme.example"
USER = f"{BASE}/Users/{{id}}"
# RFC 7644 §3.5.2: the PatchOp message.
PATCH_OP_SCHEMA = {
    "type": "object",
    "required": ["schemas", "Operations"],
    "properties": {
        "schemas": {"const": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"]},
        "Operations": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["op"],
            "properties": {"op": {"enum": ["add", "remove", "replace"]},
                           "path": {"type": "string"}, "value": {}},
            "additionalProperties": False}},
    },
    "additionalProperties": False,
}


@pytest.fixture
def scim(mock_server: Callable[..., Any]) -> ScimMock:
    return mock_server(ScimMock)


@pytest.fixture
def host(isolated_host: Callable[..., Any]) -> Any:
    return isolated_host(scim_plugin, name="scim")


@pytest.fixture
def connect(host: Any, mock_config: Callable[..., Any]) -> Callable[..., Any]:
    def make(mock: ScimMock, **overrides: Any) -> Any:
        return mock_config("scim", mock, host=host, **overrides)

    return make


@pytest.fixture
def caller(call_action: Callable[..., Any]) -> Callable[..., Callable[..., Any]]:
    """caller(host, config)(name, **inputs): one action called directly, as the runner would."""

    def bind(host: Any, config: Any) -> Callable[..., Any]:
        def call(name: str, **inputs: Any) -> Any:
            return call_action(name, inputs, config, host=host, run_id="r1", step_id="s1",
                               idempotency_key="k")

        return call

    return bind


@pytest.fixture
def act(caller: Any, host: Any, scim: ScimMock,
        connect: Callable[..., Any]) -> Callable[..., Any]:
    return caller(host, connect(scim))


def test_plugin_registers_actions_connection_and_mock(host: Any) -> None:
    assert {n for n in host.actions if n.startswith("scim.")} == \
        {"scim.get_user", "scim.deactivate_user", "scim.activate_user"}
    assert host.connection_types["scim"].secrets == ("token",)
    assert host.mock_servers["scim"].factory is ScimMock
    assert host.action("scim.deactivate_user").undo == "scim.activate_user"
    assert host.action("scim.activate_user").undo == "scim.deactivate_user"
    for name in ("scim.get_user", "scim.deactivate_user", "scim.activate_user"):
        action = host.action(name)
        assert action.input_schema["additionalProperties"] is False
        assert action.retry is not None and action.retry.max_attempts == 3
        assert len(action.description.strip().split("\n\n")) >= 2


# look-ups ----------------------------------------------------------------------------------------


def test_get_user_by_id_username_and_email(scim: ScimMock, act: Callable[..., Any]) -> None:
    alice = act("scim.get_user", user=ALICE)
    assert alice["active"] is True and alice["emails"] == [ALICE]
    assert act("scim.get_user", user=alice["id"])["user_name"] == ALICE
    jdoe = scim.add_user("jdoe", email="jane.doe@acme.example")
    assert act("scim.get_user", user="jdoe")["id"] == jdoe
    assert act("scim.get_user", user="jane.doe@acme.example")["id"] == jdoe
    filters = [c.arg("filter") for c in scim.calls_to("GET", f"{BASE}/Users")]
    assert filters[-2:] == ['userName eq "jane.doe@acme.example"',
                            'emails.value eq "jane.doe@acme.example"']


def test_lookups_page_through_start_index(scim: ScimMock, act: Callable[..., Any]) -> None:
    scim.page_size = 1
    first = scim.add_user("k1", email="kim@acme.example")
    second = scim.add_user("k2", email="kim@acme.example")
    with pytest.raises(ConflictError) as caught:
        act("scim.deactivate_user", user="kim@acme.example")
    assert first in str(caught.value) and second in str(caught.value)
    pages = [c for c in scim.calls_to("GET", f"{BASE}/Users")
             if (c.arg("filter") or "").startswith("emails")]
    assert [c.arg("startIndex") for c in pages] == ["1", "2"]
    assert scim.calls_to("PATCH") == []


def test_unknown_user_is_not_found(act: Callable[..., Any]) -> None:
    with pytest.raises(NotFoundError) as caught:
        act("scim.deactivate_user", user="nobody@acme.example")
    assert (caught.value.vendor, caught.value.operation, caught.value.status) == \
        ("scim", "deactivate user", 404)


# deactivate / activate ---------------------------------------------------------------------------


def test_deactivate_then_repeat_then_activate(scim: ScimMock, act: Callable[..., Any]) -> None:
    first = act("scim.deactivate_user", user=ALICE)
    assert first == {"user_id": scim.user(ALICE)["id"], "user_name": ALICE, "active": False,
                     "changed": True}
    assert scim.user(ALICE)["active"] is False
    patch = scim.calls_to("PATCH", USER)[0]
    assert patch.json == {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                          "Operations": [{"op": "replace", "path": "active", "value": False}]}
    assert patch.headers["Content-Type"] == "application/scim+json"
    assert patch.headers["If-Match"] == 'W/"1"'
    assert patch.headers["Authorization"] == f"Bearer {TOKEN}"
    assert act("scim.deactivate_user", user=ALICE)["changed"] is False
    assert len(scim.calls_to("PATCH", USER)) == 1
    assert act("scim.activate_user", user=ALICE)["changed"] is True
    assert scim.user(ALICE)["active"] is True
    assert act("scim.activate_user", user=ALICE)["changed"] is False


def test_services_that_answer_204(scim: ScimMock, act: Callable[..., Any]) -> None:
    scim.patch_status = 204
    assert act("scim.deactivate_user", user=ALICE)["changed"] is True
    assert scim.user(ALICE)["active"] is False


def test_services_that_refuse_path_need_patch_style_value(
        caller: Any, scim: ScimMock, host: Any, connect: Callable[..., Any],
        act: Callable[..., Any]) -> None:
    scim.accepts_path = False
    with pytest.raises(ConflictError) as caught:
        act("scim.deactivate_user", user=ALICE)
    assert "invalidPath" in str(caught.value) and "HTTP 400" in str(caught.value)
    result = caller(host, connect(scim, patch_style="value"))("scim.deactivate_user", user=ALICE)
    assert result["changed"] is True and scim.user(ALICE)["active"] is False
    assert scim.calls_to("PATCH", USER)[-1].json["Operations"] == \
        [{"op": "replace", "value": {"active": False}}]


class RacingScim(ScimMock):
    """Another client updates the user between our look-up and our PATCH."""

    @route("GET", f"{BASE}/Users")
    def list_users(self, request: Request) -> Response:
        answer = super().list_users(request)
        if len(self.calls_to("GET", f"{BASE}/Users")) == 1:
            self.touch(self.user(ALICE)["id"])
        return answer


def test_a_stale_version_is_read_again_and_retried_once(
        caller: Any, mock_server: Callable[..., Any], host: Any,
        connect: Callable[..., Any]) -> None:
    scim = mock_server(RacingScim)
    result = caller(host, connect(scim))("scim.deactivate_user", user=ALICE)
    assert result["changed"] is True and scim.user(ALICE)["active"] is False
    patches = scim.calls_to("PATCH", USER)
    assert [p.headers["If-Match"] for p in patches] == ['W/"1"', 'W/"2"']


class IgnoringScim(ScimMock):
    """A service that answers 200 to any PATCH but changes nothing."""

    @route("PATCH", f"{BASE}/Users/{{user_id}}")
    def patch_user(self, request: Request, user_id: str) -> Response:
        return self.scim_response(self.render(self.users[user_id]))


def test_a_patch_the_service_ignored_is_not_reported_as_done(
        caller: Any, mock_server: Callable[..., Any], host: Any,
        connect: Callable[..., Any]) -> None:
    scim = mock_server(IgnoringScim)
    with pytest.raises(BadResponse, match="active is still True"):
        caller(host, connect(scim))("scim.deactivate_user", user=ALICE)


def test_one_playbook_can_reach_several_scim_services(
        mock_server: Callable[..., Any], host: Any, crownguard_config: Callable[..., Any],
        run_step: Callable[..., Any]) -> None:
    primary, notebooks = mock_server(ScimMock), mock_server(ScimMock)
    config = crownguard_config({"scim": primary.connection_settings(),
                                "notebooks": {"type": "scim", **notebooks.connection_settings()}},
                               host=host)
    step = run_step("scim.deactivate_user", {"user": ALICE, "connection": "notebooks"},
                    config=config, host=host)
    assert step["status"] == "succeeded"
    assert notebooks.user(ALICE)["active"] is False and primary.user(ALICE)["active"] is True
    assert primary.calls == []


# errors only this vendor has (the shared ones: test_conformance.py) ------------------------------


def test_a_read_only_token_gets_a_403(caller: Any, scim: ScimMock, host: Any,
                                      connect: Callable[..., Any]) -> None:
    scim.add_token("read-only-scim-token-1", write=False)
    act = caller(host, connect(scim, token="read-only-scim-token-1"))
    assert act("scim.get_user", user=ALICE)["active"] is True
    with pytest.raises(AuthError) as caught:
        act("scim.deactivate_user", user=ALICE)
    assert caught.value.status == 403 and "may not modify Users" in str(caught.value)


# RFC 7644 conformance of what the plugin sends ---------------------------------------------------


@pytest.mark.parametrize("style", ["path", "value"])
def test_patch_bodies_are_rfc_7644_patch_ops(style: str) -> None:
    jsonschema.validate(patch_body(False, style), PATCH_OP_SCHEMA)


def test_every_request_is_an_rfc_7644_request(scim: ScimMock, act: Callable[..., Any]) -> None:
    scim.add_user("o'neil", email='quote"d@acme.example')
    act("scim.get_user", user='quote"d@acme.example')
    act("scim.deactivate_user", user=ALICE)
    act("scim.activate_user", user=scim.user(ALICE)["id"])
    assert scim.calls
    for call in scim.calls:
        assert call.path == f"{BASE}/Users" or call.path.startswith(f"{BASE}/Users/")
        assert "application/scim+json" in call.headers["Accept"]
        if call.method == "GET" and call.path == f"{BASE}/Users":
            compile_filter(call.arg("filter") or "")  # parses as a SCIM filter
            assert int(call.arg("startIndex") or 0) >= 1 and int(call.arg("count") or 0) >= 1
        elif call.method == "PATCH":
            jsonschema.validate(call.json, PATCH_OP_SCHEMA)
            assert call.headers["Content-Type"] == "application/scim+json"
        else:
            assert call.method == "GET" and call.body == b""


@pytest.mark.parametrize(("expression", "expected"), [
    ('userName eq "ALICE.CHEN@acme.example"', True),
    ('emails[type eq "work" and value co "@acme"]', True),
    ('emails.value ew ".example" and active eq true', True),
    ('not (active eq true)', False),
    ('name.familyName sw "Ch" or userName eq "x"', True),
    ("externalId pr", False),
])
def test_mock_filters(scim: ScimMock, expression: str, expected: bool) -> None:
    assert compile_filter(expression)(scim.user(ALICE)) is expected


@pytest.mark.parametrize("expression", ["", "userName", 'userName is "x"', 'emails[value eq "x"',
                                        'userName eq x'])
def test_mock_rejects_invalid_filters(expression: str) -> None:
    with pytest.raises(InvalidFilter):
        compile_filter(expression)
