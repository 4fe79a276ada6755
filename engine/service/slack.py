"""`POST /v1/slack/interactions`: the Request URL of the Slack app's Interactivity.

Slack wants its 200 within 3 s and does not wait for the run. So the request is verified and
read at once, with the `slack` connection's signing_secret, by the slack plugin's receiver
(`crownguard_register_interaction_receivers`: the core imports no plugin), and answered 200
with an empty body (what Slack expects, for a button and for a modal). The rest is handed to
the background: the receiver asks Slack who clicked (users.info), and the answer is recorded
by their e-mail, with their Slack user id as an alias that also counts for the step's
approvers, as `runs.answer` does for `crownguard approve`; the run then goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from .. import runs
from ..errors import AuthError, BadResponse, ConfigError, CrownguardError
from ..plugins import InteractionReceiver
from .problems import ServiceProblem
from .service import Service

log = logging.getLogger("crownguard.service")
RECEIVER = "slack"
CONNECTION = "slack"
SIGNATURE_HEADER = "X-Slack-Signature"


def take_interaction(service: Service, body: bytes, headers: Mapping[str, str]) -> None:
    """Verify and read a Slack interaction, then hand its answer to the background; a 401
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
    service.background.hand_off(_answer(service, receiver, parsed))


def _answer(service: Service, receiver: InteractionReceiver, parsed: Any
            ) -> Callable[[], None]:
    redact = service.config.redactor.redact

    def answer() -> None:
        where = f"run {parsed.get('run_id')} step {parsed.get('step_id')}"
        try:
            reply = receiver.resolve(service.config.connections, parsed)
            if reply.get("note"):
                log.warning("slack: %s: answering as Slack user %s alone: %s", where,
                            reply["by"], redact(str(reply["note"])))
            with service.operations:
                result = runs.answer(service.journal, service.host, str(reply["run_id"]),
                                     str(reply["step_id"]), str(reply["decision"]),
                                     by=str(reply["by"]), comment=reply.get("comment"),
                                     aliases=[str(a) for a in reply.get("aliases") or ()],
                                     config_path=service.config_path)
        except CrownguardError as exc:  # not waiting any more, no such run: said and counted
            service.metrics.slack_interactions.labels("failed").inc()
            log.warning("slack: %s: the answer was not recorded: %s", where, redact(str(exc)))
            return
        if result.accepted:
            service.metrics.slack_interactions.labels("accepted").inc()
            log.info("slack: %s answered by %s", where, result.by)
        else:
            service.metrics.slack_interactions.labels("refused").inc()
            log.warning("slack: %s: refused and recorded: %s", where, result.reason)

    return answer
