"""The journal stores what it is given; what the runner gives it is redacted, so a secret
never reaches the journal file, its records, its export or its errors."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from crownguard.engine import ActionContext, ConfigError, ConnectionType, action, hookimpl
from crownguard.engine.journal import SQLiteJournal
from crownguard.engine.runner import Runner
from crownguard.engine.secrets import Redactor
from crownguard.engine.spec import parse_playbook

SECRET = "vault-T0ken/with+odd=chars-8c1f"


def forms(secret: str) -> list[bytes]:
    raw = secret.encode()
    basic = base64.b64encode(b"svc:" + raw)
    return [raw, base64.b64encode(raw), base64.urlsafe_b64encode(raw).rstrip(b"="),
            quote(secret, safe="").encode(), basic]


def file_bytes(path: Path) -> bytes:
    """The database with its WAL and shared-memory files: everything SQLite wrote."""
    return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm"))
                    if p.exists())


def assert_absent(blob: bytes | str, secret: str = SECRET) -> None:
    data = blob.encode() if isinstance(blob, str) else blob
    for form in forms(secret):
        assert form not in data, form


class Vault:
    """A test plugin with a secret-bearing connection and actions that leak it on purpose."""

    @hookimpl
    def crownguard_register_connection_types(self, register: Any) -> None:
        register(ConnectionType("vault", {"type": "object", "properties": {
            "base_url": {"type": "string"}, "token": {"type": "string"}}},
            secrets=("token",)))

    @hookimpl
    def crownguard_register_actions(self, register: Any) -> None:
        @action("vault.echo", connection="vault", input_schema={"type": "object"},
                output_schema={"type": "object"})
        def echo(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
            """Echo the inputs with the token in every encoding (a leaky plugin)."""
            token = ctx.connections.get("vault").secret("token")
            return {**inputs, "token": token,
                    "basic": base64.b64encode(f"svc:{token}".encode()).decode()}

        @action("vault.fail", connection="vault", input_schema={"type": "object"},
                output_schema={"type": "object"})
        def fail(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
            """Fail with the token in the message (a leaky plugin)."""
            raise ConfigError(f"bad token {ctx.connections.get('vault').secret('token')}")

        register(echo)
        register(fail)


PLAYBOOK = """
name: leaky
steps:
  - {id: echo, action: vault.echo, with: {from_event: "${{ event.note }}"}}
  - {id: fail, action: vault.fail, needs: [echo], with: {again: "${{ event.note }}"}}
"""


def test_a_redacted_event_never_lands_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    redactor = Redactor([SECRET])
    with SQLiteJournal(path) as journal:
        journal.create_run("r1", "p", "name: p", inputs=redactor.redact_value(
            {"event": {"note": f"token={SECRET}"}}))
        journal.append(redactor.redact_value({
            "type": "attempt_failed", "run_id": "r1", "at": "t", "step": "s", "attempt": 1,
            "error": f"401 for Bearer {SECRET}",
            "inputs": {"auth": base64.b64encode(f"svc:{SECRET}".encode()).decode()}}))
        assert "***" in journal.events("r1")[0]["error"]
        assert_absent(file_bytes(path))
    assert_absent(file_bytes(path))


def test_secrets_stay_out_of_a_journaled_run(tmp_path: Path, isolated_host: Any,
                                              crownguard_config: Any) -> None:
    host = isolated_host(Vault(), name="vault")
    config = crownguard_config({"vault": {"base_url": "http://127.0.0.1:9",
                                          "token": "${env:VAULT_TOKEN}"}},
                               host=host, env={"VAULT_TOKEN": SECRET})
    playbook = parse_playbook(PLAYBOOK, host.actions)
    event = {"note": f"the token is {SECRET}"}
    path = tmp_path / "j.sqlite"
    journal = SQLiteJournal(path)
    record = Runner(host, config, journal=journal).run(playbook, event, run_id="r1")
    assert record["status"] == "failed"
    events = journal.events("r1")
    assert events[-1] == {**events[-1], "type": "run_finished", "status": "failed"}
    assert any("***" in json.dumps(e) for e in events)  # it was there, and it was masked
    exported = io.StringIO()
    journal.export_jsonl(exported)
    for text in (json.dumps(events), exported.getvalue(), json.dumps(record),
                 json.dumps(journal.get_run("r1").to_dict()), repr(journal.verify())):
        assert_absent(text)
    assert_absent(file_bytes(path))
    journal.close()
    assert_absent(file_bytes(path))


@pytest.mark.parametrize("secret", [SECRET, "short-ish"])
def test_the_scan_would_see_a_leak(tmp_path: Path, secret: str) -> None:
    """The check above can fail: an unredacted event is found in the file bytes."""
    path = tmp_path / "j.sqlite"
    with SQLiteJournal(path) as journal:
        journal.create_run("r1", "p", "name: p", inputs={})
        journal.append({"type": "step_failed", "run_id": "r1", "at": "t", "step": "s",
                        "error": f"Basic {base64.b64encode(f'svc:{secret}'.encode()).decode()}"
                                 f" {secret}"})
        with pytest.raises(AssertionError):
            assert_absent(file_bytes(path), secret)
