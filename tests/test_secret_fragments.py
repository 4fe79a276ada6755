"""No fragment of a secret anywhere: text is redacted before it is cut, what a cut elsewhere
left of a secret is masked, and every log record goes through the redactors."""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

import pytest
from werkzeug import Request, Response

from crownguard.engine import HeaderAuth, MockServer, VendorClient, route
from crownguard.engine.config import Connections
from crownguard.engine.errors import VendorError
from crownguard.engine.secrets import (
    FRAGMENT,
    MASK,
    RedactingFilter,
    Redactor,
    install_log_redaction,
)

TOKEN = "Zq7Xw2Lp9Rk4Tm6Vn8Bc3Jd5Hf1Gs0Ya"


def fragments(secret: str, size: int = FRAGMENT) -> list[str]:
    return [secret[i:i + size] for i in range(len(secret) - size + 1)]


def assert_no_fragment(text: str, secret: str = TOKEN) -> None:
    found = [piece for piece in fragments(secret) if piece in text]
    assert found == [], f"fragments {found[:3]} of the secret in {text!r}"


class EchoVendor(MockServer):
    """A vendor whose error page echoes the request headers, as misconfigured proxies do."""

    def reset_state(self) -> None:
        self.padding = 0

    @route("GET", "/echo")
    def echo(self, request: Request) -> Response:
        page = ("<html><body>" + "x" * self.padding + "Authorization: "
                + request.headers.get("Authorization", "") + "</body></html>")
        return Response(page, status=502, content_type="text/html")

    @route("GET", "/echo-json")
    def echo_json(self, request: Request) -> Any:
        return self.json_response({"message": "x" * self.padding + "bad header "
                                   + request.headers.get("Authorization", "")}, 400)


class EchoClient(VendorClient):
    vendor = "echo"

    def make_auth(self) -> HeaderAuth:
        return HeaderAuth(TOKEN)


@pytest.fixture(scope="module")
def echo() -> Any:
    server = EchoVendor()
    server.start()
    yield server
    server.stop()


@pytest.mark.parametrize("path", ["echo", "echo-json"])
@pytest.mark.parametrize("padding", [0, 450, 460, 470, 475, 480, 490, 260, 270, 280, 290])
def test_a_vendor_page_echoing_the_token_leaves_no_fragment(echo: EchoVendor, path: str,
                                                            padding: int) -> None:
    echo.padding = padding
    connections = Connections({"echo": {"base_url": echo.base_url, "token": TOKEN}})
    connections.redactor.add(TOKEN)
    client = EchoClient(connections.get("echo"))
    with pytest.raises(VendorError) as caught:
        client.request("GET", path, operation="echo")
    error = caught.value
    assert_no_fragment(str(error))
    assert_no_fragment(repr(error.to_record()))
    assert_no_fragment(str(error.body))


@pytest.mark.parametrize("cut", range(FRAGMENT, len(TOKEN)))
def test_the_start_of_a_secret_left_by_a_cut_is_masked(cut: int) -> None:
    redactor = Redactor([TOKEN])
    text = "header: Bearer " + TOKEN[:cut]
    assert redactor.redact(text) == "header: Bearer " + MASK
    assert redactor.redact(text + "...") == "header: Bearer " + MASK + "..."
    assert redactor.redact(TOKEN[-cut:] + " was the rest") == MASK + " was the rest"


def test_short_pieces_and_unrelated_text_are_kept() -> None:
    redactor = Redactor([TOKEN])
    assert redactor.redact("ends with " + TOKEN[:FRAGMENT - 1]) == "ends with " + TOKEN[:7]
    assert redactor.redact("nothing secret here at all") == "nothing secret here at all"


def test_cut_redacts_before_cutting() -> None:
    redactor = Redactor([TOKEN])
    text = "y" * 20 + TOKEN + "z" * 20
    for limit in range(20, len(text)):
        assert_no_fragment(redactor.cut(text, limit))


def test_every_log_record_goes_through_the_redactors() -> None:
    redactor = Redactor()
    redactor.add(TOKEN)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("crownguard.test.fragments")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        install_log_redaction(logger)
        install_log_redaction(logger)  # once only
        assert sum(isinstance(f, RedactingFilter) for f in handler.filters) == 1
        logger.warning("GET /webhook?sig=%s HTTP/1.1 200", TOKEN)
        logger.warning("cut: %s", TOKEN[:20])
        try:
            raise RuntimeError(f"boom {TOKEN}")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    assert_no_fragment(stream.getvalue())
    assert "sig=***" in stream.getvalue()


def test_verbose_cli_logging_shows_no_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             echo: EchoVendor, capsys: Any,
                                             caplog: pytest.LogCaptureFixture) -> None:
    """`-vv` prints urllib3's request lines; a Teams webhook's `sig` is in them."""
    from crownguard.engine.cli import main

    (tmp_path / "c.yaml").write_text(
        "connections:\n  teams:\n    webhook_url: '${env:TEAMS_WEBHOOK}'\n")
    monkeypatch.setenv("TEAMS_WEBHOOK", f"{echo.base_url}/echo?api-version=1&sig={TOKEN}")
    (tmp_path / "p.yaml").write_text(
        "name: leak\nsteps:\n  - id: post\n    action: teams.send_message\n"
        "    with: {text: hello}\n")
    (tmp_path / "e.json").write_text("{}")
    caplog.set_level(logging.DEBUG)  # under pytest, -vv's basicConfig finds pytest's handler
    code = main(["-vv", "run", str(tmp_path / "p.yaml"), "--event",
                 str(tmp_path / "e.json"), "--config", str(tmp_path / "c.yaml")])
    out, err = capsys.readouterr()
    assert code == 1
    assert "/echo?api-version=1&sig=" in caplog.text  # urllib3 logged the request line
    assert_no_fragment(out + err + caplog.text)
