"""The nudge, sent once: rendered, composed and handed to the SMTP server, and remembered in the
delivery ledger under its dedupe key (an SMTP server cannot be asked what it delivered)."""

from __future__ import annotations

from typing import Any

from crownguard.engine import ActionContext
from crownguard.plugins._nudge import DELIVERIES, render_nudge
from crownguard.plugins.email.client import SmtpSender
from crownguard.plugins.email.compose import message_id, nudge_message


def _addresses(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


def send_nudge_once(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Send the nudge unless this process already sent it under the same key."""
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
