"""Secrets from the connections file never appear anywhere a person or a SIEM can read:
stdout/stderr of the CLI, the run record, the journal file, the audit export, the logs."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from crownguard.engine.cli import main
from crownguard.plugins.falcon.mock import FalconMock
from crownguard.plugins.okta.mock import OktaMock

OKTA_TOKEN = "00okta-SECRET-token-Zx81qP"
FALCON_SECRET = "falcon-SECRET-client-9QvL2m"
WRONG_SECRET = "falcon-WRONG-secret-7TzK0a"

PLAYBOOK = """
name: secrets
steps:
  - {id: suspend, action: okta.suspend_user, with: {user: "${{ event.user }}"}}
  - {id: contain, action: falcon.contain_host, with: {hostname: WS-ALICE-01},
     retry: {max_attempts: 2, backoff_seconds: 0.01}}
  - {id: echo, action: core.noop, needs: [suspend], with: {note: "done"}}
"""


def forms(secret: str) -> list[str]:
    raw = secret.encode()
    return [secret, quote(secret, safe=""), base64.b64encode(raw).decode().rstrip("="),
            base64.b64encode(b"client-x:" + raw).decode()[12:-4]]


@pytest.mark.parametrize("falcon_secret", [FALCON_SECRET, WRONG_SECRET])
def test_no_secret_anywhere(tmp_path: Path, mock_server: Any, capsys: Any,
                            caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
                            falcon_secret: str) -> None:
    okta = mock_server(OktaMock)
    okta.add_api_token(OKTA_TOKEN)
    okta.add_user("dana@example.com")
    falcon = mock_server(FalconMock)
    falcon.add_client("client-x", FALCON_SECRET)
    # A vendor that echoes what it was sent in an error body must not leak it either.
    okta.inject("status", status=400, path="/api/v1/users/{user_id}/lifecycle/suspend",
                body={"errorCode": "E0000001", "errorSummary": f"bad token {OKTA_TOKEN}"})
    (tmp_path / "okta.token").write_text(OKTA_TOKEN + "\n")
    monkeypatch.setenv("FALCON_SECRET", falcon_secret)
    config = tmp_path / "c.yaml"
    config.write_text(
        "connections:\n"
        f"  okta: {{base_url: '{okta.base_url}', token: '${{file:okta.token}}'}}\n"
        f"  falcon: {{base_url: '{falcon.base_url}', client_id: client-x,"
        " client_secret: '${env:FALCON_SECRET}', poll_interval_seconds: 0.01}\n")
    (tmp_path / "pb.yaml").write_text(PLAYBOOK)
    (tmp_path / "e.json").write_text(json.dumps({"user": "dana@example.com"}))
    journal = tmp_path / "j.sqlite"
    caplog.set_level(logging.DEBUG)
    outputs = []
    for args in (["run", tmp_path / "pb.yaml", "--event", tmp_path / "e.json", "--config",
                  config, "--journal", journal, "--json"],
                 ["-vv", "run", tmp_path / "pb.yaml", "--event", tmp_path / "e.json",
                  "--config", config, "--journal", journal]):
        main([str(a) for a in args])
        out, err = capsys.readouterr()
        outputs += [out, err]
    record = json.loads(outputs[0])
    assert record["steps"]["suspend"]["status"] == "failed"  # the error path was exercised
    if falcon_secret == WRONG_SECRET:
        assert "client id or secret was refused" in record["steps"]["contain"]["error"]
    main(["audit", "export", "--format", "jsonl", "--journal", str(journal), "--output",
          str(tmp_path / "audit.jsonl")])
    main(["runs", "show", record["run_id"], "--journal", str(journal)])
    outputs += list(capsys.readouterr())
    haystacks = {
        "cli output": "\n".join(outputs),
        "logs": caplog.text,
        "audit export": (tmp_path / "audit.jsonl").read_text(),
    }
    for suffix in ("", "-wal", "-shm"):
        path = Path(str(journal) + suffix)
        if path.exists():
            haystacks[f"journal{suffix}"] = path.read_bytes().decode("latin-1")
    for secret in (OKTA_TOKEN, falcon_secret):
        for form in forms(secret):
            for where, text in haystacks.items():
                assert form not in text, f"{form!r} (a form of a secret) found in {where}"
