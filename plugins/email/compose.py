"""The nudge as an RFC 5322 message: plain text and HTML alternatives of the same content.

Headers worth their place: a Message-ID derived from the step's idempotency key (a repeat is
the same message, which receiving systems can drop), `Auto-Submitted: auto-generated` (RFC 3834:
no auto-replies, no vacation loops), `Content-Language`, and X-Crownguard-Run-Id/-Step-Id so a
reply can be matched to its run.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr

from crownguard.plugins._nudge import NudgeContent

_ID_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def message_id(key: str, domain: str) -> str:
    """A Message-ID that is the same for every attempt of one step."""
    return f"<crownguard.{_ID_UNSAFE.sub('-', key)[:120]}@{domain}>"


def nudge_message(content: NudgeContent, *, sender: str, sender_name: str | None,
                  to: list[str], cc: list[str], reply_to: str | None, msg_id: str,
                  run_id: str, step_id: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = formataddr((sender_name, sender)) if sender_name else sender
    message["To"] = ", ".join(to)
    if cc:
        message["Cc"] = ", ".join(cc)
    if reply_to:
        message["Reply-To"] = reply_to
    message["Subject"] = content.subject
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = msg_id
    message["Auto-Submitted"] = "auto-generated"
    message["X-Crownguard-Run-Id"] = run_id
    message["X-Crownguard-Step-Id"] = step_id
    message.set_content(content.text)
    message.add_alternative(content.html, subtype="html")
    # After the parts: set_content() drops every Content-* header set before it.
    message["Content-Language"] = content.language
    return message
