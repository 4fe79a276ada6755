"""The shipped playbook `model-access-request` as the decider of access requests.

The policy's decision (access_policy.decide: whether the policy manages the model, who
approves, the requester's risk) is the run's input; the playbook's `answer` step says what is
done (grant, ask one or two approvers, deny, not needed) and why. The run is a journal run like
any other (`crownguard runs`, `audit`, the console), named in the request's decision as
`run_id`. When the run gives no usable answer, the policy's own decision stands and the
reason says so.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..config import Config
from ..errors import CrownguardError
from ..journal import Journal
from ..plugins import PluginHost
from ..runner import Runner
from ..spec import Playbook, load_playbook
from ..triage import shipped_playbooks_dir
from .access_policy import AccessPolicy, Decision, Outcome
from .access_store import NewRequest

log = logging.getLogger("crownguard.access")
PLAYBOOK = "model-access-request"
ANSWER_STEP = "answer"


def shipped_access_playbook() -> Path:
    directory = shipped_playbooks_dir()
    if directory is None or not (directory / f"{PLAYBOOK}.yaml").is_file():
        raise CrownguardError(f"the shipped playbook {PLAYBOOK}.yaml is not installed")
    return directory / f"{PLAYBOOK}.yaml"


def playbook_inputs(request_id: str, new: NewRequest, decision: Decision, rules: AccessPolicy,
                    tags: dict[str, str], alert_soc: bool
                    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The run's event, risk and vars for one request and the policy's decision of it."""
    risk = decision.risk
    details = "; ".join(r.detail for r in risk.reasons)
    approvers = list(decision.approvers)
    event = {
        "kind": "access_request",
        "access_request": {
            "id": request_id, "requester": new.requester, "model": new.model,
            "version": new.version, "alias": new.alias, "access": str(new.access),
            "justification": new.justification, "duration_seconds": new.duration_seconds,
            "duration_hours": round(new.duration_seconds / 3600, 2)},
        "model": {"name": new.model, "tags": dict(tags)},
        "policy": {"managed": decision.outcome != Outcome.NOT_NEEDED,
                   "outcome": str(decision.outcome), "reason": decision.reason,
                   "approvals_required": decision.approvals_required, "approvers": approvers,
                   "approvers_text": ", ".join(approvers) or f"any {rules.approver_role}"},
        "risk_details": f": {details}" if details else "",
    }
    variables = {"auto_grant_below": _number(rules.auto_grant_below),
                 "two_approvers_from": _number(rules.two_approvers_from),
                 "alert_soc": alert_soc}
    return event, risk.to_dict(), variables


def _number(value: float) -> float | int:
    """25, not 25.0, in the reasons the playbook writes."""
    return int(value) if float(value).is_integer() else value


def decision_from_record(record: dict[str, Any], fallback: Decision) -> Decision:
    """The run's answer as a Decision (the policy's when the run gave none), with its run id."""
    run_id = str(record.get("run_id") or "")
    answer = ((record.get("steps") or {}).get(ANSWER_STEP) or {}).get("output") or {}
    made = answer.get("decision") if isinstance(answer, dict) else None
    try:
        outcome = Outcome(made["outcome"]) if isinstance(made, dict) else None
    except (KeyError, ValueError):
        outcome = None
    if outcome is None or not isinstance(made, dict):
        return replace(fallback, run_id=run_id or None, reason=(
            f"{fallback.reason} (the policy's decision: the {PLAYBOOK} run {run_id} gave no "
            f"answer, it ended {record.get('status')})"))
    approvers = made.get("approvers")
    return Decision(outcome, " ".join(str(made.get("reason") or fallback.reason).split()),
                    fallback.risk, int(made.get("approvals_required") or 0),
                    tuple(str(a) for a in approvers) if isinstance(approvers, list)
                    else fallback.approvers, run_id=run_id or None)


class AccessPlaybook:
    """Runs the access playbook for a request, in the journal, with the service's plugins."""

    def __init__(self, host: PluginHost, config: Config, journal: Journal,
                 path: str | Path | None = None):
        self.host, self.config, self.journal = host, config, journal
        self.path = Path(path) if path is not None else shipped_access_playbook()
        self._playbook: Playbook | None = None

    @property
    def playbook(self) -> Playbook:
        if self._playbook is None:
            self._playbook = load_playbook(self.path, self.host.actions)
        return self._playbook

    def decide(self, request_id: str, new: NewRequest, decision: Decision,
               rules: AccessPolicy, tags: dict[str, str]) -> Decision:
        alert = "slack" in self.config.connections
        event, risk, variables = playbook_inputs(request_id, new, decision, rules, tags, alert)
        try:
            record = Runner(self.host, self.config, journal=self.journal).run(
                self.playbook, event, risk=risk, variables=variables,
                details={"by": new.requester, "access_request": request_id})
        except CrownguardError as exc:  # the decision must not be lost to a broken run
            log.error("access request %s: the %s run failed: %s", request_id, PLAYBOOK, exc)
            return replace(decision, reason=f"{decision.reason} (the policy's decision: the "
                           f"{PLAYBOOK} run could not run: {exc})")
        return decision_from_record(record, decision)
