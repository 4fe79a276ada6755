"""The undo of a model-access-request run takes its request's grant back early.

The grant is the access desk's, made after the run decided (or once approvers agreed), so it is
no step of the run and the engine's undo plan (engine/undo.py) cannot see it: `AccessUndo` is
the `LinkedUndo` that `crownguard undo RUN` and `POST /v1/runs/{id}/undo` hand the engine. It
does what `POST /v1/access-requests/{id}/revoke` does, with the undo's `by` as the revoker: the
registry's permission is deleted (one the user had before is left alone), the request is
`revoked`, audited and its requester told. A pending or approved request is withdrawn the same
way, so that no later approval grants what the undo took back. A request denied, expired or
revoked already is left as it is, and the undo says so; so is a run that decided no request.
"""

from __future__ import annotations

from typing import Any

from ..config import Config
from ..errors import ActionError, CrownguardError, UndoError
from ..journal import Journal, RunRecord
from ..plugins import PluginHost
from ..runs import config_for
from ..triage import load_policy
from ..undo import LinkedChange
from .access import AccessDesk, ActionRegistry, Caller
from .access_hub import hub_registries
from .access_notify import SlackNotifier
from .access_playbook import PLAYBOOK
from .access_store import AccessState, AccessStore, UnknownRequest
from .settings import Role

TAKEN_BACK = (AccessState.GRANTED, AccessState.APPROVED, AccessState.PENDING)


def request_of(run: RunRecord) -> str | None:
    """The id of the access request `run` decided, or None when it is no such run."""
    if run.playbook != PLAYBOOK:
        return None
    event = run.inputs.get("event") or {}
    asked = event.get("access_request") if isinstance(event, dict) else None
    found = asked.get("id") if isinstance(asked, dict) else None
    return str(found) if found else None


class AccessUndo:
    """The LinkedUndo of access runs, over the journal the run is in (its access requests)."""

    def __init__(self, journal: Journal, host: PluginHost, config_path: str | None = None):
        self.journal, self.host, self.config_path = journal, host, config_path

    def desk(self, config: Config) -> AccessDesk:
        notifier = (SlackNotifier(self.host, config)
                    if SlackNotifier.available(self.host, config) else None)
        # Revoking reads no policy: the defaults stand in for the service's.
        return AccessDesk(AccessStore(self.journal), load_policy(None),
                          ActionRegistry(self.host, config),
                          registries=hub_registries(self.host, config), notifier=notifier)

    def undo_linked(self, run: RunRecord, by: str, *, dry_run: bool) -> list[LinkedChange]:
        request_id = request_of(run)
        if request_id is None:
            return []
        desk = self.desk(config_for(run, self.config_path, self.host))
        try:
            return [self._take_back(desk, run, request_id, by, dry_run)]
        finally:
            desk.store.close()
            close = getattr(desk.notifier, "close", None)
            if callable(close):
                close()

    @staticmethod
    def _take_back(desk: AccessDesk, run: RunRecord, request_id: str, by: str,
                   dry_run: bool) -> LinkedChange:
        try:
            request = desk.store.get(request_id)
        except UnknownRequest:
            return LinkedChange(f"access request {request_id}", False,
                                f"access request {request_id} of run {run.run_id} is not in "
                                "this journal: no grant to take back")
        what = (f"access request {request.id}: {request.access} access to {request.model} "
                f"for {request.requester}")
        decided_by = (request.decision or {}).get("run_id")
        if decided_by and decided_by != run.run_id:
            return LinkedChange(what, False, f"access request {request.id} was decided by run "
                                f"{decided_by}, not {run.run_id}: left as it is")
        if request.state not in TAKEN_BACK:
            return LinkedChange(what, False, _left(request.state, request.revoked_by,
                                                   request.revoked_at, request.id))
        verb = "revoke its grant" if request.state == AccessState.GRANTED else "withdraw it"
        if dry_run:
            return LinkedChange(what, True, f"would {verb} ({request.state} now)")
        try:
            done = desk.revoke(request.id, Caller(by, Role.RESPONDER),
                               reason=f"undo of run {run.run_id}")
        except (CrownguardError, ActionError) as exc:
            raise UndoError(f"undo of run {run.run_id}: could not take back access request "
                            f"{request.id}: {exc}") from None
        kept = (done.grant or {}).get("pre_existing") is not None
        note = (f"revoked by {by}" + ("; the permission the user had before is kept"
                                      if kept else "") if request.state == AccessState.GRANTED
                else f"withdrawn by {by} (it was {request.state})")
        return LinkedChange(what, True, note)


def _left(state: Any, by: str | None, at: str | None, request_id: str) -> str:
    if state == AccessState.DENIED:
        return f"access request {request_id} was denied: nothing was granted"
    return (f"access request {request_id} is {state} already"
            + (f" (by {by} at {at})" if by else "") + ": nothing to take back")
