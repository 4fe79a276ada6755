"""Access requests as triage context: a grant lowers an export's score, a denial or an ended
grant raises it, each with its reason; without access requests nothing changes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from crownguard.engine.errors import SpecError
from crownguard.engine.journal import SQLiteJournal
from crownguard.engine.service.access_ledger import StoreAccess, open_access
from crownguard.engine.service.access_store import (
    AccessState,
    AccessStore,
    Change,
    NewRequest,
    format_time,
)
from crownguard.engine.triage.detection import Detection, Method, ModelFormat
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
from crownguard.engine.triage.risk import HistoryFacts, load_policy, policy_from_mapping, score
from crownguard.engine.triage.risk.access_facts import (
    AccessFact,
    InMemoryAccess,
    RequestState,
)

POLICY = load_policy()
WHEN = datetime(2026, 11, 17, 14, 0, tzinfo=UTC)  # a Tuesday, working hours
PERSON = "priya.raman@acme.example"
FRAUD_V7 = ModelMatch("mlflow", "fraud-model", "7", "model/model.safetensors", "restricted")
WHY = "retrain the fraud model on the Q3 chargebacks for the audit"


def export(*, email: str = PERSON, when: datetime = WHEN) -> ModelMovementEvent:
    return ModelMovementEvent(
        id="e1", time=when, actor=Actor(email=email, timezone="Europe/London"),
        file=FileInfo(name="fraud-v7.safetensors", size=700 * 1024**2),
        destination=Destination(DestinationKind.REMOVABLE_MEDIA, "SanDisk Cruzer", False),
        source=Source(SourceKind.ENDPOINT))


def registered(match: ModelMatch | None = FRAUD_V7) -> Detection:
    return Detection.verdict(1.0, ModelFormat.SAFETENSORS, Method.FINGERPRINT,
                             ["SHA-256 matches"], match=match)


def granted(*, hours_before: float = 2, lasts: float = 8, state: RequestState =
            RequestState.GRANTED, ended: datetime | None = None, rid: str = "a1b2c3d4e5f60718",
            model: str = "fraud-model") -> AccessFact:
    start = WHEN - timedelta(hours=hours_before)
    return AccessFact(rid, model, state, WHY, start - timedelta(minutes=1), "7",
                      granted_at=start, expires_at=start + timedelta(hours=lasts),
                      ended_at=ended, decided_at=start)


def denied(*, hours_before: float = 2) -> AccessFact:
    at = WHEN - timedelta(hours=hours_before)
    return AccessFact("deadbeef00000001", "fraud-model", RequestState.DENIED, WHY,
                      at - timedelta(minutes=1), decided_at=at)


def reasons(risk: Any) -> dict[str, tuple[float, str]]:
    return {r.indicator: (r.weight, r.detail) for r in risk.reasons}


def scored(*facts: AccessFact, email: str = PERSON, detection: Detection | None = None,
           when: datetime = WHEN) -> Any:
    access = InMemoryAccess([(PERSON, f) for f in facts])
    return score(export(email=email, when=when), detection or registered(), POLICY,
                 HistoryFacts(prior_model_accesses=1), access=access)


BASE = score(export(), registered(), POLICY, HistoryFacts(prior_model_accesses=1))


def test_an_export_under_an_active_grant_scores_lower_and_says_which_grant() -> None:
    risk = scored(granted())
    weight, detail = reasons(risk)["access_granted"]
    assert weight == -20 and risk.score == BASE.score - 20
    assert "a1b2c3d4e5f60718" in detail and "fraud-model v7" in detail
    assert "until 2026-11-17 20:00 UTC" in detail and WHY in detail
    assert sum(r.weight for r in risk.reasons) == risk.score  # the reasons add up


def test_an_export_after_a_denial_scores_higher() -> None:
    risk = scored(denied())
    weight, detail = reasons(risk)["access_denied"]
    assert weight == 20 and risk.score == min(100, BASE.score + 20)
    assert "deadbeef00000001" in detail and "denied (2026-11-17 12:00 UTC)" in detail


def test_an_export_after_the_grant_expired_or_was_revoked_scores_higher() -> None:
    expired = scored(granted(hours_before=10, state=RequestState.EXPIRED,
                             ended=WHEN - timedelta(hours=1, minutes=55)))
    weight, detail = reasons(expired)["access_expired"]
    assert weight == 15 and expired.score == BASE.score + 15
    assert "grant for fraud-model v7 expired (2026-11-17 12:00 UTC)" in detail
    revoked = scored(granted(hours_before=3, state=RequestState.REVOKED,
                             ended=WHEN - timedelta(hours=1)))
    assert "revoked (2026-11-17 13:00 UTC)" in reasons(revoked)["access_expired"][1]
    # Granted still, but its deadline passed before the event (the timer had not run yet).
    overdue = scored(granted(hours_before=9))
    assert "expired" in reasons(overdue)["access_expired"][1]


def test_what_counts_is_the_grant_at_the_time_of_the_event() -> None:
    # Expired by now, but the file moved while it was active: an alert triaged late.
    late = scored(granted(state=RequestState.EXPIRED, ended=WHEN + timedelta(hours=7)))
    assert "access_granted" in reasons(late)
    # A grant made after the event covers nothing.
    assert scored(granted(hours_before=-1)).score == BASE.score
    # A newer grant outweighs an older denial; a newer denial an older ended grant.
    assert "access_granted" in reasons(scored(denied(hours_before=5), granted()))
    both = scored(granted(hours_before=12, state=RequestState.EXPIRED), denied(hours_before=1))
    assert set(reasons(both)) & {"access_granted", "access_expired", "access_denied"} == {
        "access_denied"}


@pytest.mark.parametrize("state", [RequestState.PENDING, RequestState.APPROVED])
def test_a_request_not_decided_or_not_granted_yet_weighs_nothing(state: RequestState) -> None:
    fact = AccessFact("p", "fraud-model", state, WHY, WHEN - timedelta(hours=1))
    assert scored(fact).score == BASE.score


def test_no_access_requests_or_none_that_match_leave_the_score_unchanged() -> None:
    assert scored().to_dict() == BASE.to_dict()
    assert scored(granted(), email="someone.else@acme.example").score == BASE.score
    assert scored(granted(model="churn")).score == BASE.score
    # No registry match: the export is not known to be that model.
    plain = Detection.verdict(1.0, ModelFormat.SAFETENSORS, Method.CONTENT, ["header"])
    without = score(export(), plain, POLICY, HistoryFacts(prior_model_accesses=1))
    assert scored(granted(), detection=plain).to_dict() == without.to_dict()


def test_the_person_is_matched_by_e_mail_in_any_case() -> None:
    assert "access_granted" in reasons(scored(granted(), email=PERSON.upper()))


def test_the_weights_are_policy_settings() -> None:
    policy = policy_from_mapping({"weights": {"access_granted": -35, "access_denied": 0}})
    access = InMemoryAccess([(PERSON, granted())])
    risk = score(export(), registered(), policy, HistoryFacts(prior_model_accesses=1),
                 access=access)
    assert reasons(risk)["access_granted"][0] == -35
    off = score(export(), registered(), policy, None, access=InMemoryAccess([(PERSON,
                                                                             denied())]))
    assert "access_denied" not in reasons(off)  # weighted 0: off
    with pytest.raises(SpecError, match="access_granted"):
        policy_from_mapping({"weights": {"access_granted": -101}})
    with pytest.raises(SpecError, match="access_denied"):
        policy_from_mapping({"weights": {"access_denied": -5}})


def test_the_states_are_spelled_as_the_access_store_spells_them() -> None:
    assert [str(s) for s in RequestState] == [str(s) for s in AccessState]


# --- from the journal's access requests ----------------------------------------------------------


def _grant(store: AccessStore, who: str, at: datetime, hours: float) -> str:
    rid = store.create(NewRequest(who, "fraud-model", "read", WHY, round(hours * 3600),
                                  version="7")).id
    store.change(rid, Change.APPROVED, "policy", decided_by="policy")
    store.change(rid, Change.GRANTED, "crownguard", granted_at=format_time(at),
                 expires_at=format_time(at + timedelta(hours=hours)))
    return rid


def test_the_store_adapter_reads_the_journal_requests(tmp_path: Path) -> None:
    journal = SQLiteJournal(tmp_path / "journal.db")
    store = AccessStore(journal)
    rid = _grant(store, "Priya.Raman@acme.example", WHEN - timedelta(hours=1), 8)
    other = store.create(NewRequest("omar@acme.example", "fraud-model", "read", WHY, 3600)).id
    store.change(other, Change.DENIED, "policy", decided_by="policy",
                 decided_at=format_time(WHEN - timedelta(hours=3)))
    access = StoreAccess(store)
    [fact] = access.requests_for(PERSON, "fraud-model")
    assert (fact.request_id, fact.state, fact.version, fact.expires_at) == (
        rid, RequestState.GRANTED, "7", WHEN + timedelta(hours=7))
    risk = score(export(), registered(), POLICY, None, access=access)
    assert rid in reasons(risk)["access_granted"][1]
    omar = score(export(email="omar@acme.example"), registered(), POLICY, None, access=access)
    assert "access_denied" in reasons(omar)
    access.close()
    journal.close()


def test_a_journal_without_access_requests_gives_no_source_and_is_not_changed(
        tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    assert open_access(path) is None  # no file
    SQLiteJournal(path).close()
    before = path.read_bytes()
    assert open_access(path) is None and path.read_bytes() == before
    assert open_access("postgresql://h/db") is None


# --- through `crownguard triage` -----------------------------------------------------------------


def test_triage_on_a_journal_shows_the_grant_and_the_score_drops(run_cli: Any,
                                                                 tmp_path: Path) -> None:
    from crownguard.engine.triage.detection.fingerprints import FingerprintIndex, ModelVersionRef

    sha = "ab" * 32
    with FingerprintIndex(tmp_path / "fp.sqlite") as index:
        index.add_version(ModelVersionRef("mlflow", "fraud-model", "7", "restricted"),
                          {"files": [{"path": "model/w.safetensors", "sha256": sha}]})
    event = tmp_path / "event.json"
    event.write_text(json.dumps({
        "schema": "crownguard/model-movement-event/v1", "id": "n-1",
        "time": "2026-11-17T14:00:00Z", "actor": {"email": PERSON},
        "file": {"name": "w.safetensors", "size": 700 * 1024**2, "sha256": sha},
        "destination": {"kind": "removable_media", "trusted": False}}))
    journal = tmp_path / "journal.db"
    args = ("triage", event, "--fingerprints", tmp_path / "fp.sqlite", "--journal", journal,
            "--json")
    SQLiteJournal(journal).close()
    code, out, err = run_cli(*args)
    assert code == 0, err
    plain = json.loads(out)[0]["risk"]
    store = AccessStore(SQLiteJournal(journal))
    rid = _grant(store, PERSON, WHEN - timedelta(hours=1), 8)
    code, out, err = run_cli(*args)
    assert code == 0, err
    risk = json.loads(out)[0]["risk"]
    [reason] = [r for r in risk["reasons"] if r["indicator"] == "access_granted"]
    assert rid in reason["detail"] and reason["weight"] == -20
    assert risk["score"] == plain["score"] - 20
    code, out, err = run_cli("triage", event, "--fingerprints", tmp_path / "fp.sqlite",
                             "--journal", journal)
    assert code == 0 and f"holds access request {rid}" in out
    assert store.get(rid).state == AccessState.GRANTED  # triage read, changed nothing
    # `respond` on the same journal sees it too (a dry run: it reads, starts nothing).
    code, out, err = run_cli("respond", event, "--fingerprints", tmp_path / "fp.sqlite",
                             "--journal", journal, "--dry-run", "--json")
    assert code == 0, err
    [reason] = [r for r in json.loads(out)[0]["risk"]["reasons"]
                if r["indicator"] == "access_granted"]
    assert rid in reason["detail"]
    # --no-journal: no access requests, the score as before.
    code, out, err = run_cli("respond", event, "--fingerprints", tmp_path / "fp.sqlite",
                             "--journal", journal, "--dry-run", "--no-journal", "--json")
    assert code == 0 and json.loads(out)[0]["risk"]["score"] == plain["score"]
