"""Screenshots of the web console's main pages, into docs/images/ (linked from
docs/console.md).

Starts the mock vendors and a real `crownguard serve` on a loopback port (the service tests'
setup, tests/service/servicetest.py), makes a few runs (one waiting, one approved, one undone,
one cancelled), then signs in with Chromium (Debian's /usr/bin/chromium through Playwright)
and photographs the pages at laptop width, and a run at phone width.

    .venv/bin/python scripts/console-screenshots.py [--out docs/images]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "service"))

from browsertest import ensure_chromium, launch  # noqa: E402
from servicetest import (  # noqa: E402
    SLOW,
    TOKENS,
    Served,
    new_event,
    start_service,
    write_service_files,
)

from crownguard.engine.plugins import PluginHost  # noqa: E402
from crownguard.engine.scenarios import MockFleet  # noqa: E402


def make_runs(served: Served, fleet: MockFleet) -> dict[str, str]:
    """Run ids by what they show: waiting, approved, undone (and its undo run), cancelled."""
    okta: Any = fleet.get("okta")

    def start(name: str | None = None) -> str:
        event = new_event(name)
        event["actor"]["email"] = f"{event['id'][5:13]}@example.com"
        okta.add_user(event["actor"]["email"])
        served.post_event(event)
        [run] = served.runs_of(event["id"])
        return str(run["run_id"])

    made = {"approved": start(), "undone": start(SLOW), "cancelled": start()}
    served.call("POST", f"/v1/runs/{made['approved']}/steps/ask/answer",
                who="alice@corp.example", json_body={"decision": "approve",
                                                     "comment": "confirmed with HR"})
    served.call("POST", f"/v1/runs/{made['cancelled']}/cancel", who="ops-bot",
                json_body={"reason": "false positive: a sanctioned backup"})
    undo = served.call("POST", f"/v1/runs/{made['undone']}/undo", who="ops-bot", json_body={})
    made["undo"] = str(undo.json()["undo_run_id"])
    made["waiting"] = start()
    return made


def shoot(served: Served, made: dict[str, str], out: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    shots: list[Path] = []
    with sync_playwright() as playwright:
        browser = launch(playwright)
        for width, height, suffix in ((1280, 800, ""), (390, 844, "-phone")):
            context = browser.new_context(base_url=served.base, device_scale_factor=1,
                                          viewport={"width": width, "height": height})
            page = context.new_page()
            page.goto("/ui/login")
            if not suffix:
                shots.append(_shot(page, out / "console-sign-in.png"))
            page.get_by_label("API token").fill(TOKENS["alice@corp.example"][1])
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url("**/ui/runs")
            pages = ([("runs", "/ui/runs"), ("run-waiting", f"/ui/runs/{made['waiting']}"),
                      ("run-approved", f"/ui/runs/{made['approved']}"),
                      ("run-undo", f"/ui/runs/{made['undo']}"),
                      ("audit", "/ui/audit?verify=1"), ("playbooks", "/ui/playbooks")]
                     if not suffix else [("run-waiting", f"/ui/runs/{made['waiting']}")])
            for name, path in pages:
                page.goto(path)
                shots.append(_shot(page, out / f"console-{name}{suffix}.png",
                                   full=name == "run-approved"))
            context.close()
        browser.close()
    return shots


def _shot(page: Any, path: Path, full: bool = False) -> Path:
    page.screenshot(path=str(path), full_page=full)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    args = parser.parse_args()
    missing = ensure_chromium()
    if missing:
        print(f"console-screenshots: {missing}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder, \
            MockFleet(PluginHost.from_entry_points()) as fleet:
        files = write_service_files(Path(folder), fleet)
        served = start_service(files, Path(folder) / "journal.sqlite")
        try:
            made = make_runs(served, fleet)
            shots = shoot(served, made, args.out)
        finally:
            served.stop()
    for shot in shots:
        print(shot.relative_to(ROOT) if shot.is_relative_to(ROOT) else shot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
