"""Contextual risk scoring: the reasons a SOC analyst would give, with their weights."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from crownguard.engine.errors import SpecError
from crownguard.engine.triage.detection import Detection, Method, ModelFormat, detect
from crownguard.engine.triage.detection.formats import ModelMatch
from crownguard.engine.triage.events import (
    Actor,
    Destination,
    DestinationKind,
    FileInfo,
    ModelMovementEvent,
    Source,
    SourceKind,
)
from crownguard.engine.triage.risk import (
    HistoryFacts,
    InMemoryHistory,
    RiskLevel,
    load_policy,
    policy_from_mapping,
    score,
)

POLICY = load_policy()
GB = 1024**3
# A Tuesday, 14:00 UTC: working hours in London, 23:00 in Tokyo.
TUESDAY_2PM = datetime(2026, 11, 17, 14, 0, tzinfo=UTC)


def event(*, email: str = "dana.kim@acme.example", departing: bool = False,
          departure: date | None = None, watchlists: tuple[str, ...] = (),
          timezone: str | None = "Europe/London", name: str = "fraud-v7.safetensors",
          size: int = 700 * 1024**2, kind: DestinationKind = DestinationKind.REMOVABLE_MEDIA,
          trusted: bool | None = False, when: datetime = TUESDAY_2PM,
          destination_name: str | None = "SanDisk Cruzer") -> ModelMovementEvent:
    return ModelMovementEvent(
        id="e1", time=when,
        actor=Actor(email=email, departing=departing, departure_date=departure,
                    watchlists=watchlists, timezone=timezone),
        file=FileInfo(name=name, size=size),
        destination=Destination(kind, destination_name, trusted),
        source=Source(SourceKind.ENDPOINT))


FRAUD_V7 = ModelMatch("mlflow", "fraud-model", "7", "model/model.safetensors", "restricted")


def registered(match: ModelMatch = FRAUD_V7) -> Detection:
    return Detection.verdict(1.0, ModelFormat.SAFETENSORS, Method.FINGERPRINT,
                             [f"SHA-256 matches {match.describe()}"], match=match)


def by_content(confidence: float = 0.99, *, disguised: bool = False) -> Detection:
    return Detection.verdict(confidence, ModelFormat.SAFETENSORS, Method.CONTENT,
                             ["safetensors header"], disguised=disguised)


NOT_A_MODEL = Detection.verdict(0.0, None, Method.CONTENT, ["delimited text (CSV/TSV)"])


def reasons(risk: Any) -> dict[str, float]:
    return {r.indicator: r.weight for r in risk.reasons}


# --- the scenarios the issue names -----------------------------------------------------------


def test_departing_engineer_copies_a_registered_restricted_model_to_usb() -> None:
    leaves = TUESDAY_2PM.date() + timedelta(days=12)
    risk = score(event(departing=True, departure=leaves), registered(), POLICY,
                 HistoryFacts(prior_model_accesses=0))
    assert risk.level == RiskLevel.CRITICAL and risk.score == 100
    got = reasons(risk)
    assert {"model_file", "registered_model", "model_sensitivity", "departing_employee",
            "untrusted_destination", "notice_period", "first_model_access"} <= set(got)
    text = risk.summary()
    assert "fraud-model v7" in text and "tagged restricted" in text
    assert "leaves 2026-11-29" in text and "12 days before leaving" in text
    assert "removable media (SanDisk Cruzer)" in text


def test_departing_engineer_with_an_unregistered_model_on_usb_is_high() -> None:
    risk = score(event(departing=True), by_content(), POLICY)
    assert risk.level == RiskLevel.HIGH, risk.summary()


def test_researcher_syncs_weights_to_personal_cloud_is_medium_not_high() -> None:
    risk = score(event(kind=DestinationKind.PERSONAL_CLOUD, destination_name="Dropbox"),
                 by_content(), POLICY)
    assert risk.level == RiskLevel.MEDIUM
    assert "departing_employee" not in reasons(risk)
    assert "personal cloud storage (Dropbox)" in risk.summary()


def test_a_csv_export_is_capped_whoever_sends_it_wherever() -> None:
    risk = score(event(departing=True, name="customers.csv",
                       kind=DestinationKind.PERSONAL_CLOUD), NOT_A_MODEL, POLICY)
    assert risk.score == 20 and risk.level == RiskLevel.LOW
    capped = [r for r in risk.reasons if r.indicator == "not_a_model"]
    assert capped and capped[0].weight < 0 and "capped at 20" in capped[0].detail
    assert sum(r.weight for r in risk.reasons) == pytest.approx(risk.score)


def test_a_model_to_a_trusted_destination_during_work_hours_is_low() -> None:
    risk = score(event(kind=DestinationKind.SYNC_APP, trusted=True, destination_name="OneDrive"),
                 by_content(), POLICY)
    assert risk.level == RiskLevel.LOW and set(reasons(risk)) == {"model_file"}


@pytest.mark.parametrize(("scenario", "expected"), [
    ("departing, registered restricted model, USB", (100, RiskLevel.CRITICAL)),
    ("departing, unregistered model file, USB", (85, RiskLevel.HIGH)),
    ("researcher, weights to personal Dropbox", (40, RiskLevel.MEDIUM)),
    ("model to trusted business OneDrive", (20, RiskLevel.LOW)),
    ("departing, CSV to personal cloud", (20, RiskLevel.LOW)),
])
def test_the_examples_in_the_docs(scenario: str, expected: tuple[int, RiskLevel]) -> None:
    cases = {
        "departing, registered restricted model, USB": (event(departing=True), registered()),
        "departing, unregistered model file, USB": (event(departing=True), by_content()),
        "researcher, weights to personal Dropbox": (
            event(kind=DestinationKind.PERSONAL_CLOUD, destination_name="Dropbox"),
            by_content()),
        "model to trusted business OneDrive": (
            event(kind=DestinationKind.SYNC_APP, trusted=True), by_content()),
        "departing, CSV to personal cloud": (
            event(departing=True, kind=DestinationKind.PERSONAL_CLOUD), NOT_A_MODEL),
    }
    moved, detection = cases[scenario]
    risk = score(moved, detection, POLICY)
    assert (risk.score, risk.level) == expected, risk.summary()


def test_the_reason_weights_add_up_to_the_score() -> None:
    risk = score(event(kind=DestinationKind.GENAI_TOOL, destination_name="ChatGPT"),
                 by_content(0.9), POLICY)
    assert sum(r.weight for r in risk.reasons) == pytest.approx(risk.score, abs=0.5)
    data = risk.to_dict()
    assert data["score"] == risk.score and data["level"] == "medium"
    assert all(set(r) == {"indicator", "weight", "detail"} for r in data["reasons"])
    assert data["indicators"] == [r["indicator"] for r in data["reasons"]]


# --- each indicator --------------------------------------------------------------------------


def test_off_hours_are_judged_in_the_persons_own_time_zone() -> None:
    london = score(event(timezone="Europe/London"), by_content(), POLICY)
    tokyo = score(event(timezone="Asia/Tokyo"), by_content(), POLICY)
    assert "off_hours" not in reasons(london)
    assert "off_hours" in reasons(tokyo) and "23:00 on a Tuesday (Asia/Tokyo)" in tokyo.summary()
    unknown = score(event(timezone="Mars/Olympus"), by_content(), POLICY)
    assert "off_hours" not in reasons(unknown)  # falls back to the policy's UTC


def test_weekends_are_off_hours() -> None:
    saturday = TUESDAY_2PM + timedelta(days=4)
    assert "off_hours" in reasons(score(event(when=saturday), by_content(), POLICY))


def test_the_notice_period_and_after_departure() -> None:
    day = TUESDAY_2PM.date()
    soon = score(event(departure=day + timedelta(days=10)), by_content(), POLICY)
    later = score(event(departure=day + timedelta(days=60)), by_content(), POLICY)
    gone = score(event(departure=day - timedelta(days=3)), by_content(), POLICY)
    assert "notice_period" in reasons(soon)
    assert "notice_period" not in reasons(later)
    assert "after the departure date" in gone.summary()
    assert "departing_employee" in reasons(later)  # a known departure date is departing


def test_an_organisation_window_from_the_policy() -> None:
    policy = policy_from_mapping({"high_risk_periods": [
        {"name": "Project Kestrel merger", "start": "2026-11-01", "end": "2026-12-31",
         "weight": 12}]})
    risk = score(event(), by_content(), policy)
    assert reasons(risk)["high_risk_period"] == 12
    assert "Project Kestrel merger" in risk.summary()
    after = score(event(when=datetime(2027, 1, 5, 12, tzinfo=UTC)), by_content(), policy)
    assert "high_risk_period" not in reasons(after)


def test_watchlists_count_once_at_the_highest_weight() -> None:
    risk = score(event(watchlists=("CONTRACT_EMPLOYEE", "FLIGHT_RISK")), by_content(), POLICY)
    assert reasons(risk)["watchlist"] == 20
    assert "CONTRACT_EMPLOYEE, FLIGHT_RISK" in risk.summary()
    departing = score(event(watchlists=("DEPARTING_EMPLOYEE",)), by_content(), POLICY)
    assert "departing_employee" in reasons(departing) and "watchlist" not in reasons(departing)


def test_a_disguised_model_weighs_more() -> None:
    plain = score(event(), by_content(), POLICY)
    hidden = score(event(name="holiday.jpg"), by_content(disguised=True), POLICY)
    assert hidden.score == plain.score + 15
    assert "holiday.jpg" in hidden.summary()


def test_the_model_file_weight_follows_the_detection_confidence() -> None:
    sure = reasons(score(event(), by_content(1.0), POLICY))["model_file"]
    unsure = reasons(score(event(), by_content(0.6), POLICY))["model_file"]
    assert sure == 20 and unsure == 12


def test_sensitivity_tags_weigh_as_the_policy_says() -> None:
    public = ModelMatch("mlflow", "demo", "1", "m.onnx", "public")
    unknown_tag = ModelMatch("mlflow", "demo", "1", "m.onnx", "top-secret")
    assert "model_sensitivity" not in reasons(score(event(), registered(public), POLICY))
    assert reasons(score(event(), registered(unknown_tag), POLICY))["model_sensitivity"] == 5


# --- history ---------------------------------------------------------------------------------


def test_volume_against_the_persons_own_baseline() -> None:
    history = InMemoryHistory()
    today = TUESDAY_2PM.date()
    history.seed_volume("dana.kim@acme.example",
                        {today - timedelta(days=d): 200 * 1024**2 for d in range(1, 6)})
    spike = event(size=2 * GB)
    risk = score(spike, by_content(), POLICY, history)
    assert "volume_spike" in reasons(risk)
    assert "10.2x the usual 200.0 MB a day" in risk.summary()
    usual = score(event(size=150 * 1024**2), by_content(), POLICY, history)
    assert "volume_spike" not in reasons(usual)


def test_volume_without_a_baseline_uses_the_absolute_threshold() -> None:
    history = InMemoryHistory()
    assert "volume_spike" not in reasons(score(event(size=GB), by_content(), POLICY, history))
    big = score(event(size=6 * GB), by_content(), POLICY, history)
    assert "no baseline yet" in big.summary()


def test_volume_accumulates_over_the_day() -> None:
    history = InMemoryHistory()
    detection = by_content()
    for _ in range(5):
        moved = event(size=GB + 100)
        history.record(moved, detection, score(moved, detection, POLICY, history))
    assert "volume_spike" in reasons(score(event(size=GB), detection, POLICY, history))


def test_first_access_and_earlier_violations_come_from_history() -> None:
    history = InMemoryHistory()
    first = event(departing=True)
    detection = registered()
    risk = score(first, detection, POLICY, history)
    assert "first_model_access" in reasons(risk) and "prior_violations" not in reasons(risk)
    history.record(first, detection, risk, violation_level=POLICY.violation_level)
    assert "prior_violations" not in reasons(score(first, detection, POLICY, history))
    later = replace(event(), id="e2")
    second = score(later, detection, POLICY, history)
    assert "first_model_access" not in reasons(second)
    assert reasons(second)["prior_violations"] == 10
    history.add_violations("dana.kim@acme.example", 5)
    assert reasons(score(later, detection, POLICY, history))["prior_violations"] == 20


def test_the_files_of_one_alert_are_one_violation_not_each_others() -> None:
    history = InMemoryHistory()
    detection = registered()
    shards = [replace(event(departing=True), id=f"alert-9:{n}", incident="alert-9",
                      origin="incydr.alert") for n in range(3)]
    for shard in shards:
        risk = score(shard, detection, POLICY, history)
        assert "prior_violations" not in reasons(risk)
        history.record(shard, detection, risk, violation_level=POLICY.violation_level)
    next_alert = replace(shards[0], id="alert-10:0", incident="alert-10")
    assert reasons(score(next_alert, detection, POLICY, history))["prior_violations"] == 10


def test_scoring_never_writes_the_history() -> None:
    history = InMemoryHistory()
    for _ in range(3):
        score(event(departing=True), registered(), POLICY, history)
    assert history.facts(event(), registered()) == HistoryFacts(None, 0, 0, 0)


def test_an_unidentified_model_has_no_first_access_indicator() -> None:
    risk = score(event(), by_content(), POLICY, InMemoryHistory())
    assert "first_model_access" not in reasons(risk)


# --- the policy file -------------------------------------------------------------------------


def test_a_policy_file_overrides_only_what_it_names(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("""\
version: 1
levels: {high: 60}
weights:
  departing_employee: 0
destinations:
  weights: {removable_media: 40}
  trusted_domains: [github.com]
registries:
  mlflow.acme.example: mlflow
working_hours:
  timezone: America/New_York
  start: 09:00
  end: "17:30"
high_risk_periods:
  - {name: Reorganisation, start: 2026-11-01, end: 2026-11-30}
""")
    policy = load_policy(path)
    assert policy.weights["departing_employee"] == 0 and policy.weights["off_hours"] == 10
    assert policy.destination_weights["removable_media"] == 40
    assert policy.destination_weights["personal_cloud"] == 20
    assert policy.work_start == 9 * 60 and policy.work_end == 17 * 60 + 30
    assert policy.options.registry_domains == {"mlflow.acme.example": "mlflow"}
    assert policy.periods[0].start == date(2026, 11, 1) and policy.periods[0].weight == 10
    risk = score(event(departing=True, timezone=None), by_content(), policy)
    got = reasons(risk)
    assert "departing_employee" not in got and got["untrusted_destination"] == 40
    assert "off_hours" not in got  # 14:00 UTC is 09:00 in New York
    assert policy.level_for(60) == "high" and policy.level_for(59) == "medium"


def test_an_invalid_policy_reports_every_problem_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("""\
version: 1
weights:
  departing_employee: lots
  curiosity: 5
working_hours:
  timezone: Mars/Olympus
  end: "25:00"
levels: {low: 50, medium: 40}
violation_level: extreme
""")
    with pytest.raises(SpecError) as caught:
        load_policy(path)
    text = str(caught.value)
    assert f"{path}:3:" in text and "lots" in text
    assert f"{path}:4:" in text and "curiosity" in text
    assert f"{path}:7:" in text
    assert f"{path}:9:" in text and "extreme" in text
    # the checks beyond the schema are reported in the same go
    assert "unknown time zone 'Mars/Olympus'" in text and f"{path}:6:" in text
    assert "thresholds must rise" in text and f"{path}:8:" in text


def test_policy_semantics_beyond_the_schema_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("""\
levels: {low: 50, medium: 40}
working_hours: {timezone: Mars/Olympus}
high_risk_periods:
  - {name: Backwards, start: 2026-12-01, end: 2026-11-01}
mappings:
  acme: {fields: {actor.mood: "x"}}
""")
    with pytest.raises(SpecError) as caught:
        load_policy(path)
    text = str(caught.value)
    assert "unknown time zone 'Mars/Olympus'" in text and f"{path}:2:" in text
    assert "'Backwards' ends (2026-11-01) before it starts (2026-12-01)" in text
    assert f"{path}:4:" in text
    assert "thresholds must rise" in text
    assert "'actor.mood' is not a field" in text and f"{path}:6:" in text


def test_working_hours_that_start_when_they_end_are_refused_and_a_night_shift_works(
        tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text('working_hours: {start: "09:00", end: "09:00"}\n')
    with pytest.raises(SpecError, match="start and end at the same time"):
        load_policy(path)
    night = policy_from_mapping({"working_hours": {"start": "22:00", "end": "06:00",
                                                   "days": ["tue"]}})
    at_night = event(when=datetime(2026, 11, 24, 23, 30, tzinfo=UTC), timezone="UTC")
    midday = event(when=datetime(2026, 11, 24, 12, 0, tzinfo=UTC), timezone="UTC")
    assert "off_hours" not in reasons(score(at_night, by_content(), night))
    assert "off_hours" in reasons(score(midday, by_content(), night))


def test_policy_mappings_are_compiled(tmp_path: Path) -> None:
    policy = policy_from_mapping({"mappings": {"acme": {
        "when": "vendor == 'acme'", "fields": {"id": "id", "time": "ts", "actor.email": "who",
                                               "file.name": "what", "destination.kind":
                                               "'web_upload'"}}}})
    mapping = policy.mappings["acme"]
    from crownguard.engine.triage.events import normalise

    moved = normalise({"vendor": "acme", "id": "1", "ts": "2026-11-17T14:00:00Z",
                       "who": "a@acme.example", "what": "m.gguf"}, mappings=[mapping])
    risk = score(moved, detect(moved), policy)
    assert "gguf model file" in risk.summary()


def test_the_shipped_defaults_are_sensible() -> None:
    assert POLICY.level_for(0) == "info" and POLICY.level_for(100) == "critical"
    assert POLICY.non_model_cap < POLICY.levels[-2][0]  # capped non-models stay below medium
    weights = POLICY.destination_weights
    assert weights["genai_tool"] >= weights["personal_cloud"] >= weights["sync_app"]
    assert weights["endpoint"] == 0


def test_a_policy_that_is_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("- just\n- a list\n")
    with pytest.raises(SpecError, match="a policy file is a mapping"):
        load_policy(path)
    with pytest.raises(SpecError, match="no such file"):
        load_policy(tmp_path / "missing.yaml")


def test_scoring_a_real_pipeline_event() -> None:
    detection = detect(event())
    risk = score(replace(event(), file=FileInfo(name="model.onnx", size=10)), detection, POLICY)
    assert risk.score > 0 and risk.reasons
