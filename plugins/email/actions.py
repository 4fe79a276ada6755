"""email.send_nudge."""

from __future__ import annotations

from typing import Any

from crownguard.engine import VENDOR_RETRY, ActionContext, action
from crownguard.plugins._nudge import DELIVERIES, render_nudge
from crownguard.plugins.email.client import SmtpSender
from crownguard.plugins.email.compose import message_id, nudge_message
from crownguard.plugins.email.schemas import SEND_NUDGE_INPUT, SEND_NUDGE_OUTPUT


def _addresses(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


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
    content = render_nudge(inputs, ctx.run_context)
    connection = ctx.connection("email")
    sender = SmtpSender(connection, ctx)
    key = inputs.get("dedupe_key") or ctx.idempotency_key
    if inputs.get("dedupe", True):
        earlier = DELIVERIES.get(connection, key)
        if earlier is not None:
            return {**earlier, "changed": False}
    to, cc = _addresses(inputs["to"]), _addresses(inputs.get("cc"))
    settings = sender.settings
    msg_id = message_id(key, settings.domain)
    message = nudge_message(content, sender=settings.from_address,
                            sender_name=settings.from_name, to=to, cc=cc,
                            reply_to=inputs.get("reply_to") or settings.reply_to,
                            msg_id=msg_id, run_id=ctx.run_id, step_id=ctx.step_id)
    refused = sender.send(message, to + cc)
    result = {
        "message_id": msg_id,
        "accepted": [a for a in to + cc if a not in refused],
        "refused": [{"address": address,
                     "reply": f"{code} {text.decode('utf-8', 'replace')}"}
                    for address, (code, text) in refused.items()],
        "language": content.language,
    }
    DELIVERIES.record(connection, key, result)
    return {**result, "changed": True}
