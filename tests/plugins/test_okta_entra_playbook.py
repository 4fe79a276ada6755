"""End to end: a playbook suspends the Okta account and revokes the Entra sessions of the person
moving a model out, in parallel, against both mocks; no secret reaches the run record, the
journal or an error; the identity plugins import only the engine's public API."""

from __future__ import annotations

import ast
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from werkzeug import Request, Response

import crownguard.engine
from crownguard.engine import route
from crownguard.plugins import entra as entra_plugin
from crownguard.plugins import okta as okta_plugin
from crownguard.plugins import scim as scim_plugin
from crownguard.plugins.entra.mock import EntraMock
from crownguard.plugins.okta.mock import OktaMock

OKTA_TOKEN = "00okta-secret-token-Zq81xVb3"
ENTRA_SECRET = "entra~client~secret~Lm47Pw"

PLAYBOOK = """
name: cut-identity-access
description: Suspend the Okta account and revoke the Entra sessions of the person moving a model.
steps:
  - id: suspend_okta
    action: okta.suspend_user
    with: {user: "${{ event.actor.email }}"}
    retry: {max_attempts: 3, backoff_seconds: 0.01}
  - id: revoke_entra
    action: entra.revoke_sessions
    with: {user: "${{ event.actor.email }}"}
    retry: {max_attempts: 3, backoff_seconds: 0.01}
  - id: clear_okta_sessions
    action: okta.clear_sessions
    needs: [suspend_okta]
    with: {user: "${{ steps.suspend_okta.output.user_id }}"}
    retry: {max_attempts: 3, backoff_seconds: 0.01}
  - id: summary
    action: core.noop
    needs: [clear_okta_sessions, revoke_entra]
    with:
      okta_status: "${{ steps.suspend_okta.output.status }}"
      okta_changed: "${{ steps.suspend_okta.output.changed }}"
      entra_user: "${{ steps.revoke_entra.output.user_id }}"
"""
EVENT = {"actor": {"email": "alice.chen@acme.example"}}


class EchoingEntra(EntraMock):
    """A badly behaved Graph that echoes the caller's credentials in an error."""

    @route("POST", "/v1.0/users/{key}/revokeSignInSessions")
    def revoke_sessions(self, request: Request, key: str) -> Response:
        return self.graph_error(500, "generalException",
                                f"could not process {request.headers.get('Authorization')}")


@pytest.fixture
def host(isolated_host: Callable[..., Any]) -> Any:
    return isolated_host(okta_plugin, entra_plugin)


def configure(okta: OktaMock, entra: EntraMock, host: Any,
              crownguard_config: Callable[..., Any]) -> Any:
    okta.add_api_token(OKTA_TOKEN)
    entra.apps[entra.connection_settings()["client_id"]]["secret"] = ENTRA_SECRET
    return crownguard_config({
        "okta": {"base_url": okta.base_url, "token": "${env:OKTA_API_TOKEN}"},
        "entra": {**entra.connection_settings(), "client_secret": "${env:ENTRA_SECRET}"},
    }, host=host, env={"OKTA_API_TOKEN": OKTA_TOKEN, "ENTRA_SECRET": ENTRA_SECRET})


def test_suspend_okta_and_revoke_entra_in_parallel(
        mock_server: Callable[..., Any], host: Any, crownguard_config: Callable[..., Any],
        run_playbook: Callable[..., Any]) -> None:
    okta, entra = mock_server(OktaMock), mock_server(EntraMock)
    config = configure(okta, entra, host, crownguard_config)
    events: list[dict[str, Any]] = []
    record = run_playbook(PLAYBOOK, EVENT, config=config, host=host, journal=events.append)

    assert record["status"] == "succeeded", record
    assert record["steps"]["summary"]["output"] == {
        "okta_status": "SUSPENDED", "okta_changed": True,
        "entra_user": entra.user_id("alice.chen@acme.example")}
    # Both identity steps were started before either finished: they ran side by side.
    order = [(e["type"], e.get("step")) for e in events]
    first_done = min(order.index(("step_succeeded", s)) for s in ("suspend_okta", "revoke_entra"))
    assert order.index(("step_started", "suspend_okta")) < first_done
    assert order.index(("step_started", "revoke_entra")) < first_done
    alice_okta = okta.user_id("alice.chen@acme.example")
    assert okta.status_of(alice_okta) == "SUSPENDED" and okta.sessions[alice_okta] == 0
    assert entra.refresh_tokens[entra.user_id("alice.chen@acme.example")] == 0

    again = run_playbook(PLAYBOOK, EVENT, config=config, host=host)
    assert again["status"] == "succeeded"
    assert again["steps"]["suspend_okta"]["output"]["changed"] is False


def test_no_secret_reaches_records_journal_or_errors(
        mock_server: Callable[..., Any], host: Any, crownguard_config: Callable[..., Any],
        run_playbook: Callable[..., Any]) -> None:
    okta, entra = mock_server(OktaMock), mock_server(EchoingEntra)
    config = configure(okta, entra, host, crownguard_config)
    # Okta fails with a body that repeats the token; Graph echoes the bearer token.
    okta.inject("status", status=500, times=None, path="/api/v1/users/{id}/lifecycle/suspend",
                body={"errorCode": "E0000009", "errorSummary": f"bad SSWS {OKTA_TOKEN}"})
    events: list[dict[str, Any]] = []
    record = run_playbook(PLAYBOOK, EVENT, config=config, host=host, journal=events.append)

    assert record["status"] == "failed"
    okta_error = record["steps"]["suspend_okta"]["error"]
    entra_error = record["steps"]["revoke_entra"]["error"]
    assert okta_error.startswith("okta suspend user (HTTP 500)") and "***" in okta_error
    assert entra_error.startswith("entra revoke sign-in sessions (HTTP 500)")
    assert "Bearer ***" in entra_error
    access_tokens = list(entra.tokens)
    assert access_tokens
    everything = json.dumps(record) + json.dumps(events)
    for secret in (OKTA_TOKEN, ENTRA_SECRET, *access_tokens):
        assert secret not in everything
    assert "Traceback" not in everything
    # The secrets did go to the vendors, where they belong.
    assert okta.calls[0].headers["Authorization"] == f"SSWS {OKTA_TOKEN}"
    token_call = entra.calls_to("POST", "/{tenant}/oauth2/v2.0/token")[0]
    assert token_call.form["client_secret"] == ENTRA_SECRET


@pytest.mark.parametrize("plugin", [okta_plugin, entra_plugin, scim_plugin])
def test_identity_plugins_import_only_the_public_engine_api(plugin: Any) -> None:
    public = set(crownguard.engine.__all__)
    for source in Path(plugin.__file__).parent.glob("*.py"):
        tree = ast.parse(source.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                    and node.module.startswith("crownguard"):
                assert node.module == "crownguard.engine", f"{source.name}: {node.module}"
                assert {a.name for a in node.names} <= public, source.name
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("crownguard") for a in node.names), source.name
