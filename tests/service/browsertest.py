"""A real browser for the console's tests and screenshots: Debian's Chromium, driven by
Playwright. Playwright cannot download its own browser here, so /usr/bin/chromium is used,
installed with apt-get when it is missing and we are root."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from debian_servers import apt_get_install

CHROMIUM = Path("/usr/bin/chromium")


def ensure_chromium() -> str | None:
    """The Chromium to launch, or why there is none (not root, apt-get failed...)."""
    if CHROMIUM.exists():
        return None
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return f"{CHROMIUM} is missing: run `apt-get install -y chromium` as root"
    done = apt_get_install("chromium", timeout=900)
    if done.returncode != 0 or not CHROMIUM.exists():
        return f"apt-get install -y chromium failed: {done.stderr.strip()[-500:]}"
    return None


def launch(playwright: Any) -> Any:
    """Headless Chromium; without its sandbox when root (Chromium refuses it otherwise)."""
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=args)
