"""`crownguard validate` warns about credentials written into a playbook, without failing it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from crownguard.engine.loader import parse_text
from crownguard.engine.validation import literal_credentials

LITERAL = """name: literal
steps:
  - id: hook
    action: core.http_request
    with:
      url: https://hooks.example.com/x
      headers:
        Authorization: Bearer abc123def456
"""


def test_validate_warns_on_a_literal_authorization_header(tmp_path: Path,
                                                          run_cli: Any) -> None:
    path = tmp_path / "pb.yaml"
    path.write_text(LITERAL)
    code, out, _ = run_cli("validate", path)
    assert code == 0  # a warning, not an error
    assert f"{path}:8: warning: step 'hook': with.headers.Authorization: a literal " \
           "credential" in out
    assert "abc123def456" not in out  # the warning does not repeat the secret
    assert out.rstrip().endswith("ok (1 steps, playbook 'literal')")


def test_a_playbook_with_errors_still_gets_its_warnings(tmp_path: Path, run_cli: Any) -> None:
    path = tmp_path / "pb.yaml"
    path.write_text(LITERAL.replace("core.http_request", "core.no_such_action"))
    code, out, _ = run_cli("validate", path)
    assert code == 1 and "warning: step 'hook'" in out and "no_such_action" in out


@pytest.mark.parametrize("inputs, warned", [
    ({"headers": {"X-API-Key": "k-1234567"}}, "'X-API-Key'"),
    ({"headers": {"Cookie": "session=abc"}}, "'Cookie'"),
    ({"headers": {"X-Refresh-Token": "r-1"}}, "'X-Refresh-Token'"),
    ({"json": {"user": {"password": "hunter2"}}}, "with.json.user.password"),
    ({"json": {"client_secret": "s"}}, "'client_secret'"),
    ({"url": "https://bob:hunter2@h.example/"}, "user:password@"),
    ({"url": "https://h.example/x?page=2&api_key=abc"}, "'api_key='"),
    ({"url": "https://h.example/x?sig=abc"}, "'sig='"),
    ({"headers": {"Authorization": "Bearer ${{ event.token }}"}}, None),  # an expression
    ({"url": "https://h.example/x?token=${{ vars.t }}"}, None),
    ({"url": "https://bob@h.example/x?page=2"}, None),
    ({"headers": {"Accept": "application/json"}, "credential": "hooks"}, None),
    ({"json": {"revoke_tokens": True}}, None),
])
def test_what_counts_as_a_literal_credential(inputs: dict[str, Any], warned: str | None) -> None:
    import json

    doc = parse_text(json.dumps({"name": "x", "steps": [
        {"id": "s", "action": "core.http_request",
         "with": {"url": "https://h.example/", **inputs}}]}), "pb.json")
    warnings = literal_credentials(doc)
    if warned is None:
        assert warnings == []
    else:
        assert len(warnings) == 1 and warned in warnings[0].message
        assert warnings[0].message.startswith("warning: step 's': ")
