"""`crownguard demo --serve`: the story through a real `crownguard serve`, exit 0."""

from __future__ import annotations

import os
import subprocess
import sys


def test_demo_serve_plays_the_alerts_through_the_service_and_exits_0() -> None:
    done = subprocess.run([sys.executable, "-m", "crownguard.engine.cli", "demo", "--serve"],
                          capture_output=True, text=True, timeout=240,
                          env={k: v for k, v in os.environ.items()
                               if k not in ("CROWNGUARD_LISTEN", "CROWNGUARD_JOURNAL")})
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "crownguard serve listening on http://127.0.0.1:" in out
    # The runs, as they finish, each with its playbook and status.
    assert "departing-employee-model-exfil (" in out and ") => succeeded" in out
    assert "accepted again: a duplicate delivery" in out
    assert "priya.raman@example.com answers await_answer over the API: approve" in out
    assert out.count("model-to-personal-cloud-or-genai (") == 3  # waiting, answered, waiting
    assert "model-to-removable-media (" in out and "low-risk-model-nudge (" in out
    assert "crownguard serve stopped (exit 0)" in out
    assert "Traceback" not in out + done.stderr
