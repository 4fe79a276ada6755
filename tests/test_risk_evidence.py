"""risk.evidence: how the model question was settled, as scoring, routing and playbooks see it;
and the default policy's handling of models only suspected from metadata."""

from __future__ import annotations

from datetime import UTC, date, datetime

from crownguard.engine.spec import parse_playbook
from crownguard.engine.triage.detection import Detection, EvidenceKind, ModelFormat, detect
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
    RiskLevel,
    RiskScore,
    load_policy,
    policy_from_mapping,
    score,
)
from crownguard.engine.triage.router import Router

POLICY = load_policy()
MB = 1024 * 1024
FRIDAY_NIGHT = datetime(2026, 11, 20, 21, 47, tzinfo=UTC)


def leaver(file: FileInfo, kind: DestinationKind = DestinationKind.PERSONAL_EMAIL
           ) -> ModelMovementEvent:
    return ModelMovementEvent(
        id="e1", time=FRIDAY_NIGHT,
        actor=Actor(email="dana@acme.example", departing=True,
                    departure_date=date(2026, 12, 1)),
        file=file, destination=Destination(kind, "dana.home@gmail.com", False),
        source=Source(SourceKind.ENDPOINT))


def test_the_score_carries_the_evidence_the_playbooks_read() -> None:
    real = leaver(FileInfo(name="fraud-v7.pt", size=300 * MB))
    risk = score(real, detect(real), POLICY)
    data = risk.to_dict()["evidence"]
    assert data["kind"] == "metadata" and data["strength"] == "strong"
    assert data["strong"] is True and data["suspected"] is False
    assert "a model by metadata" in data["summary"]
    assert risk.to_dict(only=["evidence"]) == {"evidence": data}


def test_a_suspected_model_is_capped_below_high_and_a_strong_one_is_not() -> None:
    suspected = leaver(FileInfo(name="churn_xgb_v3.pkl", size=80 * MB))
    real = leaver(FileInfo(name="fraud-v7.pt", size=80 * MB))
    low = score(suspected, detect(suspected), POLICY)
    high = score(real, detect(real), POLICY)
    assert low.score == 69 and low.level == RiskLevel.MEDIUM
    capped = [r for r in low.reasons if r.indicator == "suspected_model"]
    assert capped and capped[0].weight < 0 and "capped at 69" in capped[0].detail
    assert sum(r.weight for r in low.reasons) == low.score
    assert high.score > low.score and high.level in (RiskLevel.HIGH, RiskLevel.CRITICAL)
    assert "suspected_model" not in high.indicators
    off = policy_from_mapping({"suspected_model_cap": 100})
    assert score(suspected, detect(suspected), off).score > 69


def test_a_pdf_the_tool_calls_octet_stream_ranks_below_a_real_model_to_gmail() -> None:
    pdf = leaver(FileInfo(name="contract.pdf", size=12 * MB, category="Pdf",
                          mime_type_by_bytes="application/octet-stream"),
                 DestinationKind.PERSONAL_CLOUD)
    real = leaver(FileInfo(name="fraud-v7.pt", size=80 * MB))
    assert score(pdf, detect(pdf), POLICY).score < score(real, detect(real), POLICY).score
    assert not detect(pdf).is_model


def test_a_suspected_disguise_weighs_a_third_of_a_shown_one() -> None:
    file = FileInfo(name="notes.txt", size=900 * MB, mime_type_by_bytes="application/x-hdf5")
    event = leaver(file)
    suspected = detect(event)
    assert suspected.disguised and suspected.strength == "moderate"
    shown = Detection.verdict(0.99, ModelFormat.KERAS_H5, EvidenceKind.CONTENT, ["Keras HDF5"],
                              disguised=True)
    weights = {r.indicator: r.weight for r in score(event, suspected, POLICY).reasons}
    strong = {r.indicator: r.weight for r in score(event, shown, POLICY).reasons}
    assert weights["disguised_file"] == 5 and strong["disguised_file"] == 15


def test_the_evidence_survives_packing() -> None:
    event = leaver(FileInfo(name="churn_xgb_v3.pkl", size=80 * MB))
    risk = score(event, detect(event), POLICY)
    again = RiskScore.unpacked(risk.packed())
    assert again.evidence == risk.evidence and again.to_dict() == risk.to_dict()


def test_routing_tells_strong_from_suspected_evidence() -> None:
    # triggers are memoised on what they read: the evidence must be part of that
    playbook = parse_playbook("name: strong-only\ntrigger: {if: \"risk.evidence.strong\"}\n"
                              "steps: [{id: a, action: core.noop}]\n")
    router = Router([playbook], window_seconds=0)
    for name, expected in (("fraud-v7.pt", True), ("churn_xgb_v3.pkl", False),
                           ("fraud-v8.pt", True), ("lgbm_v2.pkl", False)):
        event = leaver(FileInfo(name=name, size=80 * MB))
        detection = detect(event)
        decisions = router.route_event(event.with_detection(detection),
                                       score(event, detection, POLICY), detection, at=0)
        assert decisions[0].matched is expected, name
