from __future__ import annotations

import pytest

from crownguard.plugins.core.client import host_allowed


@pytest.mark.parametrize(("url", "allowed", "ok"), [
    ("https://hooks.example.com/x", ["hooks.example.com"], True),
    ("https://hooks.example.com:8443/x", ["hooks.example.com"], True),   # any port
    ("https://HOOKS.example.com/x", ["hooks.example.com"], True),
    ("https://evil.example.com/x", ["hooks.example.com"], False),
    ("https://hooks.example.com.evil.io/x", ["hooks.example.com"], False),
    ("https://hooks.example.com@evil.io/x", ["hooks.example.com"], False),
    ("https://a.internal.example.com/x", ["*.internal.example.com"], True),
    ("https://internal.example.com.evil.io/x", ["*.internal.example.com"], False),
    ("http://127.0.0.1:8080/x", ["127.0.0.1:8080"], True),
    ("http://127.0.0.1:9090/x", ["127.0.0.1:8080"], False),                # port pinned
    ("http://127.0.0.1/x", ["127.0.0.1:8080"], False),
    ("https://hooks.example.com/x", [], False),
])
def test_allowed_hosts(url: str, allowed: list[str], ok: bool) -> None:
    assert host_allowed(url, allowed) is ok
