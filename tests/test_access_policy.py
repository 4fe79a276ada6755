"""The policy's access section and the decision on a request."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from crownguard.engine.errors import SpecError
from crownguard.engine.service.access_policy import (
    Outcome,
    access_policy,
    decide,
    request_problems,
)
from crownguard.engine.service.access_store import NewRequest
from crownguard.engine.triage.policy import load_policy, policy_from_mapping

WEDNESDAY_NOON = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
SUNDAY_NIGHT = datetime(2026, 12, 6, 23, 0, tzinfo=UTC)
ACCESS = {"access": {
    "models": {"tag": "sensitivity", "values": ["restricted", "confidential"]},
    "auto_grant_below": 25, "two_approvers_from": 40, "max_duration_hours": 24,
    "approvers": {"owner_tag": "owner", "people": ["ciso@corp.example"]},
    "people": {
        "dana@corp.example": {"departure_date": "2026-12-10"},
        "flo@corp.example": {"watchlists": ["FLIGHT_RISK"], "prior_violations": 1}}}}


def ask(who: str = "alice@corp.example", hours: float = 4) -> NewRequest:
    return NewRequest(who, "fraud-model", "read", "retraining the fraud model on Q3 data",
                      round(hours * 3600))


RESTRICTED = {"sensitivity": "restricted", "owner": "omar@corp.example"}


def test_low_risk_is_granted_and_says_why() -> None:
    decision = decide(ask(), {"sensitivity": "confidential"}, policy_from_mapping(ACCESS),
                      WEDNESDAY_NOON)
    assert decision.outcome == Outcome.GRANT
    assert decision.risk.score == 10  # the model's sensitivity only
    assert "granted by policy: risk 10" in decision.reason and "tagged confidential" in \
        decision.reason


def test_medium_risk_asks_the_owner_and_the_named_approvers() -> None:
    decision = decide(ask(), RESTRICTED, policy_from_mapping(ACCESS), SUNDAY_NIGHT)
    assert decision.outcome == Outcome.ASK and decision.risk.score == 30  # 20 + off hours 10
    assert decision.approvals_required == 1
    assert decision.approvers == ("omar@corp.example", "ciso@corp.example")
    assert "off hours" in decision.reason


def test_high_risk_needs_two_approvals() -> None:
    decision = decide(ask("flo@corp.example"), RESTRICTED, policy_from_mapping(ACCESS),
                      WEDNESDAY_NOON)
    # watchlist 20 + restricted 20 + one prior violation 10
    assert (decision.outcome, decision.risk.score, decision.approvals_required) == (
        Outcome.ASK, 50, 2)
    assert {"watchlist", "prior_violations", "model_sensitivity"} == set(
        decision.risk.indicators)


def test_a_person_in_the_notice_period_is_denied() -> None:
    decision = decide(ask("dana@corp.example"), RESTRICTED, policy_from_mapping(ACCESS),
                      WEDNESDAY_NOON)
    assert decision.outcome == Outcome.DENY
    assert "departing employee (leaves 2026-12-10)" in decision.reason
    assert "only an admin can override" in decision.reason


def test_a_model_the_policy_does_not_manage_needs_no_request() -> None:
    decision = decide(ask(), {"sensitivity": "public"}, policy_from_mapping(ACCESS),
                      WEDNESDAY_NOON)
    assert decision.outcome == Outcome.NOT_NEEDED
    assert "not a model the access policy manages" in decision.reason


def test_a_request_out_of_bounds_is_refused_with_every_problem() -> None:
    rules = access_policy(policy_from_mapping(ACCESS))
    short = NewRequest("a@corp.example", "m", "read", "because", 48 * 3600)
    assert request_problems(short, rules) == [
        "justification: say why in at least 20 characters (got 7)",
        "duration: at most 24h by policy (asked 48h)"]
    assert request_problems(ask(), rules) == []


def test_the_defaults_without_an_access_section() -> None:
    rules = access_policy(policy_from_mapping({}))
    assert (rules.max_seconds, rules.default_seconds, rules.min_justification) == (
        72 * 3600, 8 * 3600, 20)
    assert rules.manages("m", {"sensitivity": "anything"})
    assert not rules.manages("m", {})


def test_bad_access_sections_are_reported_with_their_line(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("access:\n  auto_grant_below: 50\n  two_approvers_from: 30\n"
                    "  default_duration_hours: 100\n  max_duration_hours: 10\n"
                    "  approvers: {role: boss}\n  models: {colour: red}\n")
    with pytest.raises(SpecError) as caught:
        load_policy(path)
    text = str(caught.value)
    assert "two_approvers_from (30) is below auto_grant_below (50)" in text
    assert "default_duration_hours (100) is over max_duration_hours (10)" in text
    assert "'colour' is not a policy setting here" in text
    assert "boss" in text
    assert f"{path}:3" in text
