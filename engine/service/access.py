"""Model access requests, end to end: ask, decide, approve or deny, grant, expire, revoke.

`AccessDesk` is what the CLI and the service's routes both call. It keeps deciding
(access_policy.decide, pure) apart from doing: the registry is reached through a `Registry`
(the mlflow plugin's actions, `ActionRegistry`, in the service and the CLI; a fake in tests),
and every change is a compare-and-set in the store, so two processes expiring one grant
record it once and revoke at most twice (the revoke is idempotent).
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from ..actions import ActionContext
from ..approvers import refusal
from ..config import Config
from ..errors import ActionError, CrownguardError, NotFoundError
from ..plugins import PluginHost
from ..steps import call_action
from ..triage.policy import Policy
from .access_playbook import AccessPlaybook
from .access_policy import AccessPolicy, Outcome, access_policy, decide, request_problems
from .access_store import (
    AccessError,
    AccessForbidden,
    AccessRequest,
    AccessState,
    AccessStore,
    Change,
    NewRequest,
    RegistryError,
    TransitionRefused,
    expiry,
    format_time,
)
from .settings import Role

log = logging.getLogger("crownguard.access")
POLICY = "policy"        # `by` of what the policy decided
SERVICE = "crownguard"   # `by` of what the service did on its own (grant, expiry)
PERMISSION = "READ"      # read and download both need READ on the registered model


class Registry(Protocol):
    """The model registry as access requests need it."""

    def model_tags(self, model: str) -> dict[str, str]: ...

    def grant(self, model: str, user: str, permission: str) -> dict[str, Any]: ...

    def revoke(self, model: str, user: str, permission: str) -> dict[str, Any]: ...


@runtime_checkable
class RefusingRegistry(Protocol):
    """A registry that holds the request itself (the Hub): a refusal, an expiry and a revoke
    all reject it there."""

    def refuse(self, model: str, user: str, reason: str) -> dict[str, Any]: ...


class Notifier(Protocol):
    """Tells people of a request's changes (the requester, its approvers)."""

    def tell(self, what: str, request: AccessRequest) -> None: ...


MLFLOW = "mlflow"  # the registry a request names when it names none


def call_registry_action(host: PluginHost, config: Config, name: str, inputs: dict[str, Any],
                         timeout: float = 60.0) -> dict[str, Any]:
    """Call one plugin action for the desk: NotFoundError is the request's fault
    (AccessError), any other failure the registry's (RegistryError)."""
    action = host.actions.get(name)
    if action is None:
        raise AccessError(f"access requests need the action {name} (the "
                          f"{name.split('.')[0]} plugin)")
    ctx = ActionContext(run_id="access", step_id=name, attempt=1,
                        idempotency_key=secrets.token_hex(8), connections=config.connections,
                        deadline=time.monotonic() + timeout, timeout_seconds=timeout)
    action.validate_inputs(inputs)
    output, error = call_action(action, ctx, inputs)
    if isinstance(error, NotFoundError):  # no such model (or user): the request's fault
        raise AccessError(f"{name}: {error}")
    if error is not None:
        raise RegistryError(f"{name}: {error}")
    result: dict[str, Any] = output
    return result


class ActionRegistry:
    """The registry through the mlflow plugin's actions and the `mlflow` connection."""

    def __init__(self, host: PluginHost, config: Config, *, timeout: float = 60.0):
        self.host, self.config, self.timeout = host, config, timeout

    def _call(self, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
        return call_registry_action(self.host, self.config, name, inputs, self.timeout)

    def model_tags(self, model: str) -> dict[str, str]:
        tags: dict[str, str] = self._call("mlflow.get_registered_model", {"name": model})["tags"]
        return tags

    def grant(self, model: str, user: str, permission: str) -> dict[str, Any]:
        return self._call("mlflow.grant_model_permission",
                          {"name": model, "username": user, "permission": permission})

    def revoke(self, model: str, user: str, permission: str) -> dict[str, Any]:
        return self._call("mlflow.revoke_model_permission",
                          {"name": model, "username": user, "permission": permission})


@dataclass(frozen=True)
class Caller:
    """Who acts: a service token's name and role (the CLI acts as an admin, by --by)."""

    name: str
    role: Role
    aliases: tuple[str, ...] = ()  # the same person under another name (their Slack user id)


class AccessDesk:
    """`playbook`: the model-access-request run that decides (None: the policy decides
    alone, as in unit tests of the state machine)."""

    def __init__(self, store: AccessStore, policy: Policy, registry: Registry,
                 playbook: AccessPlaybook | None = None,
                 registries: dict[str, Registry] | None = None,
                 notifier: Notifier | None = None):
        self.store, self.policy, self.registry = store, policy, registry
        self.playbook = playbook
        # By name, beside the default (MLflow's): "huggingface" for gated Hub repos.
        self.registries: dict[str, Registry] = {MLFLOW: registry, **(registries or {})}
        self.notifier = notifier

    def registry_of(self, request: AccessRequest) -> Registry:
        name = str((request.decision or {}).get("registry") or MLFLOW)
        if name not in self.registries:
            raise RegistryError(f"access request {request.id} is for the {name} registry, "
                                "which this process has no connection for")
        return self.registries[name]

    @staticmethod
    def registry_user(request: AccessRequest) -> str:
        """Who the registry knows the requester as (the Hub: their Hub username)."""
        source = (request.decision or {}).get("source") or {}
        return str(source.get("user") or request.requester)

    @property
    def rules(self) -> AccessPolicy:
        return access_policy(self.policy)

    # asking --------------------------------------------------------------------------------------

    def request(self, requester: str, model: str, justification: str, *,
                duration_seconds: int | None = None, access: str = "read",
                version: str | None = None, alias: str | None = None,
                now: datetime | None = None, registry: str = MLFLOW,
                source: dict[str, Any] | None = None) -> AccessRequest:
        """Record a request and apply the policy's decision (a low-risk one is granted now)."""
        rules = self.rules
        if access not in ("read", "download"):
            raise AccessError(f"access: read or download, not {access!r}")
        new = NewRequest(requester, model.strip(), access, justification.strip(),
                         rules.default_seconds if duration_seconds is None
                         else int(duration_seconds), version, alias)
        problems = request_problems(new, rules)
        if problems:
            raise AccessError("; ".join(problems))
        if registry not in self.registries:
            raise AccessError(f"registry: no {registry} connection for access requests")
        tags = self.registries[registry].model_tags(new.model)
        decision = decide(new, tags, self.policy, now)
        request_id = secrets.token_hex(8)
        if self.playbook is not None:
            decision = self.playbook.decide(request_id, new, decision, rules, tags)
        # Where the request came from and is answered: the registry, and (the Hub) whose
        # request there it is.
        placed = {"registry": registry, **({"source": source} if source else {})}
        made = self.store.create(new, decision={**decision.to_dict(), **placed},
                                 approvals_required=decision.approvals_required,
                                 request_id=request_id)
        self._tell("requested", made)
        if decision.outcome == Outcome.GRANT:
            self.store.change(made.id, Change.APPROVED, POLICY, reason=decision.reason,
                              decided_by=POLICY, decided_at=format_time(_now(now)))
            return self._grant_or_wait(made.id, now)
        if decision.outcome in (Outcome.DENY, Outcome.NOT_NEEDED):
            denied = self.store.change(made.id, Change.DENIED, POLICY, reason=decision.reason,
                                       decided_by=POLICY, decided_at=format_time(_now(now)))
            self._refused(denied, decision.outcome == Outcome.NOT_NEEDED)
            return denied
        self._tell("pending", made)
        return made

    # deciding ------------------------------------------------------------------------------------

    def approve(self, request_id: str, caller: Caller, comment: str | None = None, *,
                now: datetime | None = None) -> AccessRequest:
        request = self.store.get(request_id)
        if refusal(caller.name, [request.requester], caller.aliases) is None:
            raise AccessForbidden(f"{caller.name} cannot approve their own access request")
        if request.state == AccessState.DENIED:
            if caller.role < Role.ADMIN:
                raise AccessForbidden(f"access request {request.id} was denied: only an admin can "
                                  "override it")
            self.store.change(request.id, Change.OVERRIDDEN, caller.name, reason=comment,
                              decided_by=caller.name, decided_at=format_time(_now(now)),
                              expect=AccessState.DENIED)
            return self._grant_or_wait(request.id, now)
        self._may_decide(request, caller)
        if any(refusal(str(a.get("by")), [caller.name]) is None for a in request.approvals):
            raise AccessError(f"{caller.name} has approved access request {request.id} already")
        approvals = [*request.approvals, {"by": caller.name, "comment": comment,
                                          "at": format_time(_now(now))}]
        if len(approvals) < request.approvals_required:
            return self.store.change(request.id, Change.APPROVAL, caller.name, reason=comment,
                                     approvals=approvals, expect=AccessState.PENDING)
        self.store.change(request.id, Change.APPROVED, caller.name, reason=comment,
                          approvals=approvals, decided_by=caller.name,
                          decided_at=format_time(_now(now)), expect=AccessState.PENDING)
        return self._grant_or_wait(request.id, now)

    def deny(self, request_id: str, caller: Caller, reason: str | None = None, *,
             now: datetime | None = None) -> AccessRequest:
        request = self.store.get(request_id)
        self._may_decide(request, caller)
        denied = self.store.change(request.id, Change.DENIED, caller.name, reason=reason,
                                   decided_by=caller.name, decided_at=format_time(_now(now)),
                                   expect=AccessState.PENDING)
        self._refused(denied, False)
        return denied

    def _may_decide(self, request: AccessRequest, caller: Caller) -> None:
        if caller.role >= Role.ADMIN:
            return
        named = [str(a) for a in (request.decision or {}).get("approvers") or []]
        role = Role[self.rules.approver_role.upper()]
        # The check `crownguard approve` makes (e-mails in any case, a Slack id as an alias).
        if named and refusal(caller.name, named, caller.aliases) is not None:
            raise AccessForbidden(f"{caller.name} is not an approver of access request "
                              f"{request.id} (approvers: {', '.join(named)}, or an admin)")
        if not named and caller.role < role:
            raise AccessForbidden(f"approving access requests needs the {role} role")

    # granting, expiring, revoking ----------------------------------------------------------------

    def grant(self, request_id: str, *, now: datetime | None = None) -> AccessRequest:
        """Give an approved request its permission in the registry, until its deadline."""
        request = self.store.get(request_id)
        if request.state != AccessState.APPROVED:
            raise TransitionRefused(f"access request {request.id} is {request.state}, not "
                                    "approved: nothing to grant")
        result = self.registry_of(request).grant(request.model, self.registry_user(request),
                                                 PERMISSION)
        moment = _now(now)
        granted = self.store.change(
            request.id, Change.GRANTED, SERVICE, expect=AccessState.APPROVED,
            granted_at=format_time(moment),
            expires_at=format_time(expiry(moment, request.duration_seconds)),
            grant_info={"permission": PERMISSION, "changed": bool(result.get("changed")),
                        "pre_existing": result.get("pre_existing"), "api": result.get("api")})
        self._tell("granted", granted)
        return granted

    def revoke(self, request_id: str, caller: Caller, reason: str | None = None
               ) -> AccessRequest:
        """End a request early: the requester themselves, or a responder or above."""
        request = self.store.get(request_id)
        if caller.name != request.requester and caller.role < Role.RESPONDER:
            raise AccessForbidden(f"only {request.requester} or a responder can revoke access "
                              f"request {request.id}")
        if request.state == AccessState.GRANTED:
            self._take_back(request, f"access revoked by {caller.name}")
        revoked = self.store.change(request.id, Change.REVOKED, caller.name, reason=reason,
                                    revoked_at=format_time(_now(None)), revoked_by=caller.name,
                                    expect=request.state)
        self._tell("revoked", revoked)
        return revoked

    def expire_due(self, now: datetime | None = None) -> list[AccessRequest]:
        """Take back every grant whose time is up; each is recorded expired exactly once."""
        expired = []
        for request in self.store.due(now):
            try:
                self._take_back(request, f"access expired at {request.expires_at}")
                done = self.store.change(
                    request.id, Change.EXPIRED, SERVICE, expect=AccessState.GRANTED,
                    reason=f"its {request.duration_seconds}s ended at {request.expires_at}",
                    revoked_at=format_time(_now(now)), revoked_by=SERVICE)
                expired.append(done)
                self._tell("expired", done)
            except TransitionRefused:
                continue  # another process expired or revoked it first
            except (CrownguardError, ActionError) as exc:  # the next tick tries again
                log.warning("access request %s: could not take the grant back yet: %s",
                            request.id, exc)
        return expired

    def retry_grants(self, now: datetime | None = None) -> list[AccessRequest]:
        """Grant approved requests whose grant failed (the registry was down)."""
        done = []
        for request in self.store.find(state=AccessState.APPROVED, limit=100):
            try:
                done.append(self.grant(request.id, now=now))
            except TransitionRefused:
                continue
            except (CrownguardError, ActionError) as exc:
                log.warning("access request %s: could not grant yet: %s", request.id, exc)
        return done

    def _grant_or_wait(self, request_id: str, now: datetime | None) -> AccessRequest:
        """Grant now; when the registry fails, the request stays approved and the service's
        timer grants it later (retry_grants)."""
        try:
            return self.grant(request_id, now=now)
        except (AccessError, ActionError) as exc:
            log.warning("access request %s: approved, not granted yet: %s", request_id, exc)
            return self.store.get(request_id)

    def _take_back(self, request: AccessRequest, why: str) -> None:
        grant = request.grant or {}
        if grant.get("pre_existing") is not None:
            return  # the user had a permission before: it was never ours to take
        registry = self.registry_of(request)
        user = self.registry_user(request)
        if isinstance(registry, RefusingRegistry):
            registry.refuse(request.model, user, why)
            return
        registry.revoke(request.model, user, str(grant.get("permission") or PERMISSION))

    def _refused(self, request: AccessRequest, not_needed: bool) -> None:
        """Tell the requester; a registry that holds the request (the Hub) rejects it there,
        saying no more than that it was not approved (never the risk reasons)."""
        registry = self.registry_of(request)
        if isinstance(registry, RefusingRegistry) and not not_needed:
            try:
                registry.refuse(request.model, self.registry_user(request),
                                "not approved; ask the model's owner or the security team")
            except (CrownguardError, ActionError) as exc:  # the request stays denied here
                log.warning("access request %s: the refusal did not reach %s: %s",
                            request.id, (request.decision or {}).get("registry"), exc)
        self._tell("denied", request)

    def _tell(self, what: str, request: AccessRequest) -> None:
        if self.notifier is not None:
            self.notifier.tell(what, request)


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)
