"""What the live runs and access pages' script asks for, in process on both journals:
live.json (the journal's last entry, for a signed-in session only), the pages' marker of the
entry they were read at, and a script's refresh that leaves the notices for the real page."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient
from test_console import app, csrf_of, okta, service, signed_in, start_run

__all__ = ["app", "okta", "service", "start_run"]  # test_console's fixtures, used here


def marker(page: str) -> int:
    found = re.search(r'data-live-head="(\d+)"', page)
    assert found, page
    return int(found.group(1))


def test_live_json_follows_the_journal_for_a_signed_in_session(app: Any,
                                                               start_run: Any) -> None:
    assert TestClient(app, base_url="http://127.0.0.1").get("/ui/live.json").status_code == 401
    client = signed_in(app, "siem-reader")
    before = client.get("/ui/live.json").json()["head"]
    assert marker(client.get("/ui/runs").text) == before
    assert marker(client.get("/ui/access").text) == before
    run_id = start_run()
    after = client.get("/ui/live.json").json()["head"]
    assert after > before
    page = client.get("/ui/runs").text
    assert marker(page) == after and f'href="/ui/runs/{run_id}"' in page
    assert 'id="live-runs" data-live' in page and 'id="live-counts" data-live' in page


def test_a_scripts_refresh_leaves_the_notices_for_the_next_page(app: Any,
                                                                start_run: Any) -> None:
    run_id = start_run()
    client = signed_in(app, "ops-bot")
    page = client.get(f"/ui/runs/{run_id}")
    done = client.post(f"/ui/runs/{run_id}/cancel", data={"csrf": csrf_of(page.text)},
                       follow_redirects=False)
    assert done.status_code == 303
    refreshed = client.get("/ui/runs", headers={"X-Console-Live": "1"})
    assert "Cancelled the run." not in refreshed.text
    assert "Cancelled the run." in client.get("/ui/runs").text


def test_the_runs_page_shows_each_waiting_steps_deadline_from_the_open_waits(
        app: Any, start_run: Any) -> None:
    run_id = start_run()
    page = signed_in(app, "siem-reader").get("/ui/runs?status=waiting").text
    row = page[page.index(f'href="/ui/runs/{run_id}"'):].split("</tr>")[0]
    found = re.search(r'ask: <time data-expires="([^"]+Z)" datetime="[^"]+">([^<]+)</time>',
                      row)
    assert found, row
    assert re.fullmatch(r"(9 min \d+ s|10 min) left", found.group(2)), found.group(2)
