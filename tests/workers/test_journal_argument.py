"""`serve` and `worker` refuse a PostgreSQL DSN with its password in `--journal` (every user of
the machine sees a process's arguments); the DSN without it and the password in $PGPASSWORD,
as docs/scale-out.md says, reaches the database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

PASSWORD = "hunter2-0123456789abcdef"  # a value the test looks for, no real secret


def _crownguard(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "crownguard.engine.cli", *args],
                          env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          timeout=60, check=False)


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_a_password_in_journal_argument_is_refused(command: str, tmp_path: Path) -> None:
    config = tmp_path / "connections.yaml"
    config.write_text(json.dumps({"connections": {}}))
    done = _crownguard(command, "--config", str(config), "--journal",
                       f"postgresql://crownguard:{PASSWORD}@127.0.0.1:1/crownguard",
                       "--broker", "redis://127.0.0.1:1/0")
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "--journal: a password on the command line" in output
    assert "$PGPASSWORD" in output
    assert PASSWORD not in output
    assert "Traceback" not in output


def test_the_dsn_without_its_password_and_pgpassword_reach_the_database(
        postgres_dsn: str) -> None:
    parts = urlsplit(postgres_dsn)
    assert parts.password
    bare = postgres_dsn.replace(f":{parts.password}@", "@", 1)
    done = _crownguard("journal", "migrate", "--journal", bare,
                       env={"PGPASSWORD": parts.password})
    assert done.returncode == 0, done.stdout + done.stderr
    assert parts.password not in done.stdout + done.stderr
