"""Every shipped mock survives every fault it can be told to inject: no handler traceback, and
a valid HTTP answer (issue 12, item 8)."""

from __future__ import annotations

import http.client
import logging
from email.utils import formatdate
from typing import Any

import pytest

from crownguard.engine import MockServer
from crownguard.engine.mocks import FAULT_KINDS
from crownguard.engine.plugins import PluginHost

NOW_HTTP_DATE = "<now as an HTTP date>"  # made when the test runs: ids stay the same (xdist)
FAULTS: list[tuple[str, dict[str, Any]]] = [
    ("status", {"status": 429, "retry_after": 2}),
    ("status", {"status": 429, "retry_after": 0.5}),
    ("status", {"status": 429, "retry_after": NOW_HTTP_DATE}),
    ("status", {"status": 503, "retry_after": "Wed, 21 Oct 2015 07:28:00 GMT"}),
    ("status", {"status": 429, "retry_after": "soon"}),
    ("status", {"status": 500}),
    ("latency", {"seconds": 0.01}),
    ("timeout", {"seconds": 0.01}),
    ("malformed", {}),
    ("reset", {}),
    ("lost_response", {}),
    ("lost_response", {"seconds": 0.01}),
]


def test_the_table_covers_every_fault_kind() -> None:
    assert {kind for kind, _ in FAULTS} == set(FAULT_KINDS)


def _ask(server: MockServer, path: str) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection(server.host, server.port, timeout=5)
    connection.request("GET", path, headers={"Authorization": "Bearer x"})
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


@pytest.mark.parametrize("kind,options", FAULTS, ids=[f"{k}-{o}" for k, o in FAULTS])
def test_every_mock_answers_every_fault(crownguard_host: PluginHost, kind: str,
                                        options: dict[str, Any],
                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="werkzeug")
    if options.get("retry_after") == NOW_HTTP_DATE:
        options = {**options, "retry_after": formatdate(usegmt=True)}
    checked = []
    for name, spec in sorted(crownguard_host.mock_servers.items()):
        server = spec.factory()
        if type(server).start is not MockServer.start:
            continue  # not served over HTTP (the e-mail plugin's SMTP sink)
        server.start()
        try:
            for path in ("/", "/api/v1/users/someone"):
                server.inject(kind, **options)
                response = _ask(server, path)
                assert 100 <= response.status < 600, (name, path)
                server.clear_faults()
        finally:
            server.stop()
        checked.append(name)
    assert len(checked) >= 12
    tracebacks = [r for r in caplog.records if r.name == "werkzeug"]
    assert not tracebacks, [r.getMessage()[:300] for r in tracebacks]
