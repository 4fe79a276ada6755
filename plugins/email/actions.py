"""email.send_nudge. Thin: sending once lives in delivery.py."""

from __future__ import annotations

from typing import Any

from crownguard.engine import VENDOR_RETRY, ActionContext, action
from crownguard.plugins.email.delivery import send_nudge_once
from crownguard.plugins.email.schemas import SEND_NUDGE_INPUT, SEND_NUDGE_OUTPUT


@action(
    "email.send_nudge",
    side_effect=True,
    connection="email",
    retry=VENDOR_RETRY,
    input_schema=SEND_NUDGE_INPUT,
    output_schema=SEND_NUDGE_OUTPUT,
)
def send_nudge(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """E-mail the employee the nudge: the same words as the Slack nudge, as text and HTML.

    Renders the templates in the employee's `language` and sends one message over SMTP with
    the connection's TLS (STARTTLS or implicit) and AUTH. `respond_url` puts an answer link in
    it (e-mail has no buttons). `refused` lists recipients the server refused while others were
    accepted; when all are refused the step fails. The Message-ID comes from the step's
    idempotency key; `changed` is false for a repeat of this step in the same process (SMTP
    cannot be asked what it delivered). No undo: sent mail cannot be recalled.
    """
    return send_nudge_once(ctx, inputs)


ACTIONS = (send_nudge,)
