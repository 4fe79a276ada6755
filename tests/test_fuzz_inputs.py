"""Fuzzing the five input kinds (playbooks, events, expressions, connections files, policies)
through the functions and commands that read them: bad input is only ever a CrownguardError
(a documented exit code from the CLI: never 70, never a traceback), and every example is
answered in under a second.

Inputs are valid seeds with YAML, JSON and template fragments spliced in (the shapes that have
crashed or hung before: aliases, tags, control characters, keys that are lists, NaN, deep
nesting, `${{` runs, odd secret references), or valid events with a field replaced by any JSON
value. The module runs in well under a minute on two shared cores;
CROWNGUARD_FUZZ_EXAMPLES=2000 explores further (examples per test, a tenth of them through
the CLI).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crownguard.engine.cli import app as cli
from crownguard.engine.cli import triage as cli_triage
from crownguard.engine.config import load_config
from crownguard.engine.errors import CrownguardError
from crownguard.engine.expressions import compile_expression, compile_template, evaluate, render
from crownguard.engine.plugins import PluginHost
from crownguard.engine.spec import load_playbook
from crownguard.engine.triage import build_triage, load_policy
from crownguard.engine.triage.events import normalise_many

ROOT = Path(__file__).resolve().parents[1]
USB = ROOT / "plugins" / "incydr" / "samples" / "model-to-removable-media.json"
BUDGET_SECONDS = 1.0
DOCUMENTED_EXITS = {0, 1, 2, 3}

EXAMPLES = int(os.environ.get("CROWNGUARD_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=1000,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
FEW = settings(FUZZ, max_examples=max(EXAMPLES // 4, 10))

FRAGMENTS = [
    "&a ", "*a", "&a [*a]", "&b {k: *b}", "<<: *a\n", "? [k]\n: v\n", "? {k: 1}\n: v\n",
    "!!int ", "!!float ", "!!bool ", "!!binary ", "!!set ", "!!omap ", "!!timestamp ", "!x ",
    "!!python/object:os.system ", "%YAML 1.1\n---\n", "---\n", "...\n",
    "[", "]", "{", "}", ",", ":", ": ", "- ", "\n", "\n  ", "\n    - ", "\t", "#", "|", ">",
    "'", '"', "\\", "\x00", "\x01", "\x1b", "\x7f", "\x85", "\ufeff", "\u2028", '"\\ud800"',
    ".nan", "-.inf", "1.0e+999", "1e999", "NaN", "0x", "~", "null", "true", "2026-11-20",
    "9" * 5000, "[" * 150, "{a: " * 120, "x" * 3000,
    "${{", "}}", "${{ event }}", "${{ from_json(event.blob) }}", "${{ (((((((((((( }}",
    "${{ ( }}" * 300, "${{ '" + " }}" * 200, "!" * 40, "`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[`",
    "${env:CG_FUZZ}", "${env:}", "${file:/dev/zero}", "${file:\\0}", "${file:~nobody-x/a}",
    "${file:.}", "${file:/nonexistent}", "${vault:x}", "${{ sha256(event.x) }}",
    "~nobody-x/a", "\\0", "`1e300`", "to_number('1e999')", "[@, @] | [@, @] | [@, @]",
]

PLAYBOOK = """\
name: fuzz
trigger:
  if: "event.file.is_model && risk.score >= `10`"
vars: {a: 1, list: [1, 2]}
steps:
  - id: first
    action: core.noop
    with:
      text: "moved ${{ event.file.name }} to ${{ event.destination.kind }}"
      value: "${{ event }}"
  - id: each
    action: core.noop
    needs: [first]
    for_each: "${{ vars.list }}"
    with: {n: "${{ item }}", parsed: "${{ from_json(to_string(steps.first.output)) }}"}
  - id: after
    action: core.transform
    needs: [each]
    when: always
    if: "!(event.actor.departing)"
    with: {expression: "length(@)", input: {a: [1, 2]}}
"""

CONNECTIONS = """\
connections:
  http: {allowed_hosts: ["hooks.example.com"]}
  okta: {base_url: "https://acme.okta.com", token: "${env:CG_FUZZ}"}
  incydr: {base_url: "https://api.us.code42.com", client_id: "id",
           client_secret: "${file:secret.txt}"}
settings:
  max_concurrency: 8
  vars: {team: soc}
"""

POLICY = """\
version: 1
levels: {low: 15, medium: 40, high: 70, critical: 90}
weights: {model_file: 20, departing_employee: 45}
watchlists: {FLIGHT_RISK: 20, default: 5}
destinations:
  trusted_domains: [github.com/acme]
working_hours: {timezone: Europe/Paris, days: [mon, tue], start: "07:00", end: "19:00"}
high_risk_periods:
  - {name: "merger", start: 2027-01-10, end: 2027-03-31, weight: 15}
routing: {shipped_playbooks: false, dedupe_window: 1h, playbooks: []}
mappings:
  dlp:
    when: "kind == 'dlp'"
    fields:
      id: "alert.id"
      time: "alert.at"
      actor.email: "lower(user)"
      file.name: "file.name"
      file.size: "to_number(file.bytes)"
      destination.domain: "target"
"""


def _usb() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(USB.read_text())
    return data


WEBHOOK = {"kind": "dlp", "alert": {"id": "w1", "at": 1732139232000}, "user": "Dana@Example.com",
           "file": {"name": "m.gguf", "bytes": "12"}, "target": "drive.google.com"}
NORMALISED = {"id": "e1", "time": "2026-11-20T21:47:12Z",
              "actor": {"email": "dana@example.com", "departing": True},
              "file": {"name": "m.safetensors", "size": 10},
              "destination": {"kind": "removable_media", "trusted": False}}


@pytest.fixture(scope="module")
def host() -> PluginHost:
    return PluginHost.from_entry_points()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fuzz")
    (path / "secret.txt").write_text("s3cr3t-value\n")
    return path


@pytest.fixture(scope="module")
def policy(workdir: Path) -> Any:
    return load_policy(_write(workdir, "seed-policy.yaml", POLICY))


@pytest.fixture(scope="module")
def triage(host: PluginHost, policy: Any) -> Iterator[Any]:
    built = build_triage(policy, host)
    yield built
    built.close()


@pytest.fixture()
def quick_cli(host: PluginHost, monkeypatch: pytest.MonkeyPatch) -> Callable[..., int]:
    """`crownguard ...` in this process, with the plugins loaded once for the module."""
    parser = cli.build_parser(host)
    monkeypatch.setattr(cli, "build_parser", lambda host=None: parser)
    monkeypatch.setattr(cli, "_host", lambda: host)
    monkeypatch.setattr(cli_triage, "_host", lambda: host)

    def run(capsys: pytest.CaptureFixture[str], *args: Any) -> int:
        code = cli.main([str(a) for a in args])
        out, err = capsys.readouterr()
        assert code in DOCUMENTED_EXITS, (code, err[-2000:])
        assert "Traceback" not in out + err and "internal error" not in err, err[-2000:]
        return code

    return run


@st.composite
def spliced(draw: st.DrawFn, seed: str) -> str:
    """`seed` with a few fragments (or any short text) spliced in and pieces cut out."""
    text = seed
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        cut = draw(st.integers(0, 3))
        piece = draw(st.sampled_from(FRAGMENTS) | st.text(max_size=6))
        text = text[:at] + piece + text[at + cut:]
    return text


JSON_SCALARS = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
                | st.sampled_from(["", "@", "x@y", "2026-11-20T21:47:12Z", "0" * 30,
                                   "a" * 70, "[" * 200, "NaN"]))
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                           max_leaves=12)
DEEP = st.integers(90, 400).map(lambda n: json.loads("[" * n + "]" * n)
                                if n < 900 else [])


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found.extend(_paths(child, (*prefix, key)))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found.extend(_paths(child, (*prefix, index)))
    return found


@st.composite
def mutated_event(draw: st.DrawFn) -> Any:
    """A valid event (Incydr's or normalised) with a few fields replaced or removed."""
    event = draw(st.sampled_from([_usb, lambda: json.loads(json.dumps(NORMALISED)),
                                  lambda: json.loads(json.dumps(WEBHOOK))]))()
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(event)))
        if not path:
            continue
        parent = event
        for key in path[:-1]:
            parent = parent[key]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(JSON_VALUES | DEEP)
    return event


def _timed(check: Callable[[], Any]) -> None:
    """Run `check`; only a CrownguardError may escape it, and only within the budget."""
    started = time.monotonic()
    try:
        check()
    except CrownguardError:
        pass
    elapsed = time.monotonic() - started
    assert elapsed < BUDGET_SECONDS, f"took {elapsed:.2f} s"


def _write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    return path


# --- playbooks -----------------------------------------------------------------------------


@FUZZ
@given(text=spliced(PLAYBOOK))
def test_playbooks(host: PluginHost, workdir: Path, text: str) -> None:
    path = _write(workdir, "fuzz.yaml", text)
    _timed(lambda: load_playbook(path, host.actions))


@FEW
@given(text=spliced(PLAYBOOK), event=mutated_event())
def test_playbooks_through_the_cli(quick_cli: Callable[..., int], capsys: Any, workdir: Path,
                                   text: str, event: Any) -> None:
    path = _write(workdir, "cli.yaml", text)
    event_path = _write(workdir, "event.json", json.dumps(event))
    for command in (["validate", path], ["run", path, "--event", event_path, "--dry-run",
                                         "--json"]):
        started = time.monotonic()
        quick_cli(capsys, *command)
        assert time.monotonic() - started < BUDGET_SECONDS, command[0]


# --- events --------------------------------------------------------------------------------


@FUZZ
@given(event=mutated_event())
def test_events(host: PluginHost, policy: Any, triage: Any, event: Any) -> None:
    def check() -> None:
        for normalised in normalise_many(event, options=policy.options,
                                         mappings=policy.mappings.values(),
                                         sources=host.event_sources.values()):
            triage.triage_event(normalised, claim=False)

    _timed(check)


@FUZZ
@given(text=spliced(json.dumps(_usb(), indent=1)) | spliced(json.dumps([NORMALISED, WEBHOOK])),
       suffix=st.sampled_from([".json", ".yaml"]))
def test_event_files(host: PluginHost, policy: Any, triage: Any, workdir: Path, text: str,
                     suffix: str) -> None:
    path = _write(workdir, "events" + suffix, text)

    def check() -> None:
        payload = cli_triage.load_payload(path)
        for event in cli_triage.normalise_payload(path, payload, policy,
                                                  host.event_sources.values()):
            triage.triage_event(event, claim=False)

    _timed(check)


@FEW
@given(event=mutated_event())
def test_events_through_the_cli(quick_cli: Callable[..., int], capsys: Any, workdir: Path,
                                event: Any) -> None:
    path = _write(workdir, "cli-event.json", json.dumps([event, _usb()]))
    started = time.monotonic()
    assert quick_cli(capsys, "triage", path, "--json") in (0, 2)
    assert time.monotonic() - started < BUDGET_SECONDS


# --- expressions ---------------------------------------------------------------------------

TOKENS = ["event", "steps", "vars", "item", "@", ".", "[", "]", "(", ")", "{", "}", "a", "b",
          ":", ",", "|", "||", "&&", "!", "&", "*", "[*]", "[?", "==", "<", ">=", "`1`", "`[",
          "'x'", '"k"', "length(", "from_json(", "to_string(", "sha256(", "replace(",
          "format(", "split(", "sort_by(", "max_by(", "keys(", "join(", "to_number(", "now()",
          " ", "${{", "}}", "blob", "x", "1", "-1", "\\", "'", '"', "`"]
EXPRESSIONS = st.lists(st.sampled_from(TOKENS), min_size=1, max_size=25).map("".join) \
    | st.text(max_size=30)
CONTEXTS = st.fixed_dictionaries({
    "event": st.fixed_dictionaries({"blob": st.sampled_from(
        ["[" * 5000 + "]" * 5000, '{"a": NaN}', "[1e999]", '"\\ud800"', "{}", "[1, 2]", "x"]),
        "x": JSON_VALUES, "a": JSON_VALUES, "b": JSON_VALUES}),
    "vars": JSON_VALUES, "steps": st.just({"a": {"output": [1, {"k": "v"}]}}),
})


@FUZZ
@given(expression=EXPRESSIONS, context=CONTEXTS)
def test_expressions(expression: str, context: dict[str, Any]) -> None:
    def check() -> None:
        compile_expression(expression)
        result = evaluate(expression, context)
        assert not (isinstance(result, float) and math.isnan(result))

    _timed(check)


@FUZZ
@given(template=st.lists(st.sampled_from(TOKENS) | st.sampled_from(FRAGMENTS), min_size=1,
                         max_size=30).map("".join), context=CONTEXTS)
def test_templates(template: str, context: dict[str, Any]) -> None:
    def check() -> None:
        compile_template(template)
        render({"value": template, "list": [template]}, context)

    _timed(check)


# --- connections files and policies --------------------------------------------------------


@FUZZ
@given(text=spliced(CONNECTIONS))
def test_connections_files(host: PluginHost, workdir: Path, text: str) -> None:
    path = _write(workdir, "connections.yaml", text)

    def check() -> None:
        config = load_config(path, host.connection_types, env={"CG_FUZZ": "token-value-1"})
        config.connections.close()

    _timed(check)


@FUZZ
@given(text=spliced(POLICY))
def test_policies(host: PluginHost, workdir: Path, text: str) -> None:
    path = _write(workdir, "policy.yaml", text)
    _timed(lambda: build_triage(load_policy(path), host).close())


@FEW
@given(policy=spliced(POLICY), config=spliced(CONNECTIONS))
def test_policies_and_connections_through_the_cli(
        quick_cli: Callable[..., int], capsys: Any, workdir: Path, policy: str,
        config: str) -> None:
    policy_path = _write(workdir, "cli-policy.yaml", policy)
    config_path = _write(workdir, "cli-connections.yaml", config)
    started = time.monotonic()
    quick_cli(capsys, "triage", USB, "--policy", policy_path, "--config", config_path)
    assert time.monotonic() - started < BUDGET_SECONDS
