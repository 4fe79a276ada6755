"""`crownguard demo`: the story plays end to end, shows what it promises, and leaks nothing."""

from __future__ import annotations

import io
import re

import pytest

from crownguard.engine.cli.demo import Episode, default_episodes, run_demo
from crownguard.engine.plugins import PluginHost


@pytest.fixture(scope="module")
def host() -> PluginHost:
    return PluginHost.from_entry_points()


@pytest.fixture(scope="module")
def played(host: PluginHost) -> tuple[int, str]:
    out = io.StringIO()
    code = run_demo(host, out=out)
    return code, out.getvalue()


def test_the_demo_succeeds_and_ends_with_a_summary(played: tuple[int, str]) -> None:
    code, out = played
    assert code == 0, out
    summary = out[out.index("\nsummary"):]
    for playbook in ("departing-employee-model-exfil", "model-to-personal-cloud-or-genai",
                     "model-to-removable-media", "low-risk-model-nudge", "(duplicate)"):
        assert playbook in summary
    assert re.search(r"8 events, 5 playbook runs, \d+ vendor calls, [\d.]+ s", summary)
    assert "unexpected" not in summary


def test_each_event_shows_detection_score_reasons_playbook_and_timeline(
        played: tuple[int, str]) -> None:
    _, out = played
    dana = out[out.index("[2] "):out.index("[3] ")]
    assert "detection  model, safetensors (confidence 1.00, registry_fingerprint)" in dana
    assert "SHA-256 matches registered acme-support-llama3-8b-ft v3 (mlflow, restricted)" in dana
    assert "+20  registered_model" in dana and "+45  departing_employee" in dana
    assert "prior_violations" not in dana  # the download before it was no violation
    assert "▶ contain" in dana and "✔ soc_ticket" in dana and "run finished: succeeded" in dana
    assert "falcon      POST   /devices/entities/devices-actions/v2?action_name=contain" in dana
    assert "okta        POST   /api/v1/users/" in dana
    assert "slack" not in dana  # no nudge for a likely theft
    assert "playbooks  none" in out[out.index("[1] "):out.index("[2] ")]
    assert "duplicate: already started" in out[out.index("[3] "):out.index("[4] ")]
    priya = out[out.index("[4] "):out.index("[5] ")]
    assert "priya.raman@example.com answers await_answer: approve" in priya
    assert "✔ record_answer" in priya
    marco = out[out.index("[5] "):out.index("[6] ")]
    assert "resumed past its deadline" in marco and "✔ escalate" in marco
    sam = out[out.index("[6] "):out.index("[7] ")]
    assert "not a model" in sam and "playbooks  none" in sam


def test_the_demo_prints_no_credential(played: tuple[int, str]) -> None:
    from crownguard.plugins.falcon.mock import DEFAULT_CLIENT_SECRET
    from crownguard.plugins.okta.mock import API_TOKEN

    _, out = played
    assert DEFAULT_CLIENT_SECRET not in out and API_TOKEN not in out
    assert "xoxb-" not in out  # the Slack mock's bot token


def test_quiet_keeps_the_verdicts_and_summary_without_timelines(host: PluginHost) -> None:
    out = io.StringIO()
    episodes = default_episodes()[6:]
    assert run_demo(host, episodes, quiet=True, out=out) == 0
    text = out.getvalue()
    assert "▶" not in text and "vendor calls (" not in text
    assert "model-to-removable-media" in text and "2 events, 2 playbook runs" in text


def test_an_episode_that_ends_otherwise_than_expected_fails_the_demo(host: PluginHost) -> None:
    usb = default_episodes()[6]
    wrong = Episode(usb.title, usb.payload, {"model-to-removable-media": "failed"})
    out = io.StringIO()
    assert run_demo(host, [wrong], quiet=True, out=out) == 1
    assert "succeeded (unexpected)" in out.getvalue()


def test_the_demo_names_the_plugins_it_needs_when_they_are_not_loaded() -> None:
    from crownguard.engine.errors import UsageError

    host = PluginHost()
    host.add("crownguard.plugins.core", "core")
    with pytest.raises(UsageError, match=r"against the entra, falcon, incydr, jira, mlflow, "
                                         r"okta, servicenow, slack plugins, which are not"):
        run_demo(host)
