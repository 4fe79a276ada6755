"""email.send_nudge against a real SMTP server (aiosmtpd on loopback) with STARTTLS or
implicit TLS and AUTH; the received message is parsed and its headers, parts and recipients
checked. The TLS certificates come from a throwaway CA made at test time (trustme)."""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

trustme = pytest.importorskip("trustme")

import crownguard.plugins.email as email_plugin  # noqa: E402
from crownguard.engine import (  # noqa: E402
    AuthError,
    Config,
    ConflictError,
    InputError,
    NotFoundError,
    ServerError,
    TransportError,
)
from crownguard.plugins._nudge import render_nudge  # noqa: E402
from crownguard.plugins.email.actions import send_nudge  # noqa: E402
from crownguard.plugins.email.mock import SmtpSink  # noqa: E402

pytestmark = [
    # aiosmtpd's own: its deprecated Session.login_data, and AUTH over implicit TLS (see sink).
    pytest.mark.filterwarnings("ignore:Session.login_data:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning"),
]

USERS = {"soc-mailer": "s3cret-Passw0rd-for-smtp"}
NUDGE = {"to": "ada@example.com", "file_name": "llama-ft-q4.safetensors",
         "policy": "AI model handling policy", "destination": "a personal Google Drive",
         "employee_name": "Ada"}


@pytest.fixture(scope="module")
def ca() -> Any:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_tls(ca: Any) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture(scope="module")
def ca_file(ca: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture
def smtp_server(server_tls: ssl.SSLContext) -> Iterator[Callable[..., SmtpSink]]:
    """Start an SMTP server on loopback: smtp_server(security="starttls", users=..., ...)."""
    started: list[SmtpSink] = []

    def start(security: str = "starttls", **kwargs: Any) -> SmtpSink:
        kwargs.setdefault("users", USERS)
        sink = SmtpSink(security=security,
                        tls_context=server_tls if security != "none" else None, **kwargs)
        sink.start()
        started.append(sink)
        return sink

    yield start
    for sink in started:
        sink.stop()


@pytest.fixture
def host(isolated_host: Any) -> Any:
    return isolated_host(email_plugin, name="email")


@pytest.fixture
def make_config(crownguard_config: Any, host: Any) -> Callable[..., Config]:
    def make(settings: dict[str, Any], **more: Any) -> Config:
        return crownguard_config({"email": settings, **more}, host=host)

    return make


@pytest.fixture
def call(call_action: Callable[..., Any]) -> Callable[..., dict[str, Any]]:
    """send_nudge called the way the runner calls it (the step is `mail_nudge` unless told)."""

    def run(inputs: dict[str, Any], config: Config, *, step_id: str = "mail_nudge",
            run_id: str = "run-1") -> dict[str, Any]:
        output: dict[str, Any] = call_action(send_nudge, inputs, config, run_id=run_id,
                                             step_id=step_id)
        return output

    return run


# --- delivery ------------------------------------------------------------------------------------


def test_starttls_auth_delivers_a_text_and_html_nudge(smtp_server: Any, make_config: Any,
                                                      ca_file: Path, call: Any) -> None:
    sink = smtp_server("starttls")
    config = make_config({**sink.connection_settings(), "ca_file": str(ca_file)})
    out = call({**NUDGE, "cc": ["manager@example.com"], "reply_to": "soc@example.com"}, config,
               run_id="run-5")

    assert out == {"message_id": "<crownguard.key-run-5-mail_nudge@crownguard.example>",
                   "accepted": ["ada@example.com", "manager@example.com"], "refused": [],
                   "language": "en", "changed": True}
    [received] = sink.messages
    assert received.tls is True and received.login == "soc-mailer"
    assert received.mail_from == "soc@crownguard.example"
    assert received.rcpt_tos == ["ada@example.com", "manager@example.com"]
    message = received.message
    assert message["From"] == "Security team <soc@crownguard.example>"
    assert message["To"] == "ada@example.com" and message["Cc"] == "manager@example.com"
    assert message["Reply-To"] == "soc@example.com" and message["Bcc"] is None
    assert message["Subject"] == "A quick note about llama-ft-q4.safetensors"
    assert message["Message-ID"] == out["message_id"]
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Content-Language"] == "en"
    assert message["X-Crownguard-Run-Id"] == "run-5"
    assert message["X-Crownguard-Step-Id"] == "mail_nudge"
    assert message["Date"] is not None
    assert message.get_content_type() == "multipart/alternative"
    text, html = message.iter_parts()
    assert text.get_content_type() == "text/plain" and html.get_content_type() == "text/html"
    expected = render_nudge({k: v for k, v in NUDGE.items() if k != "to"})
    # On the wire lines end in CRLF (RFC 5322).
    assert text.get_content().replace("\r\n", "\n") == expected.text
    assert html.get_content().replace("\r\n", "\n") == expected.html
    assert "Hi Ada," in text.get_content() and "<strong>llama-ft-q4.safetensors</strong>" in \
        html.get_content()


def test_implicit_tls_in_french_with_an_answer_link(smtp_server: Any, make_config: Any,
                                                    ca_file: Path, call: Any) -> None:
    sink = smtp_server("tls")
    settings = {**sink.connection_settings(), "ca_file": str(ca_file)}
    config = make_config(settings)
    out = call({**NUDGE, "language": "fr-FR",
                "respond_url": "https://forms.example/answer?case=IR-7&lang=fr"}, config)

    assert out["language"] == "fr"
    [received] = sink.messages
    assert received.tls is True and received.login == "soc-mailer"
    message = received.message
    assert message["Subject"] == "Un mot rapide au sujet de llama-ft-q4.safetensors"
    assert message["Content-Language"] == "fr"
    text, html = message.iter_parts()
    assert text.get_content_charset() == "utf-8"
    assert "Vous pouvez répondre ici : https://forms.example/answer?case=IR-7&lang=fr" in \
        text.get_content()
    assert 'href="https://forms.example/answer?case=IR-7&amp;lang=fr"' in html.get_content()


def test_smtps_base_url(smtp_server: Any, make_config: Any, ca_file: Path, call: Any) -> None:
    sink = smtp_server("tls")
    settings = {k: v for k, v in sink.connection_settings().items()
                if k not in ("host", "port", "security")}
    config = make_config({**settings, "base_url": f"smtps://127.0.0.1:{sink.port}",
                          "ca_file": str(ca_file)})
    call(NUDGE, config)
    assert sink.messages[0].tls is True


def test_ca_as_pem_text_from_a_file_reference(smtp_server: Any, make_config: Any,
                                              ca_file: Path, call: Any) -> None:
    sink = smtp_server("starttls")
    config = make_config({**sink.connection_settings(), "ca_cert": f"${{file:{ca_file}}}"})
    call(NUDGE, config)
    assert len(sink.messages) == 1


def test_repeat_of_a_step_sends_once(smtp_server: Any, make_config: Any, ca_file: Path,
                                     call: Any) -> None:
    sink = smtp_server("starttls")
    config = make_config({**sink.connection_settings(), "ca_file": str(ca_file)})
    first = call(NUDGE, config)
    again = call(NUDGE, config)
    other = call(NUDGE, config, step_id="second_nudge")

    assert again == {**first, "changed": False} and other["changed"] is True
    assert other["message_id"] != first["message_id"]
    assert [m.message["Message-ID"] for m in sink.messages] == [first["message_id"],
                                                                other["message_id"]]


# --- TLS, AUTH and refusals ----------------------------------------------------------------------


def test_tls_is_verified_by_default(smtp_server: Any, make_config: Any, call: Any) -> None:
    sink = smtp_server("starttls")
    with pytest.raises(TransportError) as caught:
        call(NUDGE, make_config(sink.connection_settings()))
    assert "could not verify the TLS certificate of 127.0.0.1" in str(caught.value)
    assert "ca_file" in str(caught.value) and caught.value.retryable is False
    assert sink.messages == [] and sink.auth_attempts == []  # no password went out


def test_unverified_tls_only_when_asked(smtp_server: Any, make_config: Any, call: Any) -> None:
    sink = smtp_server("tls")
    call(NUDGE, make_config({**sink.connection_settings(), "verify_tls": False}))
    assert len(sink.messages) == 1


def test_wrong_password_is_a_clear_auth_error(smtp_server: Any, make_config: Any,
                                              ca_file: Path, call: Any) -> None:
    sink = smtp_server("starttls")
    config = make_config({**sink.connection_settings(), "ca_file": str(ca_file),
                          "password": "not-the-password-1234"})
    with pytest.raises(AuthError) as caught:
        call(NUDGE, config)
    error = caught.value
    assert (error.vendor, error.operation) == ("email", "SMTP AUTH")
    assert "535" in str(error) and "check username and password" in str(error)
    assert "not-the-password-1234" not in str(error)
    # smtplib tries each mechanism the server offers (PLAIN, LOGIN): all were refused.
    assert sink.auth_attempts and all(a == ("soc-mailer", False) for a in sink.auth_attempts)
    assert sink.messages == []


def test_every_recipient_refused_is_not_found(smtp_server: Any, make_config: Any,
                                              ca_file: Path, call: Any) -> None:
    sink = smtp_server("starttls", refuse={"ada@example.com"})
    config = make_config({**sink.connection_settings(), "ca_file": str(ca_file)})
    with pytest.raises(NotFoundError) as caught:
        call(NUDGE, config)
    assert "550 5.1.1" in str(caught.value) and "ada@example.com" in str(caught.value)
    assert caught.value.retryable is False


def test_some_recipients_refused(smtp_server: Any, make_config: Any, ca_file: Path,
                                 call: Any) -> None:
    sink = smtp_server("starttls", refuse={"gone@example.com"})
    config = make_config({**sink.connection_settings(), "ca_file": str(ca_file)})
    out = call({**NUDGE, "cc": ["gone@example.com"]}, config)

    assert out["accepted"] == ["ada@example.com"]
    [refused] = out["refused"]
    assert refused["address"] == "gone@example.com" and refused["reply"].startswith("550 5.1.1")
    assert sink.messages[0].rcpt_tos == ["ada@example.com"]


def test_permanent_refusal_of_the_message(smtp_server: Any, make_config: Any,
                                          ca_file: Path, call: Any) -> None:
    sink = smtp_server("starttls")
    sink.defer("554 5.7.1 Message rejected as spam")
    config = make_config({**sink.connection_settings(), "ca_file": str(ca_file)})
    with pytest.raises(ConflictError, match="554 5.7.1") as caught:
        call(NUDGE, config)
    assert caught.value.retryable is False


def test_transient_refusal_is_retryable(smtp_server: Any, make_config: Any,
                                        ca_file: Path, call: Any) -> None:
    sink = smtp_server("starttls")
    sink.defer()
    config = make_config({**sink.connection_settings(), "ca_file": str(ca_file)})
    with pytest.raises(ServerError, match="451 4.3.0") as caught:
        call(NUDGE, config)
    assert caught.value.retryable is True


def test_server_without_starttls(smtp_server: Any, make_config: Any, call: Any) -> None:
    sink = smtp_server("none", users={})
    settings = {**sink.connection_settings(), "security": "starttls"}
    with pytest.raises(ConflictError, match="does not offer STARTTLS"):
        call(NUDGE, make_config(settings))


def test_implicit_tls_against_a_plain_server(smtp_server: Any, make_config: Any,
                                             ca_file: Path, call: Any) -> None:
    sink = smtp_server("none", users={})
    settings = {**sink.connection_settings(), "security": "tls", "ca_file": str(ca_file)}
    with pytest.raises(TransportError, match="check security and port"):
        call(NUDGE, make_config(settings))


def test_credentials_are_never_sent_without_tls(smtp_server: Any, make_config: Any,
                                                call: Any) -> None:
    sink = smtp_server("none", users={})
    settings = {**sink.connection_settings(), "username": "u", "password": "p"}
    with pytest.raises(Exception, match="refusing to send SMTP credentials without TLS"):
        call(NUDGE, make_config(settings))
    assert sink.messages == []


def test_plain_smtp_without_auth_when_asked(smtp_server: Any, make_config: Any, call: Any) -> None:
    sink = smtp_server("none", users={})
    call(NUDGE, make_config(sink.connection_settings()))
    assert sink.messages[0].tls is False and sink.messages[0].login is None


def test_header_injection_in_a_recipient_is_refused() -> None:
    with pytest.raises(InputError):
        send_nudge.validate_inputs({**NUDGE, "to": "ada@example.com\r\nBcc: x@evil.example"})
    with pytest.raises(InputError):
        send_nudge.validate_inputs({**NUDGE, "to": "Ada <ada@example.com>, x@evil.example"})


def test_nobody_listening_is_a_retryable_transport_error(make_config: Any, call: Any) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = make_config({"host": "127.0.0.1", "port": port, "security": "none",
                          "from_address": "soc@crownguard.example", "timeout_seconds": 2})
    with pytest.raises(TransportError, match=f"127.0.0.1:{port}") as caught:
        call(NUDGE, config)
    assert caught.value.retryable is True


# --- playbooks -----------------------------------------------------------------------------------

PLAYBOOK = """
name: mail-nudge
steps:
  - id: mail_nudge
    action: email.send_nudge
    retry: {max_attempts: 3, backoff_seconds: 0.01}
    with:
      to: "${{ event.actor.email }}"
      employee_name: "${{ event.actor.first_name }}"
      language: "${{ event.actor.language }}"
      file_name: "${{ event.file.name }}"
      destination: "${{ event.destination }}"
      policy: AI model handling policy
      contact: "#ask-security"
"""
EVENT = {"actor": {"email": "jonas@example.com", "first_name": "Jonas", "language": "de"},
         "file": {"name": "bert-finetuned.bin"}, "destination": None}


def test_playbook_retries_a_deferral_and_delivers_in_german(smtp_server: Any, make_config: Any,
                                                            ca_file: Path, host: Any,
                                                            run_playbook: Any) -> None:
    sink = smtp_server("starttls")
    sink.defer()
    config = make_config({**sink.connection_settings(), "ca_file": str(ca_file)})
    record = run_playbook(PLAYBOOK, EVENT, config=config, host=host)

    step = record["steps"]["mail_nudge"]
    assert record["status"] == "succeeded" and step["attempts"] == 2
    assert step["output"]["language"] == "de"
    [received] = sink.messages
    assert received.rcpt_tos == ["jonas@example.com"]
    text, _ = received.message.iter_parts()
    assert text.get_content().startswith("Hallo Jonas,")
    assert "seinen üblichen Ort verlassen hat" in text.get_content()  # no destination known
    assert "Fragen? #ask-security hilft gern weiter." in text.get_content()


def test_no_secret_in_run_records(smtp_server: Any, make_config: Any, ca_file: Path,
                                  host: Any, run_playbook: Any) -> None:
    sink = smtp_server("starttls")
    password = "wr0ng-but-still-secret-pw"
    config = make_config({**sink.connection_settings(), "ca_file": str(ca_file),
                          "password": password})
    events: list[dict[str, Any]] = []
    record = run_playbook(PLAYBOOK, EVENT, config=config, host=host, journal=events.append)

    step = record["steps"]["mail_nudge"]
    assert record["status"] == "failed" and step["attempts"] == 1  # AuthError: not retried
    assert "SMTP AUTH" in step["error"] and "535" in step["error"]
    import base64

    text = json.dumps([record, events])
    plain_auth = base64.b64encode(f"\0soc-mailer\0{password}".encode()).decode()
    for secret in (password, plain_auth, USERS["soc-mailer"]):
        assert secret not in text


FALLBACK = """
name: nudge-by-slack-or-mail
steps:
  - id: slack_nudge
    action: slack.send_nudge
    with: {email: "${{ event.actor.email }}", file_name: "${{ event.file.name }}",
           policy: AI model handling policy, language: "${{ event.actor.language }}"}
  - id: mail_nudge
    action: email.send_nudge
    needs: [slack_nudge]
    when: failure
    with: {to: "${{ event.actor.email }}", file_name: "${{ event.file.name }}",
           policy: AI model handling policy, language: "${{ event.actor.language }}"}
"""


def test_mail_is_the_fallback_when_slack_does_not_know_the_employee(
        smtp_server: Any, ca_file: Path, isolated_host: Any, crownguard_config: Any,
        mock_server: Any, run_playbook: Any) -> None:
    import crownguard.plugins.slack as slack_plugin
    from crownguard.plugins.slack.mock import SlackMock

    slack = mock_server(SlackMock)
    sink = smtp_server("starttls")
    host = isolated_host(slack_plugin, email_plugin)
    config = crownguard_config({"slack": slack.connection_settings(),
                                "email": {**sink.connection_settings(), "ca_file": str(ca_file)}},
                               host=host)
    record = run_playbook(FALLBACK, EVENT, config=config, host=host)

    steps = record["steps"]
    assert steps["slack_nudge"]["status"] == "failed"
    assert "users_not_found" in steps["slack_nudge"]["error"]
    assert steps["mail_nudge"]["status"] == "succeeded"
    assert sink.messages[0].message["Subject"] == "Ein kurzer Hinweis zu bert-finetuned.bin"


def test_event_values_are_escaped_in_the_html_part(smtp_server: Any, make_config: Any,
                                                   ca_file: Path, call: Any) -> None:
    sink = smtp_server("starttls")
    config = make_config({**sink.connection_settings(), "ca_file": str(ca_file)})
    planted = "<script>alert(1)</script><a href=\"https://evil.example\">x</a>.bin"
    call({**NUDGE, "file_name": planted}, config)
    [received] = sink.messages
    _, html = received.message.iter_parts()
    body = html.get_content()
    assert "<script>" not in body and 'href="https://evil.example"' not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
