"""Routing: triggers over {event, risk, vars}, dedupe per playbook, file and person, and the
triage pipeline that feeds it, with the shipped playbooks' triggers as a decision table."""

from __future__ import annotations

import itertools
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crownguard.engine.errors import RoutingError, SpecError
from crownguard.engine.expressions import evaluate, truthy
from crownguard.engine.plugins import PluginHost
from crownguard.engine.spec import parse_playbook
from crownguard.engine.triage.dedupe import InMemoryDedupe, SQLiteDedupe, dedupe_key
from crownguard.engine.triage.detection import detect
from crownguard.engine.triage.detection.fingerprints import FingerprintIndex, ModelVersionRef
from crownguard.engine.triage.events import normalise_many
from crownguard.engine.triage.pipeline import build_triage
from crownguard.engine.triage.risk import load_policy, policy_from_mapping
from crownguard.engine.triage.router import (
    Router,
    RoutingSettings,
    load_playbooks,
    parse_window,
    playbook_files,
    shipped_playbooks_dir,
)

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "plugins" / "incydr" / "samples"
SHIPPED = ("departing-employee-model-exfil", "model-to-personal-cloud-or-genai",
           "model-to-removable-media", "low-risk-model-nudge")


@pytest.fixture(scope="module")
def host() -> PluginHost:
    return PluginHost.from_entry_points()


def playbook(name: str, trigger: str | None, vars_: dict[str, Any] | None = None) -> Any:
    text = f"name: {name}\n"
    if trigger:
        text += f"trigger: {{if: {json.dumps(trigger)}}}\n"
    if vars_:
        text += f"vars: {json.dumps(vars_)}\n"
    return parse_playbook(text + "steps: [{id: a, action: core.noop}]\n")


def event(email: str = "dana@acme.example", sha: str | None = "ab" * 32,
          path: str | None = "/tmp/model.safetensors") -> dict[str, Any]:
    return {"actor": {"email": email, "departing": True},
            "file": {"name": "model.safetensors", "sha256": sha, "path": path, "is_model": True},
            "destination": {"kind": "removable_media"}}


def chosen(decisions: list[Any]) -> list[str]:
    return [d.playbook for d in decisions if d.chosen]


# --- the router --------------------------------------------------------------------------------


def test_triggers_see_event_risk_and_vars_with_config_vars_winning() -> None:
    router = Router([playbook("high", "risk.score >= vars.min", {"min": 70}),
                     playbook("usb", "event.destination.kind == 'removable_media'"),
                     playbook("never", "event.actor.departing == `false`"),
                     playbook("manual", None)],
                    variables={"other": 1})
    decisions = router.route(event(), {"score": 80}, at=0)
    assert chosen(decisions) == ["high", "usb"]
    assert {d.playbook: d.reason for d in decisions}["never"] == "trigger is false"
    assert router.untriggered == ["manual"] and router.routed == ["high", "usb", "never"]
    strict = Router([playbook("high", "risk.score >= vars.min", {"min": 70})],
                    variables={"min": 90})
    assert chosen(strict.route(event(), {"score": 80}, at=0)) == []


def test_a_trigger_that_fails_on_an_event_is_reported_not_raised() -> None:
    router = Router([playbook("bad", "length(event.file.size) > `1`"),
                     playbook("good", "`true`")])
    decisions = router.route(event(), {}, at=0)
    assert chosen(decisions) == ["good"]
    assert decisions[0].reason.startswith("trigger failed: expression")


def test_two_playbooks_with_one_name_are_refused() -> None:
    with pytest.raises(RoutingError, match="two playbooks are named 'x'"):
        Router([playbook("x", "`true`"), playbook("x", "`false`")])


def test_same_file_and_person_start_a_playbook_once_within_the_window() -> None:
    router = Router([playbook("p", "`true`")], window_seconds=3600)
    assert chosen(router.route(event(), {}, at=1000, claim=True)) == ["p"]
    again = router.route(event(), {}, at=1000 + 1800, claim=True)
    assert chosen(again) == [] and again[0].matched
    assert "duplicate" in again[0].reason and "30 min earlier" in again[0].reason
    assert chosen(router.route(event(email="other@acme.example"), {}, at=1001,
                               claim=True)) == ["p"]
    assert chosen(router.route(event(sha="cd" * 32), {}, at=1002, claim=True)) == ["p"]
    # A late-arriving event from before the first start is still within the window.
    assert chosen(router.route(event(), {}, at=1000 - 60, claim=True)) == []
    assert chosen(router.route(event(), {}, at=1000 + 3600, claim=True)) == ["p"]


def test_triage_only_looks_and_a_zero_window_turns_dedupe_off() -> None:
    router = Router([playbook("p", "`true`")])
    for _ in range(2):
        assert chosen(router.route(event(), {}, at=5, claim=False)) == ["p"]
    router.route(event(), {}, at=5, claim=True)
    assert chosen(router.route(event(), {}, at=5, claim=False)) == []
    off = Router([playbook("p", "`true`")], window_seconds=0)
    for _ in range(2):
        assert chosen(off.route(event(), {}, at=5, claim=True)) == ["p"]


def test_the_dedupe_key_is_the_file_hash_else_its_path_and_keeps_no_clear_text() -> None:
    same_hash = dedupe_key("p", event(path="/a")), dedupe_key("p", event(path="/b"))
    assert same_hash[0] == same_hash[1]
    by_path = dedupe_key("p", event(sha=None, path="/a")), dedupe_key("p", event(sha=None,
                                                                                 path="/b"))
    assert by_path[0] != by_path[1]
    assert dedupe_key("p", event(email="DANA@acme.example")) == dedupe_key("p", event())
    assert "dana" not in dedupe_key("p", event()) and len(dedupe_key("p", event())) == 64


def test_sqlite_dedupe_is_shared_between_stores_and_claims_once_under_threads(
        tmp_path: Path) -> None:
    path = tmp_path / "state" / "dedupe.sqlite"
    first, second = SQLiteDedupe(path), SQLiteDedupe(path)
    assert first.claim("k", 100.0, 60) is None
    assert second.last_start("k", 130.0, 60) == 100.0
    assert second.claim("k", 130.0, 60) == 100.0
    assert second.claim("k", 200.0, 60) is None
    wins: list[bool] = []
    barrier = threading.Barrier(8)

    def claim() -> None:
        store = SQLiteDedupe(path)
        barrier.wait()
        wins.append(store.claim("race", 1.0, 60) is None)
        store.close()

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wins.count(True) == 1
    first.close()
    second.close()


def test_in_memory_dedupe_matches_the_protocol() -> None:
    store = InMemoryDedupe()
    assert store.claim("k", 10, 5) is None and store.claim("k", 12, 5) == 10
    assert store.last_start("k", 20, 5) is None


@pytest.mark.parametrize(("text", "seconds"), [(None, 3600), (90, 90), ("90m", 5400),
                                               ("1h", 3600), ("2d", 172800), ("0", 0),
                                               ("1.5 h", 5400)])
def test_dedupe_windows(text: Any, seconds: float) -> None:
    assert parse_window(text) == seconds


def test_a_bad_window_is_refused() -> None:
    with pytest.raises(RoutingError, match="not a duration"):
        parse_window("soon")
    with pytest.raises(SpecError) as info:
        policy_from_mapping({"routing": {"dedupe_window": "5 weeks"}})
    assert "routing/dedupe_window" in str(info.value)


# --- settings and loading ----------------------------------------------------------------------


def test_routing_settings_resolve_paths_against_the_policy_file(tmp_path: Path) -> None:
    policy_file = tmp_path / "conf" / "policy.yaml"
    policy_file.parent.mkdir()
    policy_file.write_text("version: 1\nrouting:\n  playbooks: [../books]\n  dedupe_window: 2h\n"
                           "  dedupe_store: state/dedupe.sqlite\n  shipped_playbooks: false\n")
    settings = RoutingSettings.from_policy(load_policy(policy_file))
    assert settings.playbooks == (tmp_path / "conf" / ".." / "books",)
    assert settings.window_seconds == 7200 and not settings.shipped_playbooks
    assert settings.dedupe_store == tmp_path / "conf" / "state" / "dedupe.sqlite"
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nrouting:\n  dedupe_windw: 1h\n")
    with pytest.raises(SpecError) as info:
        load_policy(bad)
    assert str(info.value.problems[0]).startswith(f"{bad}:3:")


def test_playbook_directories_skip_scenarios_and_report_every_broken_file(
        tmp_path: Path, host: PluginHost) -> None:
    (tmp_path / "a.yaml").write_text("name: a\nsteps: [{id: s, action: core.noop}]\n")
    (tmp_path / "x.scenario.yaml").write_text("expect: {}\n")
    (tmp_path / "notes.md").write_text("# notes\n")
    (tmp_path / "b.yml").write_text("name: b\nsteps: [{id: s, action: core.nope}]\n")
    (tmp_path / "c.json").write_text('{"name": "c", "steps": []}')
    assert [p.name for p in playbook_files([tmp_path, tmp_path / "a.yaml"])] == \
        ["a.yaml", "b.yml", "c.json"]
    with pytest.raises(SpecError) as info:
        load_playbooks([tmp_path], host.actions)
    files = {Path(p.file).name for p in info.value.problems}
    assert files == {"b.yml", "c.json"}



def test_playbook_directories_skip_files_that_are_not_playbooks(
        tmp_path: Path, host: PluginHost) -> None:
    (tmp_path / "a.yaml").write_text("name: a\nsteps: [{id: s, action: core.noop}]\n")
    (tmp_path / "README.md").write_text("# playbooks\n")
    (tmp_path / "README").write_text("playbooks\n")
    (tmp_path / "policy.yaml").write_text("version: 1\nrouting: {playbooks: [.]}\n")
    (tmp_path / "connections.yml").write_text("connections: {}\n")
    (tmp_path / "event.json").write_text('{"event": {"id": "1"}}')
    (tmp_path / "x.scenario.yaml").write_text("expect: {}\n")
    (tmp_path / ".a.yaml").write_text("\x00")
    (tmp_path / "notes.yaml").write_text("- just\n- a list\n")
    assert [p.name for p in load_playbooks([tmp_path], host.actions)] == ["a"]
    # Named on its own, a file that is not a playbook is still reported.
    with pytest.raises(SpecError):
        load_playbooks([tmp_path / "policy.yaml"], host.actions)

def test_the_shipped_playbooks_are_found(host: PluginHost) -> None:
    directory = shipped_playbooks_dir()
    assert directory is not None
    found = load_playbooks([directory], host.actions)
    # model-access-request decides access requests (docs/access.md): routing never starts it.
    assert {p.name for p in found} == {*SHIPPED, "model-access-request"}
    assert [p.name for p in found if not p.trigger_if] == ["model-access-request"]


# --- the pipeline ------------------------------------------------------------------------------


def sample(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SAMPLES / f"{name}.json").read_text())
    return data


@pytest.mark.parametrize(("sample_name", "expected"), [
    ("model-to-removable-media", ["departing-employee-model-exfil"]),
    ("model-to-personal-cloud", ["model-to-personal-cloud-or-genai"]),
    ("model-upload-genai-browser", ["model-to-personal-cloud-or-genai"]),
    ("csv-export-not-model", []),
])
def test_the_incydr_samples_route_to_the_expected_playbook(
        host: PluginHost, sample_name: str, expected: list[str]) -> None:
    triage = build_triage(load_policy(), host)
    [verdict] = triage.triage(sample(sample_name))
    assert [p.name for p in verdict.playbooks] == expected
    routed = {d.playbook for d in verdict.decisions}
    assert set(SHIPPED) <= routed


def test_a_registry_match_names_the_model_for_the_playbooks(host: PluginHost) -> None:
    raw = sample("model-to-removable-media")
    index = FingerprintIndex()
    index.add_version(ModelVersionRef("mlflow", "support-llm", "3", "restricted"),
                      {"files": [{"path": "model/w.safetensors",
                                  "sha256": raw["file"]["hash"]["sha256"]}]})
    triage = build_triage(load_policy(), host, index=index)
    [verdict] = triage.triage(raw)
    source = verdict.event_data["source"]
    assert (source["registry"], source["model"], source["version"]) == ("mlflow", "support-llm",
                                                                        "3")
    assert verdict.risk_data["detection"]["match"]["model"] == "support-llm"
    assert verdict.risk_data["level"] == "critical"
    assert verdict.event_data["file"]["is_model"] is True
    data = verdict.to_dict()
    assert "raw" not in data["event"] and data["playbooks"] == [
        "departing-employee-model-exfil"]
    assert "detection" not in data["risk"] and data["detection"]["method"] == "registry_fingerprint"


def test_history_counts_an_event_once_and_a_trusted_download_is_no_violation(
        host: PluginHost) -> None:
    usb = sample("model-to-removable-media")
    download = json.loads(json.dumps(usb))
    download["event"].update(id="download-1", action="file-downloaded")
    download["destination"] = {"category": "Device", "name": "laptop", "domains": []}
    download["risk"]["trusted"] = True
    triage = build_triage(load_policy(), host)
    [first] = triage.triage(download, claim=True)
    assert first.risk.level in ("high", "critical") and first.playbooks == []
    [copy] = triage.triage(usb, claim=True)
    assert "prior_violations" not in copy.risk.indicators
    [again] = triage.triage(usb, claim=True)
    assert again.risk == copy.risk  # the same event keeps its score: not its own violation
    assert again.playbooks == [] and again.decisions[0].reason.startswith("duplicate")


ODD_TRIGGERS = [
    "risk.detection.match.model == 'support-llm'",
    "length(risk.reasons) > `2` && event.time > '2026'",
    "contains(risk.indicators, 'departing_employee')",
    "event.source.model != `null` || event.device.hostname == 'host-1'",
    "length(keys(event)) > `5` && risk.detection.is_model",
    "@.event.file.is_model",
    "event.raw.event.action == 'removable-media-created'",
    "event.file.is_model && !contains(['info', 'low'], risk.level)",
]


def test_triggers_see_the_event_and_score_as_playbooks_do(host: PluginHost) -> None:
    """Triage builds only what the triggers read: every trigger, however odd, must decide as
    it would over the whole event and score a playbook run gets."""
    raw = sample("model-to-removable-media")
    index = FingerprintIndex()
    index.add_version(ModelVersionRef("mlflow", "support-llm", "3", "restricted"),
                      {"files": [{"path": "model/w.safetensors",
                                  "sha256": raw["file"]["hash"]["sha256"]}]})
    events = [raw, sample("model-to-personal-cloud"), sample("csv-export-not-model")]
    for trigger in ODD_TRIGGERS:
        router = Router([playbook("odd", trigger), playbook("plain", "event.file.is_model")],
                        window_seconds=0)
        triage = build_triage(policy_from_mapping({}), host, index=index)
        triage.router = router
        for item in events:
            [verdict] = triage.triage(item)
            whole = {"event": verdict.event_data, "risk": verdict.risk_data, "vars": {}}
            expected = [name for name, text in (("odd", trigger),
                                                 ("plain", "event.file.is_model"))
                        if truthy(evaluate(text, whole))]
            assert [p.name for p in verdict.playbooks] == expected, (trigger, item["event"])
    assert Router([playbook("x", "event.file.is_model && risk.level == 'high'")]).event_keys \
        == {"file", "actor"}  # what dedupe needs, and nothing more is built


KINDS = ["removable_media", "personal_cloud", "personal_email", "genai_tool", "web_upload",
         "git_push", "sync_app", "cloud_share", "email", "printer", "endpoint", "unknown"]

MEMO_TRIGGERS = ["event.actor.departing == `true` && risk.score >= `50`",
                 "not_null(risk.detection.match) && risk.detection.confidence > `0.8`",
                 "risk.detection.format == 'safetensors' || length(keys(risk.detection)) > `9`",
                 "contains(risk.indicators, 'off_hours') || event.file.size > `1000000000`",
                 "event.time < '2026-11-15' && event.destination.trusted != `true`",
                 "event.action == `true`"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.fixed_dictionaries({
    "departing": st.booleans(), "kind": st.sampled_from(KINDS),
    "trusted": st.sampled_from([True, False, None]),
    "name": st.sampled_from(["m.safetensors", "notes.txt", "pytorch_model.bin", "a.gguf"]),
    "size": st.sampled_from([None, 10, 2 * 1024**3]), "day": st.integers(1, 28),
    "hour": st.integers(0, 23), "action": st.sampled_from([None, "x", True, 1])}),
    min_size=1, max_size=12))
def test_remembered_trigger_outcomes_equal_evaluating_every_event(items: list[Any]) -> None:
    """Routing computes each combination of read values once: every event must still get
    what evaluating its triggers over its full data gives (1 and true kept apart)."""
    host = PluginHost.from_entry_points()
    shipped = load_playbooks([shipped_playbooks_dir()], host.actions)
    extra = [playbook(f"extra-{i}", text) for i, text in enumerate(MEMO_TRIGGERS)]
    router = Router([*shipped, *extra], window_seconds=0)
    assert router._getters is not None  # these triggers are remembered, not re-evaluated
    triage = build_triage(policy_from_mapping({}), host)
    triage.router = router
    for number, item in enumerate(items):
        data = {"id": f"e{number}", "time": f"2026-11-{item['day']:02d}T{item['hour']:02d}:00:00Z",
                "actor": {"email": "p@acme.example", "departing": item["departing"]},
                "file": {"name": item["name"], "size": item["size"]},
                "destination": {"kind": item["kind"], "trusted": item["trusted"]}}
        [event] = normalise_many(data)
        event.action = item["action"]  # not a string: what a loose webhook mapping might give
        verdict = triage.triage_event(event)
        whole = {"event": verdict.event_data, "risk": verdict.risk_data}
        expected = [route.playbook.name for route in router._routes
                    if truthy(evaluate(route.playbook.trigger_if,
                                       {**whole, "vars": route.vars}))]
        assert [d.playbook for d in verdict.decisions if d.matched] == expected


def test_remembered_outcomes_keep_one_and_true_apart(host: PluginHost) -> None:
    # Python has 1 == True (and equal hashes); JMESPath does not: `1 == true` is false.
    triage = build_triage(policy_from_mapping({}), host)
    triage.router = Router([playbook("exact", "event.action == `true`")], window_seconds=0)
    data = {"id": "e", "time": "2026-11-02T10:00:00Z", "actor": {"email": "p@acme.example"},
            "file": {"name": "m.safetensors"}, "destination": {"kind": "unknown"}}
    matched = []
    for action in (1, True, 1.0, True):
        [event] = normalise_many(data)
        event.action = action
        matched.append(bool(triage.triage_event(event).playbooks))
    assert matched == [False, True, False, True]


def test_a_redelivered_event_keeps_its_score_while_it_is_recent(host: PluginHost) -> None:
    triage = build_triage(policy_from_mapping({}), host)
    triage.RECENT_EVENTS = 4  # keeps the last 2 to 4 events

    def event(number: int, size: int = 1000) -> Any:
        [item] = normalise_many({
            "id": f"e{number}", "time": "2026-11-02T10:00:00Z",
            "actor": {"email": "p@acme.example"},
            "file": {"name": "m.safetensors", "size": size},
            "destination": {"kind": "removable_media"}})
        return item

    def bytes_today() -> int:
        probe = event(99)
        return triage.history.facts(probe, detect(probe)).bytes_today

    first = triage.triage_event(event(0)).risk
    triage.triage_event(event(1))
    assert bytes_today() == 2000
    again = triage.triage_event(event(0))
    assert again.risk == first and bytes_today() == 2000  # re-delivered: not counted again
    for number in range(2, 7):
        triage.triage_event(event(number, size=1))
    assert bytes_today() == 2005
    triage.triage_event(event(0))
    assert bytes_today() == 3005  # long gone: taken for a new event


def test_a_read_value_that_cannot_be_remembered_is_evaluated(host: PluginHost) -> None:
    triage = build_triage(policy_from_mapping({}), host)
    triage.router = Router([playbook("listed", "contains(event.action, 'x')")],
                           window_seconds=0)
    [event] = normalise_many({"id": "e", "time": "2026-11-02T10:00:00Z",
                              "actor": {"email": "p@acme.example"},
                              "file": {"name": "m.safetensors"},
                              "destination": {"kind": "unknown"}})
    event.action = ["x", "y"]  # set by hand: a list is no dictionary key
    assert [p.name for p in triage.triage_event(event).playbooks] == ["listed"]


def verdict_for(host: PluginHost, triage: Any, *, departing: bool, kind: str,
                trusted: bool | None, extra: dict[str, Any]) -> list[str]:
    data = {"id": f"e-{departing}-{kind}-{trusted}-{len(extra)}", "time": "2026-11-24T10:00:00Z",
            "actor": {"email": "p@acme.example", "departing": departing,
                      "watchlists": extra.get("watchlists", [])},
            "file": {"name": extra.get("name", "model.safetensors"),
                     "sha256": extra.get("sha256")},
            "destination": {"kind": kind, "trusted": trusted},
            "device": {"hostname": "host-1"}}
    [verdict] = triage.triage(data)
    return [p.name for p in verdict.playbooks]



def test_the_shipped_triggers_never_start_two_responses_for_one_event(host: PluginHost) -> None:
    """The decision table: at most one shipped playbook per event, departing people are never
    nudged, non-models and trusted destinations start nothing."""
    triage = build_triage(policy_from_mapping({"routing": {"dedupe_window": 0}}), host)
    nudging = {"model-to-personal-cloud-or-genai", "model-to-removable-media",
               "low-risk-model-nudge"}
    for departing, kind, trusted, extra in itertools.product(
            [True, False], KINDS, [None, False, True],
            [{}, {"watchlists": ["FLIGHT_RISK", "HIGH_RISK_EMPLOYEE"]}, {"name": "report.csv"}]):
        chosen_names = verdict_for(host, triage, departing=departing, kind=kind,
                                   trusted=trusted, extra=extra)
        where = (departing, kind, trusted, extra)
        assert len(chosen_names) <= 1, where
        if departing:
            assert not nudging & set(chosen_names), where
            if trusted is not True and kind != "endpoint" and "name" not in extra:
                # a leaver's model leaving is never left without a response
                assert chosen_names == ["departing-employee-model-exfil"], where
        if trusted or kind == "endpoint" or extra.get("name") == "report.csv":
            assert chosen_names == [], where
        if not departing and trusted is not True and "name" not in extra:
            if kind == "removable_media":
                assert chosen_names == ["model-to-removable-media"], where
            if kind in ("personal_cloud", "genai_tool"):
                assert chosen_names == ["model-to-personal-cloud-or-genai"], where


def test_a_departing_employee_at_high_risk_is_contained_wherever_it_went(
        host: PluginHost) -> None:
    triage = build_triage(policy_from_mapping({"routing": {"dedupe_window": 0}}), host)
    for kind in KINDS:
        expected = [] if kind == "endpoint" else ["departing-employee-model-exfil"]
        assert verdict_for(host, triage, departing=True, kind=kind, trusted=False,
                           extra={}) == expected, kind


def test_a_missing_policy_playbook_path_names_the_policy_setting(tmp_path: Path,
                                                                 host: PluginHost) -> None:
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text("routing: {playbooks: [nowhere/]}\n")
    with pytest.raises(RoutingError, match=r"policy.yaml: routing.playbooks: no such file or "
                                           r"directory: .*nowhere"):
        build_triage(load_policy(policy_file), host)


def test_policy_playbooks_join_the_shipped_ones_or_replace_them(tmp_path: Path,
                                                                 host: PluginHost) -> None:
    (tmp_path / "books").mkdir()
    (tmp_path / "books" / "mine.yaml").write_text(
        "name: mine\ntrigger: {if: \"event.file.is_model\"}\nsteps: [{id: a, action: core.noop}]\n")
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text("version: 1\nrouting: {playbooks: [books]}\n")
    both = build_triage(load_policy(policy_file), host)
    assert set(both.router.routed) == {*SHIPPED, "mine"}
    policy_file.write_text("version: 1\nrouting: {playbooks: [books], shipped_playbooks: false}\n")
    only = build_triage(load_policy(policy_file), host)
    assert only.router.routed == ["mine"]
    policy_file.write_text("version: 1\nrouting: {fingerprints: missing.sqlite}\n")
    with pytest.raises(RoutingError, match="no fingerprint index"):
        build_triage(load_policy(policy_file), host)
