"""The journal stores what it is given; what the runner gives it is redacted, so a secret
never reaches the journal file, its records, its export or its errors."""

from __future__ import annotations

import base64
import io
import json
import logging
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crownguard.engine import ActionContext, ConfigError, ConnectionType, action, hookimpl
from crownguard.engine.journal import SQLiteJournal
from crownguard.engine.runner import Runner
from crownguard.engine.secrets import MASK, Redactor, Secret, _unwrapped
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


# the redaction copy with no secret known: still a copy, Secrets still masked ------------------

PLAIN = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                  st.text(max_size=12))
VALUES = st.recursive(
    st.one_of(PLAIN, st.builds(Secret, st.text(min_size=4, max_size=12))),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.lists(inner, max_size=4).map(tuple),
                            st.dictionaries(st.text(max_size=6), inner, max_size=4)),
    max_leaves=12)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=6), VALUES, max_size=5))
def test_with_no_secret_known_a_dict_redacts_as_the_walk_does(value: dict[str, Any]) -> None:
    redacted = Redactor().redact_value(value)
    assert redacted == _unwrapped(value) and redacted is not value
    assert "Secret(" not in repr(redacted)


def test_a_flat_dict_is_still_a_copy_and_a_secret_in_it_still_masked() -> None:
    redactor = Redactor()
    value = {"user": "a@b.c", "n": 3}
    redacted = redactor.redact_value(value)
    value["n"] = 4  # what an action does to its inputs (or keeps doing to its output)
    assert redacted == {"user": "a@b.c", "n": 3}
    assert redactor.redact_value({"user": "a@b.c", "token": Secret(SECRET)}) == {
        "user": "a@b.c", "token": MASK}
    assert redactor.redact_value({"t": ("x", 1)}) == {"t": ["x", 1]}  # JSON's form still


def test_a_registered_secret_is_masked_in_a_flat_dict() -> None:
    redactor = Redactor([SECRET])
    redacted = redactor.redact_value({"note": f"the token is {SECRET}", "n": 1,
                                      "basic": base64.b64encode(f"svc:{SECRET}".encode())
                                      .decode()})
    assert redacted["n"] == 1 and "***" in redacted["note"]
    assert_absent(json.dumps(redacted))


def test_secrets_stay_out_of_an_in_memory_run_its_events_and_logs(
        isolated_host: Any, crownguard_config: Any, caplog: pytest.LogCaptureFixture) -> None:
    host = isolated_host(Vault(), name="vault")
    config = crownguard_config({"vault": {"base_url": "http://127.0.0.1:9",
                                          "token": "${env:VAULT_TOKEN}"}},
                               host=host, env={"VAULT_TOKEN": SECRET})
    playbook = parse_playbook(PLAYBOOK, host.actions)
    seen: list[dict[str, Any]] = []
    with caplog.at_level(logging.DEBUG):
        record = Runner(host, config, on_event=seen.append).run(
            playbook, {"note": f"the token is {SECRET}"})
    assert record["status"] == "failed"
    assert any("***" in json.dumps(e) for e in seen)  # it was there, and it was masked
    assert_absent(json.dumps(seen))
    assert_absent(json.dumps(record))
    assert_absent(caplog.text)


class Keeper:
    """Inline actions that change their inputs in place, and one that keeps changing an
    output it gave earlier."""

    kept: dict[str, Any] = {}

    @hookimpl
    def crownguard_register_actions(self, register: Any) -> None:
        @action("keep.give", input_schema={"type": "object"}, inline=True)
        def give(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
            inputs["n"] = "changed by the action"
            Keeper.kept = {"x": 1}
            return Keeper.kept

        @action("keep.spoil", input_schema={"type": "object"}, inline=True)
        def spoil(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
            Keeper.kept["x"] = "spoiled later"
            return {}

        register(give)
        register(spoil)


def test_what_an_action_changes_later_does_not_change_its_record(isolated_host: Any) -> None:
    host = isolated_host(Keeper(), name="keep")
    playbook = parse_playbook("name: k\nsteps:\n  - {id: a, action: keep.give, with: {n: 1}}\n"
                              "  - {id: b, action: keep.spoil, needs: [a]}\n", host.actions)
    seen: list[dict[str, Any]] = []
    record = Runner(host, on_event=seen.append).run(playbook, {})
    assert record["status"] == "succeeded" and Keeper.kept == {"x": "spoiled later"}
    assert record["steps"]["a"]["output"] == {"x": 1}
    [started] = [e for e in seen if e["type"] == "step_started" and e["step"] == "a"]
    assert started["inputs"] == {"n": 1}
