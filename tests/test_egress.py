"""Connections inside a company network (engine/egress.py): a private CA (`ca_file`), the OS
trust store, a forward proxy with credentials, the environment's proxy only with
`trust_env: true`, client certificates, and the load-time checks, against local servers with
throwaway certificates."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from egress_fixtures import ForwardProxy, serve_tls
from werkzeug import Request, Response

from crownguard.engine import (
    BadResponse,
    ConnectionType,
    HostNotAllowed,
    MockServer,
    SpecError,
    TransportError,
    VendorClient,
    connection_schema,
    route,
)
from crownguard.engine.config import config_from_mapping, load_config

VENDOR_NAME = "api.vendor.example"  # resolvable only by the proxy
TYPES = {"plain": ConnectionType("plain", connection_schema({}))}


class Pong(MockServer):
    vendor = "pong"

    @route("GET", "/ping")
    def ping(self, request: Request) -> Response:
        return self.json_response({"pong": True, "host": request.host})


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("ca") / "corp-root.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
def tls_pong(ca: trustme.CA) -> Iterator[Pong]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1", VENDOR_NAME).configure_cert(context)
    mock = serve_tls(Pong(), context)
    yield mock
    mock.stop()


@pytest.fixture
def pong() -> Iterator[Pong]:
    with Pong() as mock:
        yield mock


def client(settings: dict[str, Any], env: dict[str, str] | None = None) -> VendorClient:
    config = config_from_mapping({"connections": {"plain": settings}}, TYPES, env or {})
    return VendorClient(config.connections.get("plain"))


def ping(vendor: VendorClient) -> Any:
    return vendor.request_json("GET", "/ping", operation="ping")


# a private CA ------------------------------------------------------------------------------------


def test_a_private_ca_fails_without_ca_file_and_works_with_it(tls_pong: Pong,
                                                              ca_file: str) -> None:
    url = f"https://localhost:{tls_pong.port}"
    with pytest.raises(TransportError) as refused:
        ping(client({"base_url": url}))
    message = str(refused.value)
    assert "could not verify the TLS certificate of localhost" in message
    assert "CERTIFICATE_VERIFY_FAILED" in message and "ca_file" in message
    assert ping(client({"base_url": url, "ca_file": ca_file}))["pong"] is True


def test_the_os_trust_store_does_not_know_a_private_ca_but_takes_ca_file_beside_it(
        tls_pong: Pong, ca_file: str) -> None:
    url = f"https://localhost:{tls_pong.port}"
    with pytest.raises(TransportError, match="could not verify"):
        ping(client({"base_url": url, "trust_store": "system"}))
    assert ping(client({"base_url": url, "trust_store": "system",
                        "ca_file": ca_file}))["pong"] is True


def test_ca_file_is_checked_when_the_file_is_loaded(tmp_path: Path, ca_file: str) -> None:
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "root.pem").write_text(Path(ca_file).read_text())
    (tmp_path / "not-pem.crt").write_bytes(b"\x30\x82\x01\x0a binary DER")
    (tmp_path / "bad.pem").write_text("-----BEGIN CERTIFICATE-----\nnot base64\n"
                                      "-----END CERTIFICATE-----\n")
    file = tmp_path / "connections.yaml"
    file.write_text("connections:\n"
                    "  good: {type: plain, base_url: 'https://x.example', ca_file: certs/root.pem}\n"
                    "  gone: {type: plain, base_url: 'https://x.example', ca_file: missing.pem}\n"
                    "  der: {type: plain, base_url: 'https://x.example', ca_file: not-pem.crt}\n"
                    "  junk: {type: plain, base_url: 'https://x.example', ca_file: bad.pem}\n")
    with pytest.raises(SpecError) as failed:
        load_config(file, TYPES)
    text = str(failed.value)
    assert "connections.gone.ca_file: cannot read" in text and "missing.pem" in text
    assert "connections.der.ca_file" in text and "is not PEM" in text
    assert "connections.junk.ca_file" in text and "holds no PEM certificate" in text
    assert "connections.good" not in text
    file.write_text("connections:\n"
                    "  good: {type: plain, base_url: 'https://x.example', ca_file: certs/root.pem}\n")
    loaded = load_config(file, TYPES).connections.get("good")
    assert loaded.settings["ca_file"] == str(tmp_path / "certs" / "root.pem")


# a forward proxy ---------------------------------------------------------------------------------


def test_with_a_proxy_https_goes_through_it_with_connect(tls_pong: Pong, ca_file: str) -> None:
    url = f"https://{VENDOR_NAME}:{tls_pong.port}"
    with ForwardProxy({VENDOR_NAME: "127.0.0.1"}) as proxy:
        answer = ping(client({"base_url": url, "ca_file": ca_file, "proxy": proxy.url}))
        assert answer == {"pong": True, "host": f"{VENDOR_NAME}:{tls_pong.port}"}
        assert proxy.seen == [f"CONNECT {VENDOR_NAME}:{tls_pong.port}"]


def test_without_a_proxy_nothing_goes_through_it(tls_pong: Pong, ca_file: str) -> None:
    with ForwardProxy({VENDOR_NAME: "127.0.0.1"}) as proxy:
        with pytest.raises(TransportError, match=f"could not reach {VENDOR_NAME}"):
            ping(client({"base_url": f"https://{VENDOR_NAME}:{tls_pong.port}",
                         "ca_file": ca_file}))
        assert ping(client({"base_url": f"https://localhost:{tls_pong.port}",
                            "ca_file": ca_file}))["pong"] is True
        assert proxy.seen == []


def test_plain_http_goes_through_the_proxy_in_absolute_form(pong: Pong) -> None:
    with ForwardProxy({VENDOR_NAME: "127.0.0.1"}) as proxy:
        url = f"http://{VENDOR_NAME}:{pong.port}"
        assert ping(client({"base_url": url, "proxy": proxy.url}))["pong"] is True
        assert proxy.seen == [f"GET {url}/ping"]


def test_the_egress_rules_still_apply_to_the_target_behind_a_proxy(pong: Pong) -> None:
    with ForwardProxy({VENDOR_NAME: "127.0.0.1", "other.example": "127.0.0.1"}) as proxy:
        vendor = client({"base_url": f"http://{VENDOR_NAME}:{pong.port}", "proxy": proxy.url})
        with pytest.raises(HostNotAllowed, match="not a host of the 'plain' connection"):
            vendor.send_raw("GET", f"http://other.example:{pong.port}/ping", operation="ping")
        with pytest.raises(BadResponse, match="another host"):
            vendor.url(f"http://other.example:{pong.port}/ping")
        # The proxy is a way there, not a destination: it is no host of the connection.
        with pytest.raises(HostNotAllowed):
            vendor.send_raw("GET", f"{proxy.url}/ping", operation="ping")
        assert proxy.seen == []


def test_proxy_credentials_are_sent_and_never_shown(tls_pong: Pong, ca_file: str,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    password = "pr0xy-Pa55word-77"
    env = {"PROXY_USER": "svc-soar", "PROXY_PASSWORD": password}
    url = f"https://{VENDOR_NAME}:{tls_pong.port}"
    caplog.set_level(logging.DEBUG)
    with ForwardProxy({VENDOR_NAME: "127.0.0.1"}, credentials=f"svc-soar:{password}") as proxy:
        settings = {"base_url": url, "ca_file": ca_file,
                    "proxy": proxy.url_with("${env:PROXY_USER}:${env:PROXY_PASSWORD}")}
        assert ping(client(settings, env))["pong"] is True
        assert proxy.proxy_authorizations[-1].startswith("Basic ")
        wrong = {**env, "PROXY_PASSWORD": "not-the-password-42"}
        with pytest.raises(TransportError) as refused:
            ping(client(settings, wrong))
    message = str(refused.value)
    assert f"through the proxy 127.0.0.1:{proxy.port}" in message
    assert "Proxy Authentication Required" in message
    for text in (message, caplog.text):
        for secret in (password, "not-the-password-42", "svc-soar:"):
            assert secret not in text


def test_a_proxy_url_with_a_path_is_refused_at_load() -> None:
    with pytest.raises(SpecError, match=r"connections\.plain\.proxy: must be scheme://host:port"):
        client({"base_url": "https://x.example", "proxy": "http://proxy.corp:3128/path"})
    with pytest.raises(SpecError, match=r"connections\.plain(\.proxy)?:.*"):
        client({"base_url": "https://x.example", "proxy": "socks5://proxy.corp:1080"})


# the environment ---------------------------------------------------------------------------------


def test_https_proxy_in_the_environment_is_ignored_unless_trust_env(
        tls_pong: Pong, ca_file: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with ForwardProxy() as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        url = f"https://localhost:{tls_pong.port}"
        assert ping(client({"base_url": url, "ca_file": ca_file}))["pong"] is True
        assert proxy.seen == []
        assert ping(client({"base_url": url, "ca_file": ca_file,
                            "trust_env": True}))["pong"] is True
        assert proxy.seen == [f"CONNECT localhost:{tls_pong.port}"]
        monkeypatch.setenv("NO_PROXY", "localhost")
        assert ping(client({"base_url": url, "ca_file": ca_file,
                            "trust_env": True}))["pong"] is True
        assert len(proxy.seen) == 1  # NO_PROXY: straight there


def test_requests_ca_bundle_is_used_only_with_trust_env(tls_pong: Pong, ca_file: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca_file)
    url = f"https://localhost:{tls_pong.port}"
    with pytest.raises(TransportError, match="could not verify"):
        ping(client({"base_url": url}))
    assert ping(client({"base_url": url, "trust_env": True}))["pong"] is True


# client certificates -----------------------------------------------------------------------------


def test_a_server_that_demands_a_client_certificate(ca: trustme.CA, ca_file: str,
                                                    tmp_path: Path) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(context)
    ca.configure_trust(context)
    context.verify_mode = ssl.CERT_REQUIRED
    leaf = ca.issue_cert("soar-client@corp.example")
    leaf.cert_chain_pems[0].write_to_path(str(tmp_path / "client.crt"))
    leaf.private_key_pem.write_to_path(str(tmp_path / "client.key"))
    mock = serve_tls(Pong(), context)
    try:
        url = f"https://localhost:{mock.port}"
        with pytest.raises(TransportError):
            ping(client({"base_url": url, "ca_file": ca_file}))
        assert ping(client({"base_url": url, "ca_file": ca_file,
                            "client_cert": str(tmp_path / "client.crt"),
                            "client_key": str(tmp_path / "client.key")}))["pong"] is True
    finally:
        mock.stop()


def test_a_client_key_that_does_not_match_is_refused_at_load(ca: trustme.CA,
                                                             tmp_path: Path) -> None:
    ca.issue_cert("a.example").cert_chain_pems[0].write_to_path(str(tmp_path / "a.crt"))
    ca.issue_cert("b.example").private_key_pem.write_to_path(str(tmp_path / "b.key"))
    with pytest.raises(SpecError, match=r"connections\.plain\.client_cert: is not a PEM "
                                        "certificate with its matching private key"):
        client({"base_url": "https://x.example", "client_cert": str(tmp_path / "a.crt"),
                "client_key": str(tmp_path / "b.key")})
    with pytest.raises(SpecError, match=r"connections\.plain\.client_key: client_key needs "
                                        "client_cert"):
        client({"base_url": "https://x.example", "client_key": str(tmp_path / "b.key")})


def test_a_proxy_that_cannot_reach_the_vendor_is_named_with_its_answer(ca_file: str) -> None:
    with ForwardProxy() as proxy:  # knows no vendor name
        with pytest.raises(TransportError) as refused:
            ping(client({"base_url": f"https://{VENDOR_NAME}", "ca_file": ca_file,
                         "proxy": proxy.url}))
        assert proxy.seen == [f"CONNECT {VENDOR_NAME}:443"]
    assert (f"could not reach {VENDOR_NAME} through the proxy 127.0.0.1:{proxy.port} "
            "(the proxy answered CONNECT with 502 Bad Gateway)") in str(refused.value)


def test_a_ca_file_removed_after_loading_is_a_config_error(ca_file: str, tmp_path: Path) -> None:
    from crownguard.engine import ConfigError

    copy = tmp_path / "root.pem"
    copy.write_text(Path(ca_file).read_text())
    config = config_from_mapping({"connections": {"plain": {
        "base_url": "https://x.example", "ca_file": str(copy)}}}, TYPES, {})
    copy.unlink()
    with pytest.raises(ConfigError, match="connection 'plain': cannot use its ca_file"):
        VendorClient(config.connections.get("plain"))
