"""`POST /v1/slack/interactions`: the Request URL of the Slack app's Interactivity.

Slack wants its 200 within 3 s and does not wait for the run. So the request is verified and
read at once, with the `slack` connection's signing_secret, by the slack plugin's receiver
(`crownguard_register_interaction_receivers`: the core imports no plugin), and answered 200
with an empty body (what Slack expects, for a button and for a modal), once the interaction
is stored (`service_interactions`, beside the intake table). The background takes it from
there: the receiver asks Slack who clicked (users.info), and the answer is recorded by their
e-mail, with their Slack user id as an alias that also counts for the step's approvers, as
`runs.answer` does for `crownguard approve`; the run then goes on.

A click on an access request's Approve or Deny buttons (access_notify.py sends them, naming
`access:<request id>` where a run id would be) goes to the access desk instead
(`answer_access_click`): approved or denied as the clicking person, by the desk's own checks
(the request's approvers, not one's own request, one vote each, two where two are needed).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import AuthError, BadResponse, ConfigError
from .access import AccessDesk, Caller
from .access_notify import ACCESS_RUN_PREFIX
from .access_store import AccessError
from .payloads import unfit as unfit_for_journal
from .problems import ServiceProblem
from .service import Service
from .settings import Role, ServiceSettings

log = logging.getLogger("crownguard.service")
RECEIVER = "slack"
CONNECTION = "slack"
SIGNATURE_HEADER = "X-Slack-Signature"


def take_interaction(service: Service, body: bytes, headers: Mapping[str, str]) -> None:
    """Verify and read a Slack interaction and store it for the background; a 401
    ServiceProblem for a bad or stale signature, 400 for a body that is no interaction."""
    redact = service.config.redactor.redact
    receiver = service.host.interaction_receivers.get(RECEIVER)
    if receiver is None or CONNECTION not in service.config.connections:
        service.metrics.slack_interactions.labels("not_configured").inc()
        raise ServiceProblem(503, "not_configured", "this service takes no Slack "
                             "interactions: it needs the slack plugin and a 'slack' connection "
                             "with a signing_secret", "slack")
    try:
        parsed = receiver.verify(service.config.connections, body, headers)
    except AuthError as exc:
        service.metrics.slack_interactions.labels("unverified").inc()
        raise ServiceProblem(401, "bad_signature", redact(exc.detail), SIGNATURE_HEADER
                             ) from None
    except BadResponse as exc:
        service.metrics.slack_interactions.labels("not_an_interaction").inc()
        raise ServiceProblem(400, "not_an_interaction", redact(exc.detail), "payload"
                             ) from None
    except ConfigError as exc:
        service.metrics.slack_interactions.labels("not_configured").inc()
        raise ServiceProblem(503, "not_configured", redact(str(exc)), "slack") from None
    # What the journal cannot hold is refused now, as intake refuses it: stored, it would be
    # answered 200 and then fail in the background (a lone surrogate: no UTF-8 for Slack).
    unfit = unfit_for_journal(parsed, "")
    if unfit is not None:
        service.metrics.slack_interactions.labels("not_an_interaction").inc()
        raise ServiceProblem(400, "not_an_interaction", f"the interaction's {unfit[0]}: "
                             f"{unfit[1]}; nothing was stored", unfit[0])
    # Stored before the 200 (a click survives a kill -9); the same body again is one click.
    if service.store.add_interaction(RECEIVER, hashlib.sha256(body).hexdigest(), parsed):
        service.metrics.slack_interactions.labels("taken").inc()
    else:
        service.metrics.slack_interactions.labels("duplicate").inc()
    service.background.interaction_stored()


@dataclass(frozen=True)
class AccessAnswer:
    """How a click on an access request's buttons ended (as runs.answer's result reads)."""

    accepted: bool
    by: str
    reason: str


def answer_access_click(desk: AccessDesk, settings: ServiceSettings,
                        reply: Mapping[str, Any]) -> AccessAnswer | None:
    """Approve or deny the access request a click names, as the person who clicked (their
    e-mail, with their Slack id as an alias); None when the click is not about an access
    request. Their role is their service token's, by that name (none: they decide only where
    the request names them)."""
    target = str(reply.get("run_id") or "")
    if not target.startswith(ACCESS_RUN_PREFIX):
        return None
    by = str(reply["by"])
    aliases = tuple(str(a) for a in reply.get("aliases") or ())
    names = {n.lower() for n in (by, *aliases)}
    token = next((t for t in settings.tokens if t.name.lower() in names), None)
    caller = Caller(by, token.role if token is not None else Role.REQUESTER, aliases)
    request_id = target[len(ACCESS_RUN_PREFIX):]
    try:
        if reply.get("decision") == "reject":
            done = desk.deny(request_id, caller, "denied in Slack")
        else:
            done = desk.approve(request_id, caller, "approved in Slack")
    except AccessError as exc:
        return AccessAnswer(False, by, str(exc))
    return AccessAnswer(True, by, f"access request {done.id} is {done.state}")
