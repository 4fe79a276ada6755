"""Bad input is a located message, never an internal error (exit 70) and never a hang: one
test per cause found (issue 12, item 4), each with the few bytes that used to crash, through
the command a user runs."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from crownguard.engine.cli import app as cli
from crownguard.engine.errors import SpecError
from crownguard.engine.loader import (
    MAX_DATA_BYTES,
    MAX_DEPTH,
    MAX_DOCUMENT_BYTES,
    load_file,
    parse_json_text,
    parse_text,
)

ROOT = Path(__file__).resolve().parents[1]
USB = ROOT / "plugins" / "incydr" / "samples" / "model-to-removable-media.json"


def run_cli(capsys: pytest.CaptureFixture[str], *args: Any) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert code != 70 and "Traceback" not in out + err and "internal error" not in err
    return code, out, err


def validate(tmp_path: Path, capsys: Any, text: str | bytes, name: str = "pb.yaml") -> str:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    code, out, err = run_cli(capsys, "validate", path)
    assert code == 1 and err == ""
    return out.strip().replace(str(tmp_path) + "/", "")


# --- the YAML loader -----------------------------------------------------------------------


@pytest.mark.parametrize(("text", "message"), [
    ("a: &x [*x]\n", "pb.yaml:1: invalid YAML: recursive alias *x: the value of &x contains "
                     "itself"),
    ("a: &x {b: {c: *x}}\n", "pb.yaml:1: invalid YAML: recursive alias *x"),
    ("a: &x\n  <<: *x\n", "pb.yaml:2: invalid YAML: recursive alias *x"),
    ("name: x\x01\nsteps: []\n", "pb.yaml:1: invalid YAML: control character U+0001 at "
                                  "column 8"),
    ("name: a\nsteps:\n  - id: \x1b[31m\n", "pb.yaml:3: invalid YAML: control character U+001B"),
    ("? [a, b]\n: 1\n", "pb.yaml:1: invalid YAML: a mapping key is a list; keys are plain text"),
    ("name: a\n? {x: 1}\n: 2\n", "pb.yaml:2: invalid YAML: a mapping key is a mapping"),
    ("name: !!int abc\n", "pb.yaml:1: invalid YAML: 'abc' is not a valid !!int value"),
    ("name: !!float abc\n", "pb.yaml:1: invalid YAML: 'abc' is not a valid !!float value"),
    ("name: !!bool maybe\n", "pb.yaml:1: invalid YAML: 'maybe' is not a valid !!bool value"),
    ("name: !!int 0x\n", "pb.yaml:1: invalid YAML: '0x' is not a valid !!int value"),
    ("a: 1\nname: !!binary aGVsbG8=\n", "pb.yaml:2: invalid YAML: the tag !!binary makes a "
                                        "value JSON has no type for"),
    ("name: !!set {a, b}\n", "pb.yaml:1: invalid YAML: the tag !!set"),
    ("name: !!omap [{a: 1}]\n", "pb.yaml:1: invalid YAML: the tag !!omap"),
    ("name: .nan\n", "pb.yaml:1: invalid YAML: '.nan' is not a JSON number"),
    ("name: -.inf\n", "pb.yaml:1: invalid YAML: '-.inf' is not a JSON number"),
    ("name: 1.0e+999\n", "pb.yaml:1: invalid YAML: '1.0e+999' is not a JSON number"),
    ('name: "\\ud800"\n', "pb.yaml:1: invalid YAML: a \\u escape gives half of a UTF-16 "
                          "surrogate pair"),
    ("name: " + "1" * 5000 + "\n", "pb.yaml:1: invalid YAML: '" + "1" * 38),
])
def test_yaml_the_loader_refuses_is_a_located_message(tmp_path: Path, capsys: Any, text: str,
                                                      message: str) -> None:
    assert validate(tmp_path, capsys, text).startswith(message)


def test_aliases_cannot_nest_past_the_depth_budget(tmp_path: Path, capsys: Any) -> None:
    # Each anchor nests 60 levels; through the alias the value nests 120: the composer sees
    # each part within the budget, the expanded document is past it.
    inner = "[" * 60 + "1" + "]" * 60
    text = f"a: &a {inner}\nb: " + "[" * 60 + "*a" + "]" * 60 + "\n"
    assert validate(tmp_path, capsys, text) == \
        f"pb.yaml:1: lists and objects nest more than {MAX_DEPTH} levels deep"


def test_values_are_json_values() -> None:
    data = parse_text("1: a\ntrue: b\nnull: c\nwhen: 2026-11-20T21:47:12Z\nday: 2026-11-20\n"
                      "x: &x [1]\ny: *x\n", "f.yaml").data
    assert data == {"1": "a", "true": "b", "null": "c", "when": "2026-11-20T21:47:12Z",
                    "day": "2026-11-20", "x": [1], "y": [1]}
    assert parse_text("base: &b {a: 1}\nmore: {<<: *b, c: 2}\n", "f.yaml").data["more"] == \
        {"a": 1, "c": 2}



@pytest.mark.parametrize(("text", "value"), [
    ("NO", "NO"), ("no", "no"), ("Yes", "Yes"), ("on", "on"), ("OFF", "OFF"), ("y", "y"),
    ("n", "n"), ("true", True), ("True", True), ("TRUE", True), ("false", False),
    ("False", False), ("FALSE", False), ("017", 17), ("0o17", 15), ("0x1F", 31), ("-12", -12),
    ("1_000", "1_000"), ("1:20", "1:20"), ("0b11", "0b11"), ("1e3", 1000.0), (".5", 0.5),
    ("~", None), ("null", None), ("!!int 017", 17), ("!!float 3", 3.0),
])
def test_yaml_scalars_follow_the_yaml_1_2_core_schema(text: str, value: Any) -> None:
    data = parse_text(f"country: {text}\n", "f.yaml").data
    assert data == {"country": value} and type(data["country"]) is type(value)


@pytest.mark.parametrize("text", ["!!bool yes", "!!int 1_000", "!!int 1:20", "!!float 1_0.5"])
def test_yaml_1_1_forms_under_an_explicit_tag_are_refused(text: str) -> None:
    with pytest.raises(SpecError, match="is not a valid !!"):
        parse_text(f"a: {text}\n", "f.yaml")

# --- JSON and the files themselves ---------------------------------------------------------


@pytest.mark.parametrize(("text", "message"), [
    ('{"a": 1e999}', "invalid JSON: 1e999 is too large for a JSON number"),
    ('{"a": NaN}', "invalid JSON: NaN is not a JSON value"),
    ('{"a": -Infinity}', "invalid JSON: -Infinity is not a JSON value"),
    ('{"a": ' + "7" * 5000 + "}", "invalid JSON: a number of more than 4,300 digits"),
    ('{"a": "\\ud800"}', "invalid JSON: a \\u escape gives half of a UTF-16 surrogate pair"),
    ('{"\\udfff": 1}', "invalid JSON: a \\u escape gives half of a UTF-16 surrogate pair"),
])
def test_json_that_is_not_json_values_is_refused(text: str, message: str) -> None:
    for locate in (True, False):
        with pytest.raises(SpecError) as caught:
            parse_json_text(text, "e.json", locate=locate)
        assert str(caught.value).startswith(f"e.json: {message}")
    assert parse_json_text('"\\ud83d\\ude00"', "e.json").data == "\U0001f600"


def test_files_past_their_size_budget_are_refused_before_they_are_read(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (MAX_DOCUMENT_BYTES + 1))
    with pytest.raises(SpecError, match=r"big.yaml: the file is too large: 1,048,577 bytes, "
                                        r"past the 1 MiB limit"):
        load_file(big)
    events = tmp_path / "events.json"
    events.write_text(json.dumps([{"a": "x" * 1000}] * 1200))  # 1.2 MB of JSON: fine...
    assert len(load_file(events, locate=False).data) == 1200
    assert load_file(events).lines == {}  # ...too big to locate, which costs only the lines
    with open(events, "r+b") as stream:
        stream.truncate(MAX_DATA_BYTES + 1)
    with pytest.raises(SpecError, match="past the 64 MiB limit"):
        load_file(events, locate=False)


def test_a_device_is_read_up_to_the_budget_never_to_its_end() -> None:
    started = time.monotonic()
    with pytest.raises(SpecError, match="/dev/zero: the file is too large: more than"):
        load_file("/dev/zero")
    assert time.monotonic() - started < 1


@pytest.mark.parametrize(("content", "message"), [
    (b"name: \xff\n", "is not UTF-8 text (byte 7 cannot be read)"),
])
def test_unreadable_text_is_named(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "pb.yaml"
    path.write_bytes(content)
    with pytest.raises(SpecError, match=re.escape(message)):
        load_file(path)


def test_a_nul_in_a_path_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match=r"a\\0b.yaml: cannot read: the path holds a NUL"):
        load_file("a\0b.yaml")


# --- secret references in the connections file ---------------------------------------------


@pytest.mark.parametrize(("reference", "reason"), [
    ("/tmp/a\\0b", "the path holds a NUL character"),
    ("~no-such-user-anywhere/token", "no such home directory"),
    ("/dev/zero", "larger than 64 KiB, the limit of a secret file"),
    ("latin1.txt", "not UTF-8 text"),
    (".", "Is a directory"),
])
def test_an_unusable_secret_file_is_a_located_config_problem(
        tmp_path: Path, capsys: Any, reference: str, reason: str) -> None:
    (tmp_path / "latin1.txt").write_bytes(b"caf\xe9")
    config = tmp_path / "connections.yaml"
    config.write_text('connections:\n  http: {allowed_hosts: ["h.example.com"]}\n'
                      f'  okta: {{base_url: "https://a.example.com",\n'
                      f'         token: "${{file:{reference}}}"}}\n')
    playbook = tmp_path / "pb.yaml"
    playbook.write_text("name: a\nsteps:\n  - {id: a, action: core.noop}\n")
    started = time.monotonic()
    code, _out, err = run_cli(capsys, "run", playbook, "--config", config, "--dry-run")
    assert time.monotonic() - started < 5
    shown = reference  # a NUL is shown as the \0 it was written as
    assert code == 2 and err.strip() == (f"{config}:4: connections.okta.token: cannot read "
                                         f"secret file {shown} ({reason})")


# --- Incydr events -------------------------------------------------------------------------


def usb_event() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(USB.read_text())
    return data


@pytest.mark.parametrize(("section", "key", "value", "field"), [
    ("file", "acquiredFrom", 7, "file.acquiredFrom: expected a list, got int"),
    ("file", "acquiredFrom", "s3", "file.acquiredFrom: expected a list, got str"),
    ("file", "acquiredFrom", {"sourceDomains": 1}, "file.acquiredFrom: expected a list, got dict"),
])
def test_a_bad_incydr_field_names_that_item_and_every_other_item_is_read(
        tmp_path: Path, capsys: Any, section: str, key: str, value: Any, field: str) -> None:
    bad = usb_event()
    bad[section][key] = value
    path = tmp_path / "events.json"
    path.write_text(json.dumps([usb_event(), bad, usb_event(), {"fileEvents": [bad]}]))
    code, out, err = run_cli(capsys, "triage", path)
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [
        f"{path}: item 2: incydr.file_event: {field}",
        f"{path}: item 4: incydr.file_event: {field}",
        f"{path}: 2 of 4 items invalid: nothing was triaged"]


def alert(**data: Any) -> dict[str, Any]:
    return {"id": "a1", "actor": "dana@example.com", "createdAt": "2026-11-20T21:47:12Z",
            "observations": [{"data": {"files": [{"name": "m.safetensors"}], **data}}]}


@pytest.mark.parametrize(("payload", "field"), [
    (alert(files=3), "observations.0.data.files: expected a list, got int"),
    (alert(exposureTypes=3), "observations.0.data.exposureTypes: expected a list, got int"),
    (alert(syncToServices=True), "observations.0.data.syncToServices: expected a list, got bool"),
    (alert(exposureTypes=["ApplicationRead"], appReadDetails=1),
     "observations.0.data.appReadDetails: expected a list, got int"),
    ({**alert(), "watchlists": 5}, "watchlists: expected a list, got int"),
    ({**alert(), "observations": [{"data": "[" * 10_000}]}, "observations.0.data: is not valid JSON"),
    ({"alerts": [7]}, "an Incydr alert is a JSON object"),
])
def test_a_bad_incydr_alert_field_is_named(tmp_path: Path, capsys: Any, payload: Any,
                                           field: str) -> None:
    path = tmp_path / "alert.json"
    path.write_text(json.dumps(payload))
    code, _out, err = run_cli(capsys, "triage", path)
    assert code == 2 and field in err.strip().splitlines()[0]


# --- expressions and templates -------------------------------------------------------------


@pytest.mark.parametrize(("expression", "message"), [
    ("(" * 500 + "a" + ")" * 500, "brackets and prefix operators (! &) nest more than 32 "
                                  "levels deep"),
    ("!" * 500 + "a", "nest more than 32 levels deep"),
    ("[" * 300 + "a" + "]" * 300, "nest more than 32 levels deep"),
    ("`" + "[" * 400 + "]" * 400 + "`", "nest more than 32 levels deep"),
    (" | ".join(["a"] * 600), "more than 128 operations deep"),
    (" || ".join(["a"] * 300), "more than 128 operations deep"),
    ("a" * 5000, "5,000 characters long, past the limit of 4,096"),
    # 2**40 copies of the context: serialising the value (to_string, the journal, the input
    # schema check) would never finish
    ("to_string(@" + " | [@, @]" * 40 + ")", "would copy what they select more than 4,096 "
                                             "times over"),
])
def test_an_expression_past_its_budget_is_an_expression_problem(
        tmp_path: Path, capsys: Any, expression: str, message: str) -> None:
    started = time.monotonic()
    out = validate(tmp_path, capsys, "name: a\nsteps:\n  - id: a\n    action: core.noop\n"
                                     f"    if: {json.dumps(expression)}\n")
    assert time.monotonic() - started < 2
    assert out.startswith("pb.yaml:5: step 'a': expression '") and message in out
    assert len(out) < 400  # the expression is shown cut, with its length


def test_the_budget_leaves_room_for_real_expressions() -> None:
    from crownguard.engine.expressions import compile_expression

    compile_expression(" && ".join(f"event.a{n}.b.c" for n in range(100)))
    compile_expression(".".join(["a"] * 1000))  # a path is one flat node, however long
    compile_expression("(" * 30 + "a" + ")" * 30)
    compile_expression("'" + "(" * 100 + "'")  # quoted text is not nesting
    compile_expression("@" + " | [@, @]" * 12)  # 4,096 copies
    compile_expression(" && ".join(f"contains(['a', 'b', 'c', 'd'], event.k{n})"
                                   for n in range(40)))  # literals are not copies


@pytest.mark.parametrize("text", [
    "${{ ( }}" * 3400,                      # 27 KB: used to take 3.5 minutes
    "${{ ( }}" * 250 + "}}" * 13_000,       # under the template count, as long
    "${{ '" + " }}" * 9000,                 # a quote that never closes
    "${{ {" + " }}" * 9000,                 # a brace that never closes
])
def test_template_scanning_is_linear(tmp_path: Path, capsys: Any, text: str) -> None:
    started = time.monotonic()
    out = validate(tmp_path, capsys, "name: a\nsteps:\n  - id: a\n    action: core.noop\n"
                                     f"    with: {{x: {json.dumps(text)}}}\n")
    assert time.monotonic() - started < 2
    assert out.startswith("pb.yaml:5: step 'a': expression '") and len(out) < 400


def test_templates_past_their_budget() -> None:
    from crownguard.engine.errors import ExpressionError
    from crownguard.engine.expressions import compile_template

    with pytest.raises(ExpressionError, match="more than 256 '\\${{' templates in one string"):
        compile_template("${{ a }}" * 257)
    with pytest.raises(ExpressionError, match="past the limit of 65,536"):
        compile_template("${{ a }}" + "x" * 65_536)
    template = compile_template("${{ a }}" * 256 + "x" * 60_000)
    assert template.render({"a": "b"}) == "b" * 256 + "x" * 60_000
    assert compile_template("${{ {a: b}}} ${{ '}}' }} ${{ `{\"k\": {\"v\": 1}}` }}").expressions \
        == ["{a: b}", "'}}'", '`{"k": {"v": 1}}`']


@pytest.mark.parametrize(("data", "reason"), [
    ("[" * 100_000 + "]" * 100_000, "from_json: lists and objects nest more than 100 levels deep"),
    ("[" * 101 + "]" * 101, "from_json: lists and objects nest more than 100 levels deep"),
    ('{"a": NaN}', "from_json: not JSON (NaN is not a JSON value)"),
    ("[Infinity]", "from_json: not JSON (Infinity is not a JSON value)"),
    ("[1e999]", "from_json: not JSON (1e999 is too large for a JSON number)"),
    ('"\\udc00"', "from_json: a \\u escape gives half of a UTF-16 surrogate pair"),
])
def test_from_json_on_bad_event_data_fails_the_step_and_ends_the_run(
        tmp_path: Path, capsys: Any, data: str, reason: str) -> None:
    playbook = tmp_path / "pb.yaml"
    playbook.write_text("name: a\nsteps:\n  - id: parse\n    action: core.noop\n"
                        "    with: {x: '${{ from_json(event.blob) }}'}\n"
                        "  - id: after\n    action: core.noop\n    needs: [parse]\n"
                        "    when: always\n")
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"blob": data}))
    journal = tmp_path / "journal.sqlite"
    code, out, _err = run_cli(capsys, "run", playbook, "--event", event, "--json",
                              "--journal", journal)
    record = json.loads(out)
    assert code == 1 and record["status"] == "failed"
    assert record["steps"]["parse"]["status"] == "failed"
    assert reason in record["steps"]["parse"]["error"]
    assert record["steps"]["after"]["status"] == "succeeded"
    code, out, _err = run_cli(capsys, "runs", "--journal", journal)
    assert code == 0 and "running" not in out and "failed" in out


def test_other_evaluation_failures_are_expression_errors() -> None:
    from crownguard.engine.errors import ExpressionError
    from crownguard.engine.expressions import evaluate

    assert evaluate("sha256(a)", {"a": "\ud800"})  # a lone surrogate from anywhere
    with pytest.raises(ExpressionError, match="replace: the result would be"):
        evaluate("replace(replace(replace(a, '', 'xxxxxxxxxx'), '', 'xxxxxxxxxx'), '', 'xx')",
                 {"a": "y" * 10_000})
    with pytest.raises(ExpressionError, match="format: the result would be"):
        evaluate("format('{0}{0}{0}{0}', [a])", {"a": "y" * 300_000})


# --- policies ------------------------------------------------------------------------------


def test_routing_paths_no_file_can_have_are_located_policy_problems(
        tmp_path: Path, capsys: Any) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text('routing:\n  playbooks: ["a\\0b", "~no-such-user-anywhere/x"]\n'
                      '  dedupe_store: "\\0"\n')
    code, out, err = run_cli(capsys, "triage", USB, "--policy", policy)
    assert code == 2 and out == ""
    assert sorted(err.strip().splitlines()) == [
        f"{policy}:2: routing.playbooks.0: the path holds a NUL character",
        f"{policy}:2: routing.playbooks.1: ~no-such-user-anywhere is no one's home directory",
        f"{policy}:3: routing.dedupe_store: the path holds a NUL character"]


@pytest.mark.parametrize("time_expression", ["`1e300`", "to_number('1e999')", "`-1e300`"])
def test_a_webhook_time_no_clock_can_show_is_an_event_error(
        tmp_path: Path, capsys: Any, time_expression: str) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("mappings:\n  hook:\n    when: \"kind == 'dlp'\"\n    fields:\n"
                      "      id: \"'x'\"\n      actor.email: \"'a@b.example'\"\n"
                      "      file.name: \"'m.gguf'\"\n      destination.kind: \"'email'\"\n"
                      f"      time: {json.dumps(time_expression)}\n")
    event = tmp_path / "event.json"
    event.write_text('{"kind": "dlp"}')
    code, out, err = run_cli(capsys, "triage", event, "--policy", policy)
    assert code == 2 and out == "" and "webhook:hook: time: " in err


def test_the_exit_codes_are_documented_in_the_help() -> None:
    text = " ".join(cli.build_parser().format_help().split())
    assert ("exit codes: 0 ok; 1 a run failed or was cancelled, or a playbook does not "
            "validate; 2 a usage or input error") in text
    assert "70 an internal error (a bug, never bad input" in text
