"""users.info, in the Slack mock and the client, as Slack answers it: the method needs
users:read, the profile's e-mail only comes with users:read.email, `ok: false` errors with
HTTP 200, a real 429 with Retry-After; and who identity.answerer makes of it."""

from __future__ import annotations

from typing import Any

import pytest
import requests

import crownguard.plugins.slack as slack_plugin
from crownguard.engine import ActionContext, AuthError, Config, NotFoundError, RateLimited
from crownguard.plugins.slack.client import SlackClient
from crownguard.plugins.slack.identity import Answerer, answerer
from crownguard.plugins.slack.mock import SlackMock
from crownguard.plugins.slack.mock.base import ALL_SCOPES


@pytest.fixture
def slack(mock_server: Any) -> SlackMock:
    return mock_server(SlackMock)


@pytest.fixture
def config(crownguard_config: Any, isolated_host: Any, slack: SlackMock) -> Config:
    host = isolated_host(slack_plugin, name="slack")
    return crownguard_config({"slack": slack.connection_settings()}, host=host)


@pytest.fixture
def client(config: Config) -> SlackClient:
    ctx = ActionContext(run_id="r", step_id="s", attempt=1, idempotency_key="k",
                        connections=config.connections)
    return ctx.client(SlackClient)


def raw(slack: SlackMock, token: str | None, **params: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = requests.get(f"{slack.base_url}/api/users.info", params=params,
                            headers=headers, timeout=5)
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def test_users_info_gives_the_user_with_the_email(slack: SlackMock) -> None:
    ada = slack.add_user("Ada@Example.com", "Ada Lovelace", locale="en-GB")
    body = raw(slack, slack.bot_token, user=ada)
    assert body["ok"] is True
    assert body["user"]["id"] == ada and body["user"]["profile"]["email"] == "Ada@Example.com"
    assert "locale" not in body["user"]
    assert raw(slack, slack.bot_token, user=ada, include_locale="true")["user"]["locale"] \
        == "en-GB"


def test_users_info_leaves_the_email_out_without_users_read_email(slack: SlackMock) -> None:
    ada = slack.add_user("ada@example.com", "Ada Lovelace")
    slack.set_scopes(ALL_SCOPES - {"users:read.email"})
    body = raw(slack, slack.bot_token, user=ada)
    assert body["ok"] is True and "email" not in body["user"]["profile"]
    assert body["user"]["profile"]["real_name"] == "Ada Lovelace"
    assert slack.users[ada]["profile"]["email"] == "ada@example.com"  # only hidden


def test_users_info_errors_as_slack_gives_them(slack: SlackMock) -> None:
    ada = slack.add_user("ada@example.com", "Ada Lovelace")
    assert raw(slack, None, user=ada) == {"ok": False, "error": "not_authed"}
    assert raw(slack, "xoxb-wrong", user=ada) == {"ok": False, "error": "invalid_auth"}
    assert raw(slack, slack.bot_token, user="U0NOBODY01") == {"ok": False,
                                                               "error": "user_not_found"}
    slack.set_scopes({"chat:write", "users:read.email"})
    body = raw(slack, slack.bot_token, user=ada)
    assert body == {"ok": False, "error": "missing_scope", "needed": "users:read",
                    "provided": "chat:write,users:read.email"}


def test_the_client_maps_users_info_errors(slack: SlackMock, client: SlackClient) -> None:
    ada = slack.add_user("ada@example.com", "Ada Lovelace")
    assert client.user_info(ada)["profile"]["email"] == "ada@example.com"
    with pytest.raises(NotFoundError, match="user_not_found: no such Slack user"):
        client.user_info("U0NOBODY01")
    slack.inject("status", status=429, retry_after=7, path="/api/users.info", times=1)
    with pytest.raises(RateLimited) as limited:
        client.user_info(ada)
    assert limited.value.retry_after == 7
    slack.set_scopes({"chat:write"})
    with pytest.raises(AuthError, match="lacks the scope 'users:read'"):
        client.user_info(ada)


def test_an_expired_rotating_token_is_refreshed_for_users_info(
        slack: SlackMock, crownguard_config: Any, isolated_host: Any) -> None:
    ada = slack.add_user("ada@example.com", "Ada Lovelace")
    settings = {"base_url": slack.base_url + "/api", **slack.enable_token_rotation()}
    config = crownguard_config({"slack": settings},
                               host=isolated_host(slack_plugin, name="slack"))
    slack.expire_tokens()
    ctx = ActionContext(run_id="r", step_id="s", attempt=1, idempotency_key="k",
                        connections=config.connections)
    assert answerer(ctx.client(SlackClient), ada) == Answerer("ada@example.com", (ada,))


def test_answerer_by_email_else_by_id_with_the_reason(slack: SlackMock,
                                                      client: SlackClient) -> None:
    ada = slack.add_user("ada@example.com", "Ada Lovelace")
    assert answerer(client, ada) == Answerer("ada@example.com", (ada,))
    gone = answerer(client, "U0NOBODY01")
    assert (gone.by, gone.aliases) == ("U0NOBODY01", ())
    assert gone.note is not None and "user_not_found" in gone.note
    slack.users[ada]["is_bot"] = True
    del slack.users[ada]["profile"]["email"]
    assert answerer(client, ada).note == f"{ada} is a bot or app user, which has no e-mail"
