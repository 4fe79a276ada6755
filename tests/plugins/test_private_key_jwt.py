"""Credentials that tenants require instead of shared secrets: a certificate's private key for
Entra ID and Defender apps (Microsoft identity platform client assertions) and an Okta API
service app with a private-key JWT, end to end against the mocks, which verify the assertion
and refuse a wrong key in the vendors' words."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
import trustme

from crownguard.engine import (
    ASSERTION_TYPE,
    AssertionRefused,
    AssertionSigner,
    AuthError,
    SpecError,
    public_key_of,
    thumbprints,
    verify_assertion,
)
from crownguard.plugins.defender.client import DefenderClient
from crownguard.plugins.defender.mock import DefenderMock
from crownguard.plugins.entra.client import EntraClient
from crownguard.plugins.entra.mock import CLIENT_ID, TENANT_ID, EntraMock
from crownguard.plugins.okta.client import OktaClient
from crownguard.plugins.okta.mock import OktaMock
from crownguard.plugins.okta.mock.base import READ_ONLY

ALICE = "alice.chen@acme.example"
SERVICE_APP = "0oa1svcCrownguard7x2"


@pytest.fixture(scope="module")
def issuer() -> trustme.CA:
    return trustme.CA(key_type=trustme.KeyType.RSA)


class AppKey:
    """A certificate and its private key, written where `${file:...}` finds them."""

    def __init__(self, issuer: trustme.CA, folder: Path, name: str):
        leaf = issuer.issue_cert(f"{name}.apps.corp.example", key_type=trustme.KeyType.RSA)
        self.key_pem = leaf.private_key_pem.bytes().decode()
        self.cert_pem = leaf.cert_chain_pems[0].bytes().decode()
        self.key_path, self.cert_path = folder / f"{name}.key", folder / f"{name}.crt"
        self.key_path.write_text(self.key_pem)
        self.cert_path.write_text(self.cert_pem)

    def settings(self) -> dict[str, str]:
        return {"private_key": f"${{file:{self.key_path}}}",
                "certificate": f"${{file:{self.cert_path}}}"}


@pytest.fixture
def keys(issuer: trustme.CA, tmp_path: Path) -> Callable[[str], AppKey]:
    return lambda name: AppKey(issuer, tmp_path, name)


@pytest.fixture
def connect(crownguard_host: Any, mock_config: Callable[..., Any]) -> Callable[..., Any]:
    def make(name: str, mock: Any, **overrides: Any) -> Any:
        return mock_config(name, mock, host=crownguard_host, **overrides).connections.get(name)

    return make


def token_form(mock: Any, path: str) -> dict[str, str]:
    return mock.calls_to("POST", path)[-1].form


# Entra ID ----------------------------------------------------------------------------------------


TOKEN_PATH = f"/{TENANT_ID}/oauth2/v2.0/token"


def test_entra_with_a_certificate_credential(mock_server: Callable[..., Any], keys: Any,
                                             connect: Callable[..., Any]) -> None:
    entra: EntraMock = mock_server(EntraMock)
    app = keys("entra-app")
    entra.add_certificate(app.cert_pem)
    connection = connect("entra", entra, client_secret=None, **app.settings())
    user = EntraClient(connection).find_user(ALICE, "get user")
    assert user["userPrincipalName"] == ALICE
    form = token_form(entra, TOKEN_PATH)
    assert "client_secret" not in form
    assert form["client_assertion_type"] == ASSERTION_TYPE
    assert form["client_id"] == CLIENT_ID and form["grant_type"] == "client_credentials"
    header = jwt.get_unverified_header(form["client_assertion"])
    prints = thumbprints(app.cert_pem)
    assert header["alg"] == "RS256"
    assert header["x5t"] == prints["x5t"] and header["x5t#S256"] == prints["x5t#S256"]
    claims = jwt.decode(form["client_assertion"], options={"verify_signature": False})
    assert claims["aud"] == entra.url_for(TOKEN_PATH)
    assert claims["iss"] == claims["sub"] == CLIENT_ID
    assert claims["exp"] - claims["nbf"] == 300 and claims["jti"]
    # The assertion is a credential while it lives: the redactor knows it.
    assert form["client_assertion"] not in connection.redactor.redact(form["client_assertion"])


def test_entra_refuses_a_key_not_uploaded_to_the_app(mock_server: Callable[..., Any],
                                                     keys: Any,
                                                     connect: Callable[..., Any]) -> None:
    entra: EntraMock = mock_server(EntraMock)
    entra.add_certificate(keys("registered").cert_pem)
    other = keys("other")
    connection = connect("entra", entra, client_secret=None, **other.settings())
    with pytest.raises(AuthError) as refused:
        EntraClient(connection).find_user(ALICE, "get user")
    message = str(refused.value)
    assert "AADSTS700027: Client assertion contains an invalid signature. [Reason - The key " \
           "was not found." in message
    assert "private_key and certificate" in message  # what to check
    assert token_form(entra, TOKEN_PATH)["client_assertion"] not in message
    assert "BEGIN" not in message


def test_a_bad_key_or_a_certificate_of_another_key_is_refused_at_load(
        mock_server: Callable[..., Any], keys: Any, connect: Callable[..., Any],
        tmp_path: Path) -> None:
    entra: EntraMock = mock_server(EntraMock)
    one, two = keys("one"), keys("two")
    (tmp_path / "junk.key").write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n"
                                       "-----END PRIVATE KEY-----\n")
    with pytest.raises(SpecError, match=r"connections\.entra\.private_key: is not a PEM "
                                        "private key"):
        connect("entra", entra, client_secret=None, certificate=one.settings()["certificate"],
                private_key=f"${{file:{tmp_path / 'junk.key'}}}")
    with pytest.raises(SpecError, match=r"connections\.entra\.certificate: does not belong to "
                                        "private_key") as failed:
        connect("entra", entra, client_secret=None, private_key=one.settings()["private_key"],
                certificate=two.settings()["certificate"])
    assert "PRIVATE KEY" not in str(failed.value)
    with pytest.raises(SpecError, match=r"connections\.entra: 'client_secret' is required"):
        connect("entra", entra, client_secret=None)  # neither a secret nor a key
    with pytest.raises(SpecError, match=r"connections\.entra: 'certificate' is required"):
        connect("entra", entra, client_secret=None, private_key=one.settings()["private_key"])
    with pytest.raises(SpecError, match=r"connections\.entra\.client_secret: give "
                                        "client_secret or private_key, not both") as both:
        connect("entra", entra, **one.settings())
    assert entra.connection_settings()["client_secret"] not in str(both.value)


# Defender ----------------------------------------------------------------------------------------


def test_defender_with_a_certificate_credential_and_a_wrong_one(
        mock_server: Callable[..., Any], keys: Any, connect: Callable[..., Any]) -> None:
    defender: DefenderMock = mock_server(DefenderMock)
    app, stranger = keys("defender-app"), keys("stranger")
    defender.add_certificate(app.cert_pem)
    connection = connect("defender", defender, client_secret=None, **app.settings())
    machines = DefenderClient(connection).request_json("GET", "/api/machines",
                                                       operation="list machines")
    assert machines["value"]
    token_path = f"/{defender.tenant_id}/oauth2/v2.0/token"
    assert "client_secret" not in token_form(defender, token_path)
    connection = connect("defender", defender, client_secret=None, **stranger.settings())
    with pytest.raises(AuthError, match=r"private_key and certificate .*AADSTS700027"):
        DefenderClient(connection).request_json("GET", "/api/machines",
                                                operation="list machines")


# Okta --------------------------------------------------------------------------------------------


def okta_settings(mock: OktaMock, app: AppKey, **more: Any) -> dict[str, Any]:
    return {"base_url": mock.base_url, "client_id": SERVICE_APP,
            "private_key": app.settings()["private_key"], **more}


def test_okta_service_app_with_a_private_key_jwt(mock_server: Callable[..., Any], keys: Any,
                                                 connect: Callable[..., Any]) -> None:
    okta: OktaMock = mock_server(OktaMock)
    app = keys("okta-app")
    okta.add_service_app(SERVICE_APP, app.cert_pem, key_id="k1")
    client = OktaClient(connect("okta", okta_settings(okta, app, key_id="k1")))
    assert client.find_user(ALICE)["profile"]["login"] == ALICE
    form = token_form(okta, "/oauth2/v1/token")
    assert form["scope"] == "okta.users.manage okta.groups.manage"
    assert form["client_assertion_type"] == ASSERTION_TYPE
    assert jwt.get_unverified_header(form["client_assertion"])["kid"] == "k1"
    claims = jwt.decode(form["client_assertion"], options={"verify_signature": False})
    assert claims["aud"] == okta.url_for("/oauth2/v1/token")
    assert claims["iss"] == claims["sub"] == SERVICE_APP
    api_call = okta.calls_to("GET")[-1]
    assert api_call.headers["Authorization"].startswith("Bearer ")


@pytest.mark.parametrize(("kid", "expected"), [
    ("k1", "The client_assertion signature is invalid."),
    ("k9", "The client_assertion JWT kid is invalid."),
])
def test_okta_refuses_a_wrong_key(mock_server: Callable[..., Any], keys: Any,
                                  connect: Callable[..., Any], kid: str, expected: str) -> None:
    okta: OktaMock = mock_server(OktaMock)
    okta.add_service_app(SERVICE_APP, keys("registered").cert_pem, key_id="k1")
    client = OktaClient(connect("okta", okta_settings(okta, keys("other"), key_id=kid)))
    with pytest.raises(AuthError) as refused:
        client.find_user(ALICE)
    assert expected in str(refused.value)
    assert "private_key registered" in str(refused.value)
    assert okta.calls_to("GET") == []  # no API call without a token


def test_okta_refuses_scopes_not_granted_and_dpop_bound_apps(
        mock_server: Callable[..., Any], keys: Any, connect: Callable[..., Any]) -> None:
    okta: OktaMock = mock_server(OktaMock)
    app = keys("okta-app")
    okta.add_service_app(SERVICE_APP, app.cert_pem, scopes=READ_ONLY)
    with pytest.raises(AuthError, match="One or more scopes are not configured"):
        OktaClient(connect("okta", okta_settings(okta, app))).find_user(ALICE)
    read = OktaClient(connect("okta", okta_settings(
        okta, app, scopes="okta.users.read okta.groups.read")))
    assert read.find_user(ALICE)["profile"]["login"] == ALICE
    okta.add_service_app(SERVICE_APP, app.cert_pem, dpop=True)
    with pytest.raises(AuthError, match="DPoP"):
        OktaClient(connect("okta", okta_settings(okta, app))).find_user(ALICE)


def test_okta_connection_takes_a_token_or_a_service_app(mock_server: Callable[..., Any],
                                                        keys: Any,
                                                        connect: Callable[..., Any]) -> None:
    okta: OktaMock = mock_server(OktaMock)
    with pytest.raises(SpecError, match=r"connections\.okta: 'token' is required"):
        connect("okta", {"base_url": okta.base_url, "client_id": SERVICE_APP})
    with pytest.raises(SpecError, match=r"connections\.okta\.token: give token or private_key"):
        connect("okta", {**okta_settings(okta, keys("a")), "token": "00abc-token"})


# the verifier the mocks share --------------------------------------------------------------------


def test_verify_assertion_says_why_it_refuses(keys: Any) -> None:
    app = keys("unit")
    from crownguard.engine.assertion import load_private_key

    signer = AssertionSigner("client-1", load_private_key(app.key_pem), {"kid": "k1"})
    known = {"k1": public_key_of(app.cert_pem)}
    good = signer.sign("https://idp.example/token")
    check: dict[str, Any] = {"keys": known, "key_headers": ("kid",),
                             "audience": "https://idp.example/token", "client_id": "client-1"}
    assert verify_assertion(good, **check)["sub"] == "client-1"
    cases = {
        "audience": (good, {**check, "audience": "https://idp.example/other"}),
        "issuer": (good, {**check, "client_id": "client-2"}),
        "expired": (signer.sign("https://idp.example/token", now=time.time() - 3600), check),
        "not_yet_valid": (signer.sign("https://idp.example/token", now=time.time() + 3600),
                          check),
        "unknown_key": (good, {**check, "keys": {"k2": known["k1"]}}),
        "malformed": ("not.a.jwt", check),
        "bad_signature": (good[:-6] + ("AAAAAA" if not good.endswith("AAAAAA") else "BBBBBB"),
                          check),
    }
    for reason, (token, kwargs) in cases.items():
        with pytest.raises(AssertionRefused) as refused:
            verify_assertion(token, **kwargs)
        assert refused.value.reason == reason, reason
    seen: set[str] = set()
    verify_assertion(good, **check, seen=seen)
    with pytest.raises(AssertionRefused, match="replayed"):
        verify_assertion(good, **check, seen=seen)
