"""Screenshots of the web console's main pages, into docs/images/ (linked from
docs/console.md).

Starts the mock vendors and a real `crownguard serve` on a loopback port (the service tests'
setup, tests/service/servicetest.py) with the mlflow mock for access requests, makes a few runs
(one waiting, one approved, one undone, one cancelled), access requests (one pending, one
granted), a dead letter and a scenario file, then signs in with Chromium (Debian's
/usr/bin/chromium through Playwright) and photographs the pages at laptop width, and a run and
the access page at phone width.

    .venv/bin/python scripts/console-screenshots.py [--out docs/images]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
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
from crownguard.plugins.mlflow.mock import MlflowMock  # noqa: E402

WHY = "retraining the fraud model on the Q3 data"
ACCESS_POLICY = {"weights": {"off_hours": 0},
                 "access": {"models": {"tag": "sensitivity"}, "auto_grant_below": 15,
                            "two_approvers_from": 60, "approvers": {"owner_tag": "owner"}}}
SCENARIO = """name: the SOC is asked before the account is suspended
description: The run waits at ask; alice approves and suspend runs.
event: {}
expect: {status: waiting, playbooks: [contain-after-approval]}
"""


def add_access(files: dict[str, Any], mlflow: MlflowMock) -> None:
    """The mlflow connection and an access policy in the service's files, and a scenario."""
    config = json.loads(files["config"].read_text())
    settings = mlflow.connection_settings()
    files["env"]["CG_TEST_MLFLOW_PASSWORD"] = settings.pop("password")
    config["connections"]["mlflow"] = {**settings, "password": "${env:CG_TEST_MLFLOW_PASSWORD}"}
    files["config"].write_text(json.dumps(config))
    policy = json.loads(files["policy"].read_text())
    files["policy"].write_text(json.dumps({**policy, **ACCESS_POLICY}))
    folder = files["policy"].parent / "scenarios"
    folder.mkdir(exist_ok=True)
    (folder / "asks-first.scenario.yaml").write_text(SCENARIO)


def registry() -> MlflowMock:
    mock = MlflowMock(auth="basic")
    mock.start()
    mock.default_permission = "NO_PERMISSIONS"
    for model, tags in (("fraud", {"sensitivity": "internal"}),
                        ("secret", {"sensitivity": "restricted",
                                    "owner": "alice@corp.example"})):
        mock.add_version(model, {"weights.bin": model.encode()})
        mock.tag_model(model, tags)
    for name in TOKENS:
        mock.add_user(name, f"{name}-mlflow-pw")
    return mock


def make_requests(served: Served) -> None:
    """One access request granted by the policy, one waiting for its owner; a dead letter."""
    for who, model in (("siem-reader", "fraud"), ("ops-bot", "secret")):
        served.call("POST", "/v1/access-requests", who=who, json_body={
            "model": model, "justification": WHY, "duration_hours": 4})
    with sqlite3.connect(served.journal) as db:  # as the Incydr poller sets one aside
        db.execute("INSERT INTO service_dead_letters (source, key, event_id, reason, raw, at) "
                   "VALUES ('incydr-poll', 'k-1', 'a1b2c3-unreadable', 'not an event: "
                   "file.sha256 is missing', '{\"eventId\": \"a1b2c3-unreadable\"}', "
                   "strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))")
    served.post_event({"not": "an event"})  # refused: counted on the intake page


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
                      ("audit", "/ui/audit?verify=1"), ("playbooks", "/ui/playbooks"),
                      ("access", "/ui/access"), ("intake", "/ui/intake")]
                     if not suffix else [("run-waiting", f"/ui/runs/{made['waiting']}"),
                                         ("access", "/ui/access")])
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
    mlflow = registry()
    try:
        with tempfile.TemporaryDirectory() as folder, \
                MockFleet(PluginHost.from_entry_points()) as fleet:
            files = write_service_files(Path(folder), fleet)
            add_access(files, mlflow)
            served = start_service(files, Path(folder) / "journal.sqlite")
            try:
                made = make_runs(served, fleet)
                make_requests(served)
                shots = shoot(served, made, args.out)
            finally:
                served.stop()
    finally:
        mlflow.stop()
    for shot in shots:
        print(shot.relative_to(ROOT) if shot.is_relative_to(ROOT) else shot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
