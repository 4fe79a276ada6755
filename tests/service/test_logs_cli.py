"""`--log-format` / $CROWNGUARD_LOG_FORMAT on the command line."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from crownguard.engine.service import logs


def test_a_bad_log_format_is_refused_naming_the_variable(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "crownguard.engine.cli", "serve", "--config",
                           str(tmp_path / "none.yaml")], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "CROWNGUARD_LOG_FORMAT": "xml"})
    assert done.returncode == 2
    assert "$CROWNGUARD_LOG_FORMAT must be one of text, json, not 'xml'" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_start_that_fails_leaves_the_callers_logging_alone(tmp_path: Path) -> None:
    from crownguard.engine.cli.app import main

    root = logging.getLogger()
    before: list[Any] = list(root.handlers)
    assert main(["serve", "--config", str(tmp_path / "none.yaml"), "--log-format",
                 "json"]) == 2
    assert all(h in root.handlers for h in before)
    assert not any(isinstance(h.formatter, (logs.JsonFormatter, logs.TextFormatter))
                   for h in root.handlers)
