"""Each vendor client quotes its vendor's own request-id header in errors (the HTTP layer's
base knows only the generic ones)."""

from __future__ import annotations

import pytest
import requests

from crownguard.engine import VendorClient
from crownguard.engine.config import Connections
from crownguard.plugins.defender.client import DefenderClient
from crownguard.plugins.entra.client import EntraClient
from crownguard.plugins.falcon.client import FalconClient
from crownguard.plugins.okta.client import OktaClient


def _answer(headers: dict[str, str]) -> requests.Response:
    response = requests.Response()
    response.status_code = 404
    response.headers.update(headers)
    response._content = b'{"message": "no such thing"}'
    return response


@pytest.mark.parametrize(("client_class", "header"), [
    (FalconClient, "X-Cs-Traceid"),
    (OktaClient, "X-Okta-Request-Id"),
    (EntraClient, "request-id"),
    (DefenderClient, "request-id"),
    (VendorClient, "X-Request-Id"),
])
def test_a_client_reads_its_vendors_request_id(client_class: type[VendorClient],
                                               header: str) -> None:
    connections = Connections({"x": {"base_url": "https://api.example.com"}})
    client = client_class(connections.get("x"))
    error = client.error_for(_answer({header: "req-7"}), "get thing")
    assert error.request_id == "req-7"


def test_the_base_client_knows_no_vendor_header() -> None:
    connections = Connections({"x": {"base_url": "https://api.example.com"}})
    error = VendorClient(connections.get("x")).error_for(
        _answer({"X-Okta-Request-Id": "okta-1"}), "get thing")
    assert error.request_id is None
