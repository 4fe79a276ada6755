"""engine.preflight: what the steps that may run for an event need, found before the run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from crownguard.engine.config import config_from_mapping
from crownguard.engine.plugins import PluginHost
from crownguard.engine.preflight import may_run, run_context, unready
from crownguard.engine.spec import load_playbook, parse_playbook

ROOT = Path(__file__).resolve().parents[1]
DEPARTING = ROOT / "playbooks" / "departing-employee-model-exfil.yaml"
EVENT = {"device": {"hostname": "lt-1.corp"}, "file": {"path": "/m/a.safetensors"},
         "source": {}, "actor": {"email": "dana@example.com"}}
STRONG = {"evidence": {"strong": True}}    # a model by a fingerprint, content or its own name
SUSPECTED = {"evidence": {"strong": False, "suspected": True}}


@pytest.fixture(scope="module")
def host() -> PluginHost:
    return PluginHost.from_entry_points()


def config(host: PluginHost, *names: str, **settings: Any) -> Any:
    every = {"falcon": {"base_url": "http://127.0.0.1:9", "client_id": "i",
                        "client_secret": "s"},
             "okta": {"base_url": "http://127.0.0.1:9", "token": "t"},
             "servicenow": {"base_url": "http://127.0.0.1:9", "username": "u",
                            "password": "p"},
             "jira": {"base_url": "http://127.0.0.1:9", "email": "e@example.com",
                      "api_token": "t"},
             "slack": {"base_url": "http://127.0.0.1:9", "token": "xoxb-1"}}
    return config_from_mapping({"connections": {n: every[n] for n in names}, **settings},
                               host.connection_types)


def missing(problems: list[Any]) -> list[tuple[str, str]]:
    return [(p.step, p.problem.split("'")[1]) for p in problems if "connection" in p.problem]


def test_only_the_steps_that_may_run_need_their_connection(host: PluginHost) -> None:
    playbook = load_playbook(DEPARTING, host.actions)
    ready = config(host, "falcon", "okta", "servicenow", "jira", "slack")
    assert unready(playbook, host.actions, ready, event=EVENT, risk=STRONG) == []  # no entra
    entra = config(host, "falcon", "okta", "servicenow", "jira", "slack",
                   settings={"vars": {"identity_provider": "entra"}})
    assert missing(unready(playbook, host.actions, entra, event=EVENT, risk=STRONG)) == [
        ("disable_entra", "entra"), ("revoke_entra", "entra")]
    no_host = {**EVENT, "device": {"hostname": None}}
    without_falcon = config(host, "okta", "servicenow", "jira", "slack")
    assert unready(playbook, host.actions, without_falcon, event=no_host, risk=STRONG) == []


def test_a_suspected_model_needs_no_containment_or_identity_connection(host: PluginHost) -> None:
    # only the review ticket (jira) and its failure handler (slack) may run
    playbook = load_playbook(DEPARTING, host.actions)
    assert unready(playbook, host.actions, config(host, "jira", "slack"), event=EVENT,
                   risk=SUSPECTED) == []
    assert sorted(missing(unready(playbook, host.actions, config(host, "jira", "slack"),
                                  event=EVENT, risk=STRONG))) == [
        ("contain", "falcon"), ("hr_case", "servicenow"), ("quarantine_file", "falcon"),
        ("revoke_sessions", "okta"), ("suspend", "okta")]


def test_a_failure_handler_needs_its_connection(host: PluginHost) -> None:
    playbook = load_playbook(DEPARTING, host.actions)
    problems = unready(playbook, host.actions, config(host, "falcon", "okta", "servicenow",
                                                       "jira"), event=EVENT, risk=STRONG)
    [problem] = problems
    assert str(problem) == (
        "playbook 'departing-employee-model-exfil': step 'escalate' (slack.post_message): "
        "needs the connection 'slack', which the connections file does not have "
        "(configured: falcon, jira, okta, servicenow)")


PLAYBOOK = """\
name: chain
steps:
  - id: first
    action: core.noop
    if: "event.go"
  - id: after
    action: slack.post_message
    needs: [first]
    with: {channel: "${{ vars.channel }}", text: "${{ event.text }}"}
  - id: handler
    action: jira.add_comment
    needs: [first]
    when: failure
    with: {issue: "SOC-1", body: "first failed"}
  - id: later
    action: falcon.contain_host
    needs: [after]
    if: "steps.after.output.ok"
    with: {hostname: "h"}
"""


def test_steps_behind_a_step_that_cannot_run_cannot_run_either(host: PluginHost) -> None:
    playbook = parse_playbook(PLAYBOOK, host.actions)
    nothing = config(host)
    context = run_context(playbook, nothing, event={"go": False})
    assert may_run(playbook, context) == {}
    context = run_context(playbook, nothing, event={"go": True})
    assert may_run(playbook, context) == {"first": True, "after": True, "handler": True,
                                          "later": False}


def test_an_input_that_vars_fill_is_checked_against_the_action(host: PluginHost) -> None:
    playbook = parse_playbook(PLAYBOOK, host.actions)
    ready = config(host, "slack", "jira", "falcon", settings={"vars": {"channel": 7}})
    [problem] = unready(playbook, host.actions, ready, event={"go": True})
    assert problem.step == "after" and "'channel': 7 is not of type 'string'" in problem.problem
    assert "vars" in problem.problem
    fixed = config(host, "slack", "jira", "falcon", settings={"vars": {"channel": "#soc"}})
    # event.text is null here, but an input the event fills is the run's to report
    assert unready(playbook, host.actions, fixed, event={"go": True}) == []
