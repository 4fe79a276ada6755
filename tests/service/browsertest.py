"""A real browser for the console's tests and screenshots: Debian's Chromium, driven by
Playwright. Playwright cannot download its own browser here, so /usr/bin/chromium is used,
installed with apt-get when it is missing and we are root."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from debian_servers import apt_lock

CHROMIUM = Path("/usr/bin/chromium")


def ensure_chromium() -> str | None:
    """The Chromium to launch, or why there is none (not root, apt-get failed...)."""
    if CHROMIUM.exists():
        return None
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return f"{CHROMIUM} is missing: run `apt-get install -y chromium` as root"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}

    def install() -> subprocess.CompletedProcess[str]:
        return subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends",
                               "chromium"], capture_output=True, text=True, timeout=900,
                              check=False, env=env)

    with apt_lock():  # another test process (pytest -n) may be installing it, or PostgreSQL
        if CHROMIUM.exists():
            return None
        done = install()
        if done.returncode != 0:  # a fresh machine has no package lists yet
            subprocess.run(["apt-get", "update", "-q"], capture_output=True, text=True,
                           timeout=600, check=False, env=env)
            done = install()
    if done.returncode != 0 or not CHROMIUM.exists():
        return f"apt-get install -y chromium failed: {done.stderr.strip()[-500:]}"
    return None


def launch(playwright: Any) -> Any:
    """Headless Chromium; without its sandbox when root (Chromium refuses it otherwise)."""
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=args)
