"""Contract: every request the entra plugin sends is a Graph (or token endpoint) operation.

Operations listed in ../shared/reference/vendor-apis.md §6 are read from that file at test
time (skipped cleanly where it is absent), with the request shapes it states (no body for
revokeSignInSessions, `{"accountEnabled": false}` for PATCH, the client-credentials form with
a `/.default` scope). The look-ups the reference does not list are checked against the table
below, each taken from its Microsoft Graph v1.0 reference page.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from crownguard.engine import ActionContext, ConflictError, RecordedCall
from crownguard.plugins import entra as entra_plugin
from crownguard.plugins.entra.mock import EntraMock

REFERENCE = Path(os.environ.get(
    "CROWNGUARD_VENDOR_REFERENCE",
    Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "vendor-apis.md"))
# The §6 operations the plugin relies on; the reference must still list each one.
RELIED_ON = {("POST", "/{id}/oauth2/v2.0/token"),  # {id} stands for every parameter
             ("POST", "/v1.0/users/{id}/revokeSignInSessions"),
             ("PATCH", "/v1.0/users/{id}"),
             ("DELETE", "/v1.0/groups/{id}/members/{id}/$ref")}
# Not in the reference doc; from learn.microsoft.com/graph/api/<page>?view=graph-rest-1.0.
GRAPH_DOCS = {
    ("GET", "/v1.0/users/{id}"): "user-get (also /users('$upn') for a UPN starting with $)",
    ("GET", "/v1.0/users"): "user-list ($filter, $select, $top, @odata.nextLink)",
    ("GET", "/v1.0/groups/{id}"): "group-get",
    ("GET", "/v1.0/groups"): "group-list",
    ("POST", "/v1.0/groups/{id}/members/$ref"): "group-post-members",
}


def normalise(path: str) -> str:
    """A path template with every parameter spelled {id} and no scheme, host or query."""
    path = re.sub(r"^https?://[^/]+", "", path.split("?")[0])
    path = re.sub(r"\('[^']*'\)", "/{id}", path)  # /users('$x@y') is /users/{id}
    return re.sub(r"\{[^}]+\}", "{id}", path)


def reference_operations() -> set[tuple[str, str]]:
    text = REFERENCE.read_text(encoding="utf-8")
    start = text.index("## 6. Microsoft Graph")
    end = text.index("\n## ", start + 1)
    found = re.findall(r"`(GET|POST|PATCH|DELETE|PUT) ([^`\s]+)", text[start:end])
    return {(method, normalise(path)) for method, path in found}


@pytest.fixture(scope="module")
def graph_reference() -> set[tuple[str, str]]:
    if not REFERENCE.is_file():
        pytest.skip(f"the vendor API reference is not at {REFERENCE}")
    return reference_operations()


def template_of(call: RecordedCall) -> tuple[str, str]:
    segments = normalise(call.path).split("/")
    out = []
    for index, segment in enumerate(segments):
        parent = segments[index - 1] if index else ""
        is_key = parent in ("users", "groups", "members") and segment != "$ref"
        is_tenant = index == 1 and segment not in ("v1.0", "beta")
        out.append("{id}" if is_key or is_tenant else segment)
    return call.method, "/".join(out)


def shape_problems(call: RecordedCall, template: tuple[str, str]) -> list[str]:
    """What the reference (and the Graph pages) say each request must carry."""
    where = f"{call.method} {call.path}"
    if template == ("POST", "/{id}/oauth2/v2.0/token"):
        form = call.form
        problems = [f"{where}: form field '{k}' missing" for k in
                    ("grant_type", "client_id", "client_secret", "scope") if k not in form]
        if form.get("grant_type") != "client_credentials":
            problems.append(f"{where}: grant_type must be client_credentials")
        if not form.get("scope", "").endswith("/.default"):
            problems.append(f"{where}: scope must end with /.default")
        return problems
    problems = []
    if not call.headers.get("Authorization", "").startswith("Bearer "):
        problems.append(f"{where}: no bearer token")
    if template in (("POST", "/v1.0/users/{id}/revokeSignInSessions"),
                    ("DELETE", "/v1.0/groups/{id}/members/{id}/$ref")) and call.body:
        problems.append(f"{where}: takes no body")
    if template == ("PATCH", "/v1.0/users/{id}") and (
            not isinstance(call.json, dict) or set(call.json) != {"accountEnabled"}
            or not isinstance(call.json["accountEnabled"], bool)):
        problems.append(f"{where}: body must be {{\"accountEnabled\": <bool>}}")
    if template == ("POST", "/v1.0/groups/{id}/members/$ref") and not re.search(
            r"/v1\.0/directoryObjects/[0-9a-f-]{36}$", str((call.json or {}).get("@odata.id"))):
        problems.append(f"{where}: @odata.id must name a directoryObjects/{{id}}")
    if call.method == "GET" and "accountEnabled" not in (call.arg("$select") or "") \
            and "/users" in call.path:
        problems.append(f"{where}: user reads must $select accountEnabled (not a default)")
    return problems


def test_the_reference_still_lists_what_the_plugin_relies_on(
        graph_reference: set[tuple[str, str]]) -> None:
    assert RELIED_ON <= graph_reference, RELIED_ON - graph_reference


def test_shape_checks_can_fail() -> None:
    bad_patch = RecordedCall("PATCH", "/v1.0/users/u1", {}, {"Authorization": "Bearer t"},
                             b'{"accountEnabled": "no"}')
    assert shape_problems(bad_patch, template_of(bad_patch))
    bad_form = RecordedCall("POST", "/t1/oauth2/v2.0/token", {}, {},
                            b"grant_type=password&client_id=x&scope=User.Read")
    problems = shape_problems(bad_form, template_of(bad_form))
    assert len(problems) == 3  # client_secret missing, grant_type, scope


def test_every_request_the_plugin_sends_is_a_documented_operation(
        graph_reference: set[tuple[str, str]], mock_server: Callable[..., Any],
        isolated_host: Callable[..., Any], crownguard_config: Callable[..., Any]) -> None:
    entra: EntraMock = mock_server(EntraMock)
    entra.page_size = 1
    host = isolated_host(entra_plugin, name="entra")
    config = crownguard_config({"entra": entra.connection_settings()}, host=host)

    def run(name: str, **inputs: Any) -> Any:
        ctx = ActionContext(run_id="c", step_id="s", attempt=1, idempotency_key="k",
                            connections=config.connections)
        return host.action(name).func(ctx, inputs)

    alice = "alice.chen@acme.example"
    entra.add_user("$svc@acme.example")
    entra.add_user("x1@acme.onmicrosoft.com", mail="xavier@acme.example")
    run("entra.get_user", user="xavier@acme.example")
    run("entra.get_user", user="$svc@acme.example")
    run("entra.revoke_sessions", user=alice)
    entra.expire_tokens()
    run("entra.disable_user", user=alice)
    run("entra.enable_user", user=entra.user_id(alice))
    group = run("entra.remove_group_member", user=alice, group="ML Engineers")["group_id"]
    run("entra.remove_group_member", user=alice, group=group)
    run("entra.add_group_member", user=alice, group=group)
    run("entra.add_group_member", user=alice, group=group)
    with pytest.raises(ConflictError):
        run("entra.add_group_member", user=alice, group="All Staff (dynamic)")

    known = graph_reference | set(GRAPH_DOCS)
    problems = []
    used = set()
    for call in entra.calls:
        template = template_of(call)
        used.add(template)
        if template not in known:
            problems.append(f"{call.method} {call.path}: not a documented operation")
        problems += shape_problems(call, template)
    assert problems == []
    assert used == RELIED_ON | set(GRAPH_DOCS)
