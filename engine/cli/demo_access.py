"""The demo's access episode: just-in-time access to a sensitive model, granted, used, taken back.

The registry's auth app is switched on with no standing read rights (seeded as a scenario
seeds it). A researcher asks for 8 hours with a reason and is granted by the policy through the
mlflow plugin's actions, the path `crownguard access request` and the service take; her
download from the registry during the grant is triaged with the grant as context; the demo
then moves the clock 8 hours on (nothing sleeps) and runs the expiry the service's timer runs,
and the permission is gone. A leaver asks for the same model and is refused, and is told only
what the policy says, not why the risk engine thinks so. The requests live in a temporary
journal, as they would in the service's.
"""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from ..config import config_from_mapping
from ..journal import SQLiteJournal
from ..mocks import MockServer
from ..plugins import PluginHost
from ..scenarios import MockFleet, seed
from ..service.access import AccessDesk, ActionRegistry
from ..service.access_ledger import StoreAccess
from ..service.access_store import AccessRequest, AccessState, AccessStore, parse_time
from ..triage import Policy, Triage, policy_from_mapping
from .triage import describe_verdict

MODEL = "acme-support-llama3-8b-ft"
RESEARCHER = "priya.raman@example.com"
LEAVER = "dana.whitfield@example.com"
LEAVES = "2026-12-04"
OWNER = "omar.haddad@example.com"
HOURS = 8
ASKED_AT = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)  # a Wednesday morning
RESEARCHER_WHY = "evaluate the v3 adapter on the support eval set before Friday's release"
LEAVER_WHY = "handover: document how the support model was fine-tuned for my successor"


def access_rules(registry_host: str) -> dict[str, Any]:
    """The demo policy with its `access` section: restricted models need a request."""
    return {"registries": {registry_host: "mlflow"},
            "access": {"models": {"tag": "sensitivity", "values": ["restricted"]},
                       "people": {LEAVER: {"departure_date": LEAVES}}}}


def _seeding(password: str) -> dict[str, Any]:
    """MLflow's auth app on, nobody reads by default, the model tagged with its owner."""
    return {"mlflow": {"set": {"auth": "basic", "default_permission": "NO_PERMISSIONS"},
                       "call": [{"method": "add_user", "args": [RESEARCHER, password]},
                                {"method": "tag_model", "args": [MODEL, {
                                    "sensitivity": "restricted", "owner": OWNER}]}]}}


def told(request: AccessRequest) -> str:
    """What the requester is told: the outcome in the policy's words, never the risk reasons
    behind it (a watchlist, a departure date that HR knows of)."""
    if request.state in (AccessState.GRANTED, AccessState.APPROVED):
        until = f" until {_clock(request.expires_at)}" if request.expires_at else ""
        return f"granted: {request.access} access to {request.model}{until}"
    if request.state == AccessState.DENIED:
        return (f"refused: the access policy does not allow this request for "
                f"{request.model}; an admin can review request {request.id}")
    return f"{request.state}: waiting for an approver of {request.model}"


@dataclass
class AccessResult:
    """What the episode showed, for the summary and the exit status."""

    granted: AccessRequest | None = None
    expired: AccessRequest | None = None
    refused: AccessRequest | None = None
    reads: list[int] = field(default_factory=list)  # the researcher's own reads: 200, then 403
    context: list[str] = field(default_factory=list)  # the download's access reasons
    calls: int = 0

    @property
    def as_expected(self) -> bool:
        return (self.granted is not None and self.granted.state == AccessState.GRANTED
                and self.expired is not None and self.expired.state == AccessState.EXPIRED
                and self.expired.revoked_at == self.expired.expires_at
                and self.refused is not None and self.refused.state == AccessState.DENIED
                and self.reads == [200, 403] and self.context == ["access_granted"])

    def summary(self) -> str:
        return ("2 access requests: 1 granted for 8 h and taken back on time, 1 refused"
                if self.as_expected else "access requests: not as the story expects")


def play_access(number: int, host: PluginHost, fleet: MockFleet, triage: Triage,
                registry_host: str, model_sha256: str, say: Callable[[str], None],
                call_lines: Callable[[list[tuple[str, Any]], Callable[[str], str]], list[str]]
                ) -> AccessResult:
    """Play the episode on the demo's running mocks and triage."""
    say(f"\n[{number}] Just-in-time access to {MODEL} (no standing download rights)")
    password = secrets.token_urlsafe(18)
    seed(fleet, _seeding(password))
    mlflow = fleet.get("mlflow")
    say("  the registry's auth app is on: nobody but its admin reads the model by default; "
        f"it is tagged sensitivity=restricted, owner {OWNER}")
    config = config_from_mapping({"connections": fleet.connections()}, host.connection_types)
    policy = policy_from_mapping(access_rules(registry_host))
    result = AccessResult()
    with tempfile.TemporaryDirectory(prefix="crownguard-demo-") as folder:
        journal = SQLiteJournal(Path(folder) / "journal.sqlite")
        store = AccessStore(journal)
        mark = len(mlflow.calls)
        try:
            desk = AccessDesk(store, policy, ActionRegistry(host, config))
            result = _story(desk, policy, triage, StoreAccess(store), mlflow, password,
                            registry_host, model_sha256, say)
        finally:
            store.close()
            journal.close()
        calls = [("mlflow", call) for call in list(mlflow.calls)[mark:]]
        result.calls = len(calls)
        say(f"  vendor calls ({len(calls)}):")
        for line in call_lines(calls, config.redactor.redact):
            say(f"    {line}")
        config.connections.close()
    say(f"  => {result.summary()}")
    return result


def _story(desk: AccessDesk, policy: Policy, triage: Triage, access: StoreAccess,
           mlflow: MockServer, password: str, registry_host: str, model_sha256: str,
           say: Callable[[str], None]) -> AccessResult:
    result = AccessResult()

    def own_read() -> int:
        answer = requests.get(f"{mlflow.base_url}/api/2.0/mlflow/registered-models/get",
                              params={"name": MODEL}, auth=(RESEARCHER, password), timeout=10)
        result.reads.append(answer.status_code)
        return answer.status_code

    say(f"  {RESEARCHER} (researcher) asks for {HOURS} h of read access, at "
        f"{_clock(ASKED_AT)}: \"{RESEARCHER_WHY}\"")
    granted = desk.request(RESEARCHER, MODEL, RESEARCHER_WHY, duration_seconds=HOURS * 3600,
                           now=ASKED_AT)
    result.granted = granted
    say(f"    policy     {(granted.decision or {}).get('reason')}")
    say(f"    she is told: {told(granted)}")
    say(f"    her own read of the model in MLflow answers {own_read()}")
    _download(triage, access, policy, registry_host, model_sha256,
              ASKED_AT + timedelta(minutes=20), result, say)
    later = ASKED_AT + timedelta(hours=HOURS)
    say(f"  ... {HOURS} hours pass (the demo moves the clock on to {_clock(later)}); the "
        "service's access timer runs")
    for expired in desk.expire_due(later):
        result.expired = expired
        say(f"    expired    access request {expired.id}: its {HOURS} h ended at "
            f"{_clock(expired.expires_at)}, the READ permission is taken back")
    say(f"    her own read of the model in MLflow answers {own_read()}")
    say(f"  {LEAVER} (leaving on {LEAVES}) asks for the same model: \"{LEAVER_WHY}\"")
    refused = desk.request(LEAVER, MODEL, LEAVER_WHY, now=ASKED_AT + timedelta(hours=1, minutes=30))
    result.refused = refused
    say(f"    she is told: {told(refused)}")
    say(f"    the audit trail and the approvers see: {(refused.decision or {}).get('reason')}")
    return result


def _download(triage: Triage, access: StoreAccess, policy: Policy, registry_host: str,
              model_sha256: str, when: datetime, result: AccessResult,
              say: Callable[[str], None]) -> None:
    """The researcher's download from the registry during the grant, triaged with it."""
    event = {"schema": "crownguard/model-movement-event/v1", "id": "evt-dl-priya-0001",
             "time": when.isoformat().replace("+00:00", "Z"), "origin": "crownguard",
             "actor": {"email": RESEARCHER, "name": "Priya Raman"},
             "file": {"name": "model.safetensors", "size": 4 * 1024**3,
                      "sha256": model_sha256, "path": "C:/Users/praman/Downloads/"
                                                      "model.safetensors"},
             "source": {"kind": "registry", "name": registry_host, "domain": registry_host},
             "destination": {"kind": "endpoint", "name": "ACME-LT-0388", "trusted": True},
             "device": {"hostname": "ACME-LT-0388"}}
    say(f"  {_clock(when)}: she downloads the model to her laptop")
    triage.access = access
    try:
        [verdict] = triage.triage(event, claim=True)
    finally:
        triage.access = None
    for line in describe_verdict(verdict, indent="    "):
        say(line)
    result.context = [r.indicator for r in verdict.risk.reasons
                      if r.indicator.startswith("access_")]
    others = round(sum(r.weight for r in verdict.risk.reasons
                       if not r.indicator.startswith("access_")))
    without = max(0, min(100, others))
    say(f"    without the grant it would have scored {without} "
        f"{policy.level_for(without)}")


def _clock(moment: datetime | str | None) -> str:
    if moment is None:
        return "-"
    at = parse_time(moment) if isinstance(moment, str) else moment
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


