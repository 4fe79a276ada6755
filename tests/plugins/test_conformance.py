"""Every vendor plugin with a mock fails the same documented ways, checked once over all of them.

A refused credential is an AuthError that is not retried; a 429 waits at least the vendor's
Retry-After; a 5xx is retried, and fails once the retry budget is spent; a body that is not
JSON is a BadResponse, not retried; a vendor that does not answer in time is a retryable
TransportError; an expired OAuth token is refreshed once inside the call, and a 401 is never
re-sent more than once (a static credential not at all); no secret, and no credential the
plugin put on the wire, reaches a run record, the journal, an error or the log.

Each row of VENDORS says which action to call with which inputs, which path that action calls
(faults are injected there, with the mocks' `inject()`), what the vendor says when it refuses
a credential, and where OAuth tokens come from. A vendor with several kinds of credential gets
a row per kind. Runs go through the public plugin host (entry points) and the runner, with
every secret given as `${env:...}` as a deployment would. What only one vendor does (its own
rate-limit headers, polling, paging, permissions) stays in that vendor's test module.
"""

from __future__ import annotations

import json
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from crownguard.engine import Config
from crownguard.engine.config import config_from_mapping
from crownguard.engine.plugins import PluginHost

ALICE = "alice.chen@acme.example"
NUDGE = {"email": "ada@example.com", "file_name": "llama-ft-q4.safetensors",
         "policy": "AI model handling policy"}
MLFLOW_FILES = {"weights.safetensors": b"\x00weights" * 10, "config.json": b'{"layers": 2}'}

# the behaviours a row can take part in
REFUSED = "refused credential"
RATE_LIMIT = "429"
SERVER_ERROR = "5xx"
MALFORMED = "malformed body"
TIMEOUT = "timeout"
UNAUTHORISED = "401"
EXPIRY = "token expiry"
NO_LEAK = "no secret leaked"
HTTP = frozenset({REFUSED, RATE_LIMIT, SERVER_ERROR, MALFORMED, TIMEOUT, UNAUTHORISED, NO_LEAK})


@dataclass(frozen=True)
class Vendor:
    """How to drive one vendor plugin against its mock."""

    id: str
    mock: str                    # the mock server's name (also its connection's, mostly)
    action: str
    inputs: dict[str, Any]
    path: str                    # a path the action calls (a template may hold {name})
    refused: tuple[str, ...] = ()  # the failed operation, the vendor's words of refusal
    method: str | None = None
    # Where OAuth tokens are fetched ("token_url": the path of the connection's token_url);
    # None: a static credential, which cannot be refreshed.
    token_path: str | None = None
    token_given: bool = False    # the connection holds the first token (it only refreshes)
    secret: str | None = None    # the setting to spoil (default: the first secret it has)
    mock_kwargs: dict[str, Any] = field(default_factory=dict)
    settings: Callable[[Any], dict[str, Any]] | None = None  # default: connection_settings()
    prepare: Callable[[Any], dict[str, Any] | None] | None = None  # seed; input overrides
    retry_after: float = 0.3
    min_wait: float | None = None  # the least retry_in a 429 must give (default retry_after)
    also_secret: Callable[[Any], list[str]] | None = None  # parts of a secret, also kept out
    timeout_input: str | None = None  # a timeout the action takes (else timeout_seconds)
    only: frozenset[str] | None = None  # the behaviours that apply (default: all HTTP ones)

    @property
    def oauth(self) -> bool:
        return self.token_path is not None

    @property
    def behaviours(self) -> frozenset[str]:
        if self.only is not None:
            return self.only
        return HTTP | {EXPIRY} if self.oauth else HTTP


def _slack_user(mock: Any) -> None:
    mock.add_user("ada@example.com", "Ada Lovelace")


def _mlflow_model(mock: Any) -> None:
    mock.add_version("fraud", MLFLOW_FILES, aliases=("champion",))


def _hub_repo(mock: Any) -> None:
    mock.add_repo("acme-ml/fraud-llm", files=("config.json", "model.safetensors"))


def _jira_issue(mock: Any) -> dict[str, Any]:
    return {"issue": mock.add_issue("existing")}


def _slack_rotating(mock: Any) -> dict[str, Any]:
    return {**mock.connection_settings(), **mock.enable_token_rotation()}


def _webhook(mock: Any) -> dict[str, Any]:
    return {"method": "POST", "url": f"{mock.base_url}/hooks/soc", "json": {"alert": 1}}


VENDORS = [
    Vendor("falcon", "falcon", "falcon.contain_host",
           {"device_id": "4e1f0c3a9b7d4c21a5f08e6d2b3c7a91"}, "/devices/entities/devices/v2",
           ("falcon get OAuth2 token (HTTP 403)", "the API client id or secret was refused"),
           token_path="/oauth2/token"),
    Vendor("defender", "defender", "defender.isolate_machine",
           {"machine_id": "1e5d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d"}, "/api/machines/{id}",
           ("defender get OAuth2 token (HTTP 401)", "Entra refused the app's credentials",
            "AADSTS7000215"), method="GET", token_path="token_url"),
    Vendor("incydr", "incydr", "incydr.get_watchlists_for_user",
           {"user": "dana.whitfield@example.com"}, "/v2/watchlists",
           ("incydr get OAuth2 token (HTTP 401)", "invalid API client id or secret"),
           token_path="/v1/oauth"),
    Vendor("entra", "entra", "entra.get_user", {"user": ALICE}, "/v1.0/users/{id}",
           ("entra get OAuth2 token (HTTP 401)", "AADSTS7000215: Invalid client secret provided"),
           token_path="token_url"),
    Vendor("okta", "okta", "okta.suspend_user", {"user": ALICE}, "/api/v1/users/{id}",
           ("okta suspend user (HTTP 401)", "Invalid token provided [E0000011]"), method="GET",
           # Okta's wait comes from X-Rate-Limit-Reset, whole epoch seconds.
           retry_after=1, min_wait=0.9),
    Vendor("scim", "scim", "scim.get_user", {"user": ALICE}, "/scim/v2/Users",
           ("scim get user (HTTP 401)", "Authentication failure")),
    Vendor("servicenow", "servicenow", "servicenow.find_records",
           {"table": "incident", "query": "active=true"}, "/api/now/table/incident",
           ("servicenow find incident records (HTTP 401)",
            "User Not Authenticated: Required to provide Auth information")),
    Vendor("servicenow-oauth", "servicenow", "servicenow.find_records",
           {"table": "incident", "query": "active=true"}, "/api/now/table/incident",
           ("servicenow get OAuth token (HTTP 401)", "access_denied"), token_path="/oauth_token.do",
           secret="client_secret",
           settings=lambda mock: mock.connection_settings("oauth")),
    Vendor("jira", "jira", "jira.get_issue", {}, "/rest/api/3/issue/{key}",
           ("jira get issue (HTTP 401)", "Client must be authenticated to access this resource"),
           prepare=_jira_issue),
    Vendor("slack", "slack", "slack.send_nudge", NUDGE, "/api/users.lookupByEmail",
           ("slack users.lookupByEmail (HTTP 200)", "invalid_auth"), prepare=_slack_user),
    Vendor("slack-rotating", "slack", "slack.send_nudge", NUDGE, "/api/users.lookupByEmail",
           ("slack users.lookupByEmail (HTTP 200)", "invalid_auth"),
           token_path="/api/oauth.v2.access", token_given=True,
           prepare=_slack_user,
           settings=_slack_rotating),
    Vendor("teams", "teams", "teams.send_message", {"text": "Model left the building"},
           "/workflows/{id}/triggers/manual/paths/invoke",
           ("teams post to Workflows webhook (HTTP 401)", "DirectApiInvalidAuthorizationSignature"),
           also_secret=lambda mock: [mock.sig],
           # A Workflows webhook answers 202 with no body: nothing to parse.
           only=HTTP - {MALFORMED}),
    Vendor("mlflow", "mlflow", "mlflow.get_model_version", {"name": "fraud", "version": "1"},
           "/api/2.0/mlflow/model-versions/get",
           ("mlflow get model version (HTTP 401)", "You are not authenticated"),
           mock_kwargs={"auth": "basic"}, prepare=_mlflow_model),
    Vendor("mlflow-oauth", "mlflow", "mlflow.get_model_version",
           {"name": "fraud", "version": "1"}, "/api/2.0/mlflow/model-versions/get",
           ("mlflow get OAuth2 token (HTTP 401)", "Client authentication failed"),
           token_path="/oidc/v1/token",
           secret="client_secret", mock_kwargs={"auth": "oauth"}, prepare=_mlflow_model),
    Vendor("huggingface", "huggingface", "huggingface.get_repo",
           {"repo_id": "acme-ml/fraud-llm"}, "/api/models/acme-ml/fraud-llm",
           ("huggingface get repo (HTTP 401)", "Invalid credentials in Authorization header"),
           prepare=_hub_repo),
    # core.http_request has no credential and passes any body through; it fails, and is
    # retried, on statuses and on time.
    Vendor("core", "webhook", "core.http_request", {}, "/hooks/soc", prepare=_webhook,
           timeout_input="timeout", only=frozenset({RATE_LIMIT, SERVER_ERROR, TIMEOUT})),
    # SMTP has no inject(): its refusals are replies (test_email.py); AUTH is refused alike.
    Vendor("email", "email", "email.send_nudge",
           {"to": "ada@example.com", "file_name": "llama-ft-q4.safetensors",
            "policy": "AI model handling policy"}, "",
           ("email SMTP AUTH", "535 5.7.8"), only=frozenset({REFUSED})),
]


def rows(behaviour: str) -> list[Any]:
    return [pytest.param(v, id=v.id) for v in VENDORS if behaviour in v.behaviours]


# --- the harness ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def host() -> PluginHost:
    return PluginHost.from_entry_points()


@pytest.fixture(scope="module")
def smtp_tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, Path]:
    """A throwaway CA (trustme): the server's TLS context and the CA file a client trusts."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return context, path


@dataclass
class Harness:
    """One vendor's mock, a connections file for it, and one-step runs of its action."""

    vendor: Vendor
    mock: Any
    host: PluginHost
    base_settings: dict[str, Any]
    inputs: dict[str, Any]
    run_step: Callable[..., dict[str, Any]]
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def connection(self) -> str:
        return self.host.mock_servers[self.vendor.mock].connection_name

    @property
    def secrets(self) -> dict[str, str]:
        names = self.host.connection_types[self.connection].secrets
        return {k: str(v) for k, v in self.base_settings.items() if k in names}

    def config(self, **overrides: Any) -> Config:
        """The connections file, every secret by `${env:...}` reference."""
        name = self.connection
        settings = {**self.base_settings, **overrides}
        env: dict[str, str] = {}
        for key in self.secrets:
            if key in settings:
                variable = f"CG_{name}_{key}".upper()
                env[variable] = str(settings[key])
                settings[key] = f"${{env:{variable}}}"
        return config_from_mapping({"connections": {name: settings}},
                                   self.host.connection_types, env)

    def run(self, config: Config | None = None, *, attempts: int = 3,
            inputs: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run the action as a one-step playbook; the step's record (with the run's)."""
        return self.run_step(self.vendor.action, inputs or self.inputs,
                             config=config or self.config(), host=self.host, events=self.events,
                             attempts=attempts)

    def inject(self, kind: str, **kwargs: Any) -> None:
        self.mock.inject(kind, path=self.vendor.path, method=self.vendor.method, **kwargs)

    def failed_attempts(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == "attempt_failed"]

    def calls_to_path(self) -> int:
        return len(self.mock.calls_to(self.vendor.method, self.vendor.path))

    def token_calls(self) -> int:
        path = self.vendor.token_path
        if path == "token_url":
            path = urlsplit(self.base_settings["token_url"]).path
        return len(self.mock.calls_to("POST", path))

    def on_the_wire(self) -> list[str]:
        """Every credential the plugin sent: Authorization values without their scheme."""
        found = set()
        for call in self.mock.calls:
            value = call.headers.get("Authorization", "")
            if value:
                found.add(value.split(" ", 1)[-1])
        return sorted(found)


@pytest.fixture
def harness(request: pytest.FixtureRequest, host: PluginHost, mock_server: Callable[..., Any],
            run_step: Callable[..., dict[str, Any]]) -> Harness:
    vendor: Vendor = request.param
    kwargs = dict(vendor.mock_kwargs)
    extra: dict[str, Any] = {}
    if vendor.mock == "email":
        context, ca_file = request.getfixturevalue("smtp_tls")
        kwargs.update(security="starttls", tls_context=context,
                      users={"soc-mailer": "s3cret-Passw0rd-for-smtp"})
        extra["ca_file"] = str(ca_file)
    mock = mock_server(vendor.mock, **kwargs)
    inputs = {**vendor.inputs, **((vendor.prepare(mock) if vendor.prepare else None) or {})}
    settings = {**(vendor.settings(mock) if vendor.settings else mock.connection_settings()),
                **extra}
    return Harness(vendor, mock, host, settings, inputs, run_step)


def spoilt(value: str) -> str:
    return value[:-4] + ("WXYZ" if not value.endswith("WXYZ") else "ABCD")


def echoing(body: Any, text: str) -> Any:
    """The vendor's error body with every text in it replaced by `text` (an echoing gateway)."""
    if isinstance(body, dict):
        return {k: echoing(v, text) for k, v in body.items()}
    if isinstance(body, list):
        return [echoing(v, text) for v in body]
    return text if isinstance(body, str) else body


# --- the behaviours ------------------------------------------------------------------------------


@pytest.mark.parametrize("harness", rows(REFUSED), indirect=True)
def test_a_refused_credential_is_an_auth_error_and_not_retried(harness: Harness) -> None:
    vendor = harness.vendor
    key = vendor.secret or next(iter(harness.secrets))
    wrong = spoilt(harness.secrets[key])
    step = harness.run(harness.config(**{key: wrong}))

    assert step["status"] == "failed" and step["attempts"] == 1
    [failed] = harness.failed_attempts()
    assert failed["error_type"] == "AuthError" and failed["retryable"] is False
    for words in vendor.refused:
        assert words in step["error"]
    assert harness.calls_to_path() <= 1  # no blind re-send
    text = json.dumps([step, harness.events])
    assert wrong not in text and harness.secrets[key] not in text


@pytest.mark.parametrize("harness", rows(RATE_LIMIT), indirect=True)
def test_a_429_waits_at_least_the_vendors_retry_after(harness: Harness) -> None:
    vendor = harness.vendor
    harness.inject("status", status=429, retry_after=vendor.retry_after)
    step = harness.run()

    assert step["status"] == "succeeded", step["error"]
    assert step["attempts"] == 2
    [failed] = harness.failed_attempts()
    assert failed["error_type"] == "RateLimited" and "(HTTP 429)" in failed["error"]
    # The step's own backoff is 0.01 s: the wait is the vendor's.
    assert failed["retry_in"] >= (vendor.min_wait or vendor.retry_after)


@pytest.mark.parametrize("harness", rows(SERVER_ERROR), indirect=True)
def test_a_5xx_is_retried(harness: Harness) -> None:
    harness.inject("status", status=503)
    step = harness.run()

    assert step["status"] == "succeeded", step["error"]
    assert step["attempts"] == 2
    assert [f["error_type"] for f in harness.failed_attempts()] == ["ServerError"]


@pytest.mark.parametrize("harness", rows(SERVER_ERROR), indirect=True)
def test_a_persistent_5xx_fails_once_the_retry_budget_is_spent(harness: Harness) -> None:
    harness.inject("status", status=500, times=None)
    step = harness.run()

    assert step["status"] == "failed" and step["attempts"] == 3
    assert "(HTTP 500)" in step["error"] and "Traceback" not in step["error"]
    assert {f["error_type"] for f in harness.failed_attempts()} == {"ServerError"}


@pytest.mark.parametrize("harness", rows(MALFORMED), indirect=True)
def test_a_body_that_is_not_json_is_a_bad_response_not_retried(harness: Harness) -> None:
    harness.inject("malformed", times=None)
    step = harness.run()

    assert step["status"] == "failed" and step["attempts"] == 1
    assert "(HTTP 200)" in step["error"]
    assert step["error"].endswith("the vendor's answer is not valid JSON")
    [failed] = harness.failed_attempts()
    assert failed["error_type"] == "BadResponse" and failed["retryable"] is False


@pytest.mark.parametrize("harness", rows(TIMEOUT), indirect=True)
def test_a_vendor_that_does_not_answer_in_time_is_a_retryable_transport_error(
        harness: Harness) -> None:
    vendor = harness.vendor
    # The mock answers after 2 s, the plugin waits 0.5 s: room for a loaded machine.
    harness.inject("timeout", seconds=2)
    if vendor.timeout_input:
        step = harness.run(inputs={**harness.inputs, vendor.timeout_input: 0.5})
    else:
        step = harness.run(harness.config(timeout_seconds=0.5))

    assert step["status"] == "succeeded", step["error"]
    assert step["attempts"] == 2
    [failed] = harness.failed_attempts()
    assert failed["error_type"] == "TransportError" and failed["retryable"] is True
    assert "timed out" in failed["error"]


@pytest.mark.parametrize("harness", rows(EXPIRY), indirect=True)
def test_an_expired_token_is_refreshed_once_inside_the_call(harness: Harness) -> None:
    config = harness.config()  # one connection: its token is cached between the runs
    assert harness.run(config)["status"] == "succeeded"
    fetched = harness.token_calls()
    harness.mock.expire_tokens()  # the token runs out between two steps
    step = harness.run(config)

    assert step["status"] == "succeeded", step["error"]
    assert step["attempts"] == 1  # the refresh is not a step retry
    assert harness.token_calls() == fetched + 1
    bearers = {c.headers.get("Authorization") for c in harness.mock.calls_to(
        harness.vendor.method, harness.vendor.path)}
    assert len(bearers) == 2  # the expired token, then the new one


@pytest.mark.parametrize("harness", rows(UNAUTHORISED), indirect=True)
def test_a_401_is_re_sent_once_after_a_refresh_and_never_retried(harness: Harness) -> None:
    vendor = harness.vendor
    harness.inject("status", status=401, times=None)
    step = harness.run()

    assert step["status"] == "failed" and step["attempts"] == 1
    assert "(HTTP 401)" in step["error"]
    [failed] = harness.failed_attempts()
    assert failed["error_type"] == "AuthError"
    # An OAuth token is fetched anew once and the request re-sent once; a static credential
    # cannot be refreshed, so the request is not re-sent at all.
    assert harness.calls_to_path() == (2 if vendor.oauth else 1)
    if vendor.oauth:
        assert harness.token_calls() == (1 if vendor.token_given else 2)


@pytest.mark.parametrize("harness", rows(NO_LEAK), indirect=True)
def test_no_secret_reaches_records_the_journal_errors_or_the_log(
        harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    config = harness.config()
    ok = harness.run(config)
    assert ok["status"] == "succeeded", ok["error"]
    secrets = [*harness.secrets.values(), *harness.on_the_wire(),
               *(harness.vendor.also_secret(harness.mock) if harness.vendor.also_secret else [])]
    assert secrets
    # A vendor (or a gateway) that echoes the credentials back in its error body.
    echo = f"bad credentials {' '.join(secrets)}"
    harness.inject("status", status=400, times=None,
                   body=echoing(harness.mock.error_body(400), echo))
    failed = harness.run(config)

    assert failed["status"] == "failed"
    assert "***" in failed["error"]
    logged = [r.getMessage() for r in caplog.records]
    text = json.dumps([ok, failed, harness.events, logged], default=str)
    for secret in secrets:
        at = text.find(secret)
        assert at < 0, f"a secret leaked: ...{text[max(0, at - 200):at + 40]}"


def test_every_vendor_plugin_with_a_mock_has_a_row(host: PluginHost) -> None:
    covered = {v.mock for v in VENDORS}
    assert set(host.mock_servers) == covered
