from __future__ import annotations

import json
from pathlib import Path

import pytest

from crownguard.engine.errors import SpecError
from crownguard.engine.plugins import PluginHost
from crownguard.engine.spec import load_playbook, parse_playbook, playbook_schema


@pytest.fixture(scope="module")
def actions():
    return PluginHost.from_entry_points().actions


def problems(text: str, actions=None, file: str = "pb.yaml") -> list[str]:
    with pytest.raises(SpecError) as info:
        parse_playbook(text, actions, file=file)
    return [str(p) for p in info.value.problems]


def test_valid_playbook_builds_typed_steps(actions) -> None:
    pb = parse_playbook("""
name: ok-one
description: d
trigger: {if: "risk.score >= `70`"}
vars: {x: 1}
steps:
  - id: a
    action: core.noop
    retry: {max_attempts: 4, backoff_seconds: 2}
    timeout_seconds: 60
  - id: b
    action: core.noop
    needs: a
    when: always
    if: "${{ event.x }}"
    for_each: "${{ event.items }}"
    concurrency: 2
    with: {v: "${{ item }}"}
""", actions)
    assert pb.name == "ok-one" and pb.trigger_if == "risk.score >= `70`"
    a, b = pb.steps
    assert a.retry is not None and a.retry.max_attempts == 4 and a.timeout_seconds == 60
    assert b.needs == ("a",) and b.when == "always" and b.if_ == "event.x"
    assert b.concurrency == 2 and b.line == 11
    assert list(pb.graph.edges) == [("a", "b")]


def test_yaml_syntax_error_has_line() -> None:
    assert problems("name: x\nsteps: [\n") == ["pb.yaml:3: invalid YAML: expected the node "
                                               "content, but found '<stream end>'"]


def test_unsafe_yaml_tags_are_rejected() -> None:
    out = problems("!!python/object/apply:os.system ['echo hi']\n")
    assert "could not determine a constructor" in out[0]


def test_aliases_within_aliases_are_refused_before_they_expand() -> None:
    # "Billion laughs": nine lines that expand to 9**8 values if anything walks them.
    text = 'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
    for name, previous in zip("bcdefgh", "abcdefg", strict=True):
        text += f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]\n"
    out = problems(text)
    assert len(out) == 1 and "expands to more than 200,000 values" in out[0]
    plain = problems("x: &x [1, 2]\ny: *x\nname: a\nsteps: []\n")
    assert not any("expands" in problem for problem in plain)  # a plain alias is fine


def test_duplicate_keys_are_errors() -> None:
    out = problems("name: a\nname: b\nsteps: []\n")
    assert out == ["pb.yaml:2: duplicate key 'name' (first at line 1)"]


def test_unknown_keys_and_missing_fields_name_the_step() -> None:
    out = problems("""
name: Bad Name
steps:
  - id: a
    action: core.noop
    retries: 3
  - action: core.noop
  - id: c
    action: noop
    when: sometimes
""")
    assert "pb.yaml:2: 'name': 'Bad Name' does not match ^[a-z0-9][a-z0-9-]*$" in out
    assert any(p.startswith("pb.yaml:6: step 'a': unknown key 'retries'") for p in out)
    assert "pb.yaml:7: step #2: 'id' is required" in out
    assert any(p.startswith("pb.yaml:9: step 'c': 'action': 'noop' does not match") for p in out)
    assert "pb.yaml:10: step 'c': 'when': 'sometimes' is not one of success, failure, always" \
        in out


def test_graph_problems_all_at_once() -> None:
    out = problems("""
name: g
steps:
  - id: a
    action: core.noop
    needs: [c]
  - id: b
    action: core.noop
    needs: [a, ghost]
  - id: c
    action: core.noop
    needs: [b]
  - id: a
    action: core.noop
  - id: f
    action: core.noop
    when: failure
""")
    assert "pb.yaml:9: step 'b': needs unknown step 'ghost'" in out
    assert "pb.yaml:13: step 'a': duplicate id (first defined as step #1)" in out
    assert "pb.yaml:6: cycle between steps: a -> b -> c -> a" in out
    assert "pb.yaml:17: step 'f': 'when: failure' only makes sense with 'needs'" in out


def test_expression_problems(actions) -> None:
    out = problems("""
name: e
steps:
  - id: a
    action: core.noop
    with: {x: "${{ steps.b.output }}"}
  - id: b
    action: core.noop
    if: "evnt.actor == 'x'"
    with:
      y: "${{ event.a[ }}"
      z: "${{ steps.nope.output }}"
      w: "${{ item }}"
  - id: c
    action: core.noop
    for_each: "items: ${{ event.items }}"
""", actions)
    assert any(p.startswith("pb.yaml:6: step 'a': expression 'steps.b.output' reads steps.b: "
                            "step 'b' is not upstream") for p in out)
    assert any(p.startswith("pb.yaml:9: step 'b': expression 'evnt.actor == 'x'' reads 'evnt'")
               for p in out)
    assert any(p.startswith("pb.yaml:11: step 'b': expression 'event.a[': syntax error")
               for p in out)
    assert any("reads steps.nope: there is no step 'nope'" in p for p in out)
    assert any(p.startswith("pb.yaml:13:") and "'item' exists only in a for_each step" in p
               for p in out)
    assert any(p.startswith("pb.yaml:16: step 'c': for_each must be a single") for p in out)


def test_action_problems(actions) -> None:
    out = problems("""
name: act
steps:
  - id: a
    action: core.nope
  - id: b
    action: falconx.contain
  - id: c
    action: core.http_request
    with: {method: YEET, url: "${{ vars.url }}", extra: 1}
  - id: d
    action: core.http_request
    with: {timeout: "${{ vars.t }}"}
""", actions)
    assert "pb.yaml:5: step 'a': unknown action 'core.nope' (plugin 'core' offers: " \
           "core.http_request, core.noop, core.transform, core.wait_for_approval)" in out
    assert "pb.yaml:7: step 'b': unknown action 'falconx.contain' (no installed plugin " \
           "provides 'falconx.*')" in out
    assert any(p.startswith("pb.yaml:10: step 'c': core.http_request input 'method'") for p in out)
    assert any("unknown key 'extra' (allowed: credential, headers, json, method" in p for p in out)
    # templated values are checked at run time, a missing required key now
    assert any(p.startswith("pb.yaml:13: step 'd': core.http_request input 'url' is required")
               for p in out)
    assert not any("'timeout'" in p for p in out)


def test_problems_are_grouped_in_order(actions) -> None:
    with pytest.raises(SpecError) as info:
        parse_playbook("""
name: grp
steps:
  - id: a
    action: core.nope
    with: {x: "${{ a[ }}"}
  - id: b
    action: core.noop
    needs: [zz]
""", actions)
    groups = [p.group for p in info.value.problems]
    assert groups == sorted(groups, key=["syntax", "graph", "expressions", "actions"].index)
    assert set(groups) == {"graph", "expressions", "actions"}


def test_json_playbooks_load_too(tmp_path: Path, actions) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"name": "j", "steps": [{"id": "a", "action": "core.noop"}]}))
    assert load_playbook(path, actions).name == "j"


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="no such file"):
        load_playbook(tmp_path / "missing.yaml")
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(SpecError, match="not UTF-8"):
        load_playbook(tmp_path / "bin.yaml")
    with pytest.raises(SpecError, match="empty"):
        parse_playbook("", None)


def test_schema_enums_match_code() -> None:
    from crownguard.engine.kinds import When

    schema = playbook_schema()
    assert schema["$defs"]["step"]["properties"]["when"]["enum"] == [w.value for w in When]


def test_negation_trap_is_flagged(actions) -> None:
    out = problems("""
name: neg
steps:
  - {id: a, action: core.noop, if: "!event.actor.departing"}
  - {id: b, action: core.noop, if: "!(event.actor.departing) && !event.x"}
""", actions)
    assert any(p.startswith("pb.yaml:4: step 'a': expression '!event.actor.departing': '!' "
                            "applies to 'event' alone") for p in out)
    assert any(p.startswith("pb.yaml:5:") for p in out)
    assert len(out) == 2  # !(...) is fine; a bare !event.x is the same trap


def test_function_calls_are_checked_before_running(actions) -> None:
    out = problems("""
name: fn
steps:
  - id: a
    action: core.noop
    with:
      x: "${{ nosuchfn(event) }}"
      y: "${{ lower(`1`, `2`) }}"
      z: "${{ lower(`1`) }}"
      ok: "${{ coalesce(event.a, 'b') }} ${{ max_by(event.xs, &n) }} ${{ length('abc') }}"
""", actions)
    assert any("unknown function nosuchfn()" in p for p in out)
    assert any("lower() takes 1 argument(s), got 2" in p for p in out)
    assert any("lower() takes string, not the number 1" in p for p in out)
    assert len(out) == 3


def test_schema_errors_do_not_hide_the_other_checks(actions) -> None:
    with pytest.raises(SpecError) as info:
        parse_playbook("""
name: all-at-once
steps:
  - id: a
    action: core.noop
    retries: 3
    needs: [c]
  - id: a
    action: core.noop
  - id: b
    action: core.nope
    with: {x: "${{ event.[ }}"}
    needs: [c]
  - id: c
    action: core.noop
    needs: [b]
""", actions, file="pb.yaml")
    found = info.value.problems
    out = [str(p) for p in found]
    assert any("pb.yaml:6: step 'a': unknown key 'retries'" in p for p in out), out
    assert any("pb.yaml:8: step 'a': duplicate id" in p for p in out), out
    assert any("cycle between steps" in p for p in out), out
    assert any(str(p).startswith("pb.yaml:12: step 'b'") and p.group == "expressions"
               for p in found), out
    assert any("pb.yaml:11: step 'b': unknown action 'core.nope'" in p for p in out), out
    order = ["syntax", "graph", "expressions", "actions"]
    assert [(order.index(p.group), p.line or 0) for p in found] == sorted(
        (order.index(p.group), p.line or 0) for p in found)


def test_a_step_unusable_after_schema_errors_is_left_out_of_the_other_checks(actions) -> None:
    out = problems("""
name: broken
steps:
  - just a string
  - id: [not, a, string]
    action: core.noop
  - id: ok
    action: 12
    needs: missing
""", actions)
    assert any("needs unknown step 'missing'" in p for p in out), out
    assert not any("unknown action" in p for p in out), out
