"""Event data interpolated into Markdown, mrkdwn or an Adaptive Card shows literally (issue 12,
item 2): a file path cannot close a code span and plant a link, a name cannot mention or link.
Checked through the shipped playbooks' own step fields, against the vendors' mocks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from crownguard.engine.markup import quote, unquote
from crownguard.plugins.jira.adf import to_adf
from crownguard.plugins.jira.mock import JiraMock
from crownguard.plugins.slack.mock import SlackMock
from crownguard.plugins.teams.mock import TeamsMock

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
PLANTED_PATH = "C:/models/model`](https://evil.example) [click](https://evil.example)"
PLANTED_NAME = "<https://evil.example|click> <!channel> <@U123> <script>alert(1)</script>"
EVENT = {
    "id": "evt-1", "incident": "inc-1",
    "actor": {"email": "leaver@example.com", "departing": True},
    "file": {"path": PLANTED_PATH, "name": PLANTED_NAME, "detected_format": "**safetensors**",
             "sha256": "ab" * 32},
    "source": {"model": "fraud [x](https://evil.example)", "version": "3"},
    "destination": {"kind": "removable_media", "name": "`USB` # not a heading"},
    "device": {"hostname": "[host](https://evil.example)"},
}
RISK = {"score": 90, "level": "high", "reasons": [{"detail": "*departing* _soon_ ~~x~~"}]}


def shipped_step(playbook: str, step_id: str) -> dict[str, Any]:
    """One step of a shipped playbook, as it is, with core.noop in place of the steps it
    needs (its conditions off)."""
    data = yaml.safe_load((PLAYBOOKS / playbook).read_text())
    step = next(s for s in data["steps"] if s["id"] == step_id)
    for key in ("when", "if"):
        step.pop(key, None)
    stubs = [{"id": need, "action": "core.noop"} for need in step.get("needs", [])]
    return {"name": f"only-{step_id.replace('_', '-')}", "vars": data.get("vars", {}),
            "steps": [*stubs, step]}


def links_in(node: Any) -> list[Any]:
    found = []
    if isinstance(node, dict):
        found += [m for m in node.get("marks", []) if m.get("type") == "link"]
        if node.get("type") in ("inlineCard", "mention"):
            found.append(node)
        for value in node.values():
            found += links_in(value)
    elif isinstance(node, list):
        for value in node:
            found += links_in(value)
    return found


def texts_in(node: Any) -> str:
    if isinstance(node, dict):
        own = node.get("text", "") if node.get("type") == "text" else ""
        return own + "".join(texts_in(v) for k, v in node.items() if k == "content")
    if isinstance(node, list):
        return "".join(texts_in(v) for v in node)
    return ""


@pytest.fixture
def host(isolated_host: Any) -> Any:
    import crownguard.plugins.jira as jira_plugin
    import crownguard.plugins.slack as slack_plugin
    import crownguard.plugins.teams as teams_plugin

    return isolated_host(jira_plugin, slack_plugin, teams_plugin)


def test_the_departing_employee_ticket_shows_a_planted_path_literally(
        host: Any, mock_server: Any, crownguard_config: Any, run_playbook: Any) -> None:
    jira = mock_server(JiraMock)
    config = crownguard_config({"jira": jira.connection_settings()}, host=host)
    playbook = yaml.safe_dump(shipped_step("departing-employee-model-exfil.yaml", "soc_ticket"))
    record = run_playbook(playbook, EVENT, config=config, host=host, risk=RISK)
    assert record["status"] == "succeeded", record["steps"]
    [created] = jira.calls_to("POST", "/rest/api/3/issue")
    description = created.json["fields"]["description"]
    assert links_in(description) == []
    text = texts_in(description)
    for planted in (PLANTED_PATH, "fraud [x](https://evil.example)", "*departing* _soon_",
                    "[host](https://evil.example)", "`USB` # not a heading"):
        assert planted in text, planted
    # The author's own Markdown still works: the path is in a code span, the risk in bold.
    code = [n for n in _nodes(description) if any(m["type"] == "code" for m in n.get("marks", []))]
    assert [n["text"] for n in code][:1] == [PLANTED_PATH]
    assert any(m["type"] == "strong" for n in _nodes(description) for m in n.get("marks", []))
    assert "\ue000" not in json.dumps(description) and "\\ue0" not in json.dumps(description)


def _nodes(node: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if node.get("type") == "text":
            out.append(node)
        for child in node.get("content", []):
            out += _nodes(child)
    return out


@pytest.mark.parametrize("allow_markup", [False, True])
def test_the_escalation_in_slack_cannot_mention_or_link(
        host: Any, mock_server: Any, crownguard_config: Any, run_playbook: Any,
        allow_markup: bool) -> None:
    slack = mock_server(SlackMock)
    config = crownguard_config({"slack": slack.connection_settings()}, host=host)
    data = shipped_step("departing-employee-model-exfil.yaml", "escalate")
    data["steps"][-1]["with"]["text"] = ("<!here> *Incomplete* for ${{ event.file.name }} "
                                        "(${{ event.actor.email }})")
    data["steps"][-1]["with"]["allow_markup"] = allow_markup
    record = run_playbook(yaml.safe_dump(data), EVENT, config=config, host=host, risk=RISK)
    assert record["status"] == "succeeded", record["steps"]
    [posted] = slack.calls_to("POST", "/api/chat.postMessage")
    text = (posted.json or posted.form)["text"]
    escaped = PLANTED_NAME.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    assert escaped in text
    assert "<https://evil" not in text and "<!channel>" not in text and "<@U123>" not in text
    # The author's markup stays markup only when the author asked for it.
    assert text.startswith("<!here> *Incomplete*" if allow_markup else "&lt;!here&gt;")


def test_a_teams_card_shows_event_text_literally_in_the_authors_markup(
        host: Any, mock_server: Any, crownguard_config: Any, run_playbook: Any) -> None:
    teams = mock_server(TeamsMock)
    config = crownguard_config({"teams": {"webhook_url": teams.workflow_url()}}, host=host)
    playbook = yaml.safe_dump({"name": "card", "steps": [{
        "id": "tell_soc", "action": "teams.send_message", "with": {
            "title": "Model moved: ${{ event.file.name }}",
            "text": "**File** `${{ event.file.path }}`", "allow_markup": True,
            "facts": [{"title": "model", "value": "${{ event.source.model }}"}]}}]})
    record = run_playbook(playbook, EVENT, config=config, host=host, risk=RISK)
    assert record["status"] == "succeeded", record["steps"]
    [request] = teams.calls_to("POST")
    card = request.json["attachments"][0]["content"]
    title, text, facts = card["body"][0]["text"], card["body"][1]["text"], card["body"][2]
    assert text.startswith("**File** `") and "\\`\\]\\(https://evil.example\\)" in text
    assert "](https" not in title.replace("\\]\\(", "") and "\\[x\\]\\(" in facts["facts"][0][
        "value"]


def test_quoted_text_is_literal_in_adf_whatever_the_markup_around_it() -> None:
    for around in ("`{}`", "**{}**", "[{}](https://ok.example)", "# {}", "- {}", "{}"):
        doc = to_adf(around.format(quote(PLANTED_PATH + "\n```\n# h")))
        hrefs = [m["attrs"]["href"] for m in links_in(doc)]
        assert all(h == "https://ok.example" for h in hrefs), (around, hrefs)
        assert PLANTED_PATH in texts_in(doc)


def test_stand_ins_typed_into_text_only_ever_become_literal() -> None:
    assert unquote(quote("<a>"), lambda c: {"<": "&lt;", ">": "&gt;"}.get(c, c)) == "&lt;a&gt;"
    forged = quote("[x](https://evil.example)")  # as if an author typed the stand-ins
    assert links_in(to_adf(forged)) == []
