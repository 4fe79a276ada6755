from __future__ import annotations

import base64
import time
from email.utils import formatdate
from typing import Any

import pytest
from werkzeug import Request

from crownguard.engine import (
    AuthError,
    BadResponse,
    ConflictError,
    MockServer,
    NotFoundError,
    OAuth2ClientCredentials,
    RateLimited,
    ServerError,
    TransportError,
    VendorClient,
    parse_retry_after,
    route,
)
from crownguard.engine.config import Connections
from crownguard.engine.secrets import Redactor, Secret

SECRET = "sup3r-s3cret-client-value"


class TokenVendor(MockServer):
    vendor = "tv"

    def reset_state(self) -> None:
        self.tokens: set[str] = set()
        self.issued = 0

    @route("POST", "/oauth/token")
    def token(self, request: Request) -> Any:
        if request.form.get("client_secret") != SECRET:
            return self.json_response({"error": "invalid_client",
                                       "error_description": "bad client"}, 401)
        self.issued += 1
        token = f"tok-{self.issued}"
        self.tokens.add(token)
        return {"access_token": token, "expires_in": 3600, "token_type": "bearer"}

    @route("GET", "/things/{thing}")
    def thing(self, request: Request, thing: str) -> Any:
        auth = request.headers.get("Authorization", "")
        if auth.removeprefix("Bearer ") not in self.tokens:
            return self.json_response({"errors": [{"code": 401, "message": "access denied"}]},
                                      401)
        if thing == "missing":
            return self.json_response({"errors": [{"message": "no such thing"}]}, 404,
                                      {"X-Request-Id": "req-42"})
        if thing == "bad":
            return self.json_response({"errors": [{"message": "invalid"},
                                                  {"message": "name too long"}]}, 400)
        return {"id": thing}


class TvClient(VendorClient):
    vendor = "Token Vendor"
    connection_type = "tv"

    def make_auth(self) -> OAuth2ClientCredentials:
        return OAuth2ClientCredentials(self.settings["base_url"] + "/oauth/token",
                                       "client-1", self.settings["client_secret"])


@pytest.fixture
def vendor(mock_server: Any) -> TokenVendor:
    return mock_server(TokenVendor)


def client_for(vendor: TokenVendor, secret: str = SECRET) -> TvClient:
    redactor = Redactor([secret])
    conns = Connections({"tv": {"base_url": vendor.base_url,
                                "client_secret": Secret(secret)}}, redactor)
    return TvClient(conns.get("tv"))


def test_token_is_cached_across_calls(vendor: TokenVendor) -> None:
    client = client_for(vendor)
    assert client.request_json("GET", "/things/a", operation="get thing") == {"id": "a"}
    assert client.request_json("GET", "/things/b", operation="get thing") == {"id": "b"}
    assert vendor.issued == 1


def test_401_refreshes_the_token_once(vendor: TokenVendor) -> None:
    client = client_for(vendor)
    client.request_json("GET", "/things/a", operation="get thing")
    vendor.tokens.clear()  # the vendor revoked or expired the token
    assert client.request_json("GET", "/things/a", operation="get thing") == {"id": "a"}
    assert vendor.issued == 2
    assert len(vendor.calls_to("GET", "/things/a")) == 3


def test_persistent_401_is_an_auth_error_after_one_refresh(vendor: TokenVendor) -> None:
    vendor.inject("status", status=401, path="/things/a", times=None,
                  body={"errors": [{"message": "access denied"}]})
    client = client_for(vendor)
    with pytest.raises(AuthError) as info:
        client.request("GET", "/things/a", operation="get thing")
    assert str(info.value) == ("Token Vendor get thing (HTTP 401): access denied "
                               "(check the connection's credentials)")
    assert len(vendor.calls_to("GET", "/things/a")) == 2  # never more than one re-send


def test_wrong_client_secret(vendor: TokenVendor) -> None:
    client = client_for(vendor, secret="wrong-secret-value")
    with pytest.raises(AuthError, match=r"get OAuth2 token \(HTTP 401\): bad client"):
        client.request("GET", "/things/a", operation="get thing")


def test_error_classes(vendor: TokenVendor) -> None:
    client = client_for(vendor)
    with pytest.raises(NotFoundError) as nf:
        client.request("GET", "/things/missing", operation="get thing")
    assert nf.value.request_id == "req-42" and "no such thing" in str(nf.value)
    assert not nf.value.retryable
    with pytest.raises(ConflictError, match="invalid; name too long"):
        client.request("GET", "/things/bad", operation="get thing")
    vendor.inject("status", status=429, retry_after=7, path="/things/a")
    with pytest.raises(RateLimited) as rl:
        client.request("GET", "/things/a", operation="get thing")
    assert rl.value.retryable and rl.value.retry_after == 7
    vendor.inject("status", status=503, path="/things/a")
    with pytest.raises(ServerError) as se:
        client.request("GET", "/things/a", operation="get thing")
    assert se.value.retryable and se.value.status == 503
    vendor.inject("malformed", path="/things/a")
    with pytest.raises(BadResponse, match="not valid JSON"):
        client.request_json("GET", "/things/a", operation="get thing")


def test_403_names_missing_permission(vendor: TokenVendor) -> None:
    vendor.inject("status", status=403, path="/things/a",
                  body={"errors": [{"message": "scope hosts:write required"}]})
    with pytest.raises(AuthError, match="scope hosts:write required .the credentials lack"):
        client_for(vendor).request("GET", "/things/a", operation="get thing")


def test_transport_errors_are_retryable(vendor: TokenVendor) -> None:
    client = client_for(vendor)
    client.request("GET", "/things/a", operation="get thing")
    vendor.inject("timeout", seconds=1.0, path="/things/a")
    client.settings["timeout_seconds"] = 0.2
    with pytest.raises(TransportError, match="timed out") as info:
        client.request("GET", "/things/a", operation="get thing")
    assert info.value.retryable
    port = vendor.port
    vendor.stop()
    with pytest.raises(TransportError, match=f"could not reach 127.0.0.1:{port}"):
        client.request("GET", "/things/a", operation="get thing")


def test_no_automatic_retries(vendor: TokenVendor) -> None:
    vendor.inject("status", status=503, path="/things/a", times=None)
    with pytest.raises(ServerError):
        client_for(vendor).request("GET", "/things/a", operation="get thing")
    assert len(vendor.calls_to("GET", "/things/a")) == 1


def test_secrets_are_redacted_from_errors(vendor: TokenVendor) -> None:
    encoded = base64.b64encode(f"client-1:{SECRET}".encode()).decode()
    vendor.inject("status", status=400, path="/things/a",
                  body={"message": f"you sent {SECRET} and Basic {encoded}"})
    with pytest.raises(ConflictError) as info:
        client_for(vendor).request("GET", "/things/a", operation="get thing")
    text = str(info.value) + repr(info.value.to_record()) + repr(info.value.body)
    assert SECRET not in text
    assert encoded not in text and "***" in text


def test_links_to_other_hosts_are_refused(vendor: TokenVendor) -> None:
    with pytest.raises(BadResponse, match="another host"):
        client_for(vendor).request("GET", "https://evil.example/x", operation="next page")


def test_parse_retry_after() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    now = time.time()
    assert 29 <= (parse_retry_after(formatdate(now + 30, usegmt=True), now=now) or 0) <= 31
    assert parse_retry_after(formatdate(now - 30, usegmt=True), now=now) == 0.0


def test_redactor_catches_encodings() -> None:
    r = Redactor(["abc-secret-123"])
    for prefix in ("", "a", "ab", "user:"):
        blob = base64.b64encode((prefix + "abc-secret-123" + "tail").encode()).decode()
        assert "***" in r.redact(blob), prefix
    assert r.redact("x=abc-secret-123&y") == "x=***&y"
    assert r.redact("abc%2Dsecret") == "abc%2Dsecret"
    assert repr(Secret("abc-secret-123")) == "Secret(***)"
    assert f"{Secret('abc-secret-123')}" == "***"


def test_oauth_400_invalid_client_is_an_auth_error(vendor: TokenVendor) -> None:
    vendor.inject("status", status=400, path="/oauth/token",
                  body={"error": "invalid_client", "error_description": "AADSTS7000215"})
    with pytest.raises(AuthError) as info:
        client_for(vendor).request("GET", "/things/a", operation="get thing")
    assert info.value.detail.startswith("AADSTS7000215")
    assert "client id, secret and scope" in str(info.value)


def test_injected_faults_carry_vendor_headers(vendor: TokenVendor) -> None:
    vendor.inject("status", status=429, path="/things/a", headers={"X-Rate-Limit-Reset": "9"})
    with pytest.raises(RateLimited):
        client_for(vendor).request("GET", "/things/a", operation="get thing")


def test_a_token_about_to_expire_is_not_reused_and_never_leaks(vendor: TokenVendor) -> None:
    client = client_for(vendor)
    client.request("GET", "/things/a", operation="get thing")
    auth = client.auth
    assert isinstance(auth, OAuth2ClientCredentials) and auth.fetches == 1
    # A token with less life left than the safety margin is fetched again, not reused.
    auth._expires_at = 0.0
    client.request("GET", "/things/a", operation="get thing")
    assert auth.fetches == 2 and vendor.issued == 2
    # Access tokens are secrets too: a vendor echoing one in an error does not leak it.
    vendor.inject("status", status=400, path="/things/a",
                  body={"message": "you sent tok-2"})
    with pytest.raises(ConflictError) as info:
        client.request("GET", "/things/a", operation="get thing")
    assert "tok-2" not in str(info.value) and "***" in str(info.value)
