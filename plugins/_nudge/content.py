"""The content of one nudge, rendered once and shared by the Slack and e-mail plugins.

Both channels take the same inputs (`NUDGE_INPUT_PROPERTIES`) and render the same template set,
so an employee reads the same words whichever way the nudge reaches them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from crownguard.engine import InputError
from crownguard.plugins._nudge.templates import TemplateSource, resolve_template_dir
from crownguard.plugins._nudge.templating import Escape, escape_html, escape_mrkdwn, plain

# Values the shipped templates know. All are optional text except file_name and policy.
NUDGE_VALUES: dict[str, str] = {
    "employee_name": "How to greet the employee (first name or full name).",
    "file_name": "The file that was seen moving, e.g. llama-ft-q4.safetensors.",
    "file_path": "Where the file was, when it helps the employee find it.",
    "destination": "Where it went, in words, e.g. 'a personal Google Drive'.",
    "policy": "The policy's name, e.g. 'AI model handling policy'.",
    "policy_url": "A link to the policy.",
    "seen_at": "When it was seen, as text the employee reads.",
    "contact": "Whom to ask: a team, mailbox or channel.",
    "respond_url": "A link where the employee can answer (e-mail has no buttons).",
    "case_id": "A reference the employee can quote.",
    "organisation": "The organisation's name.",
}
REQUIRED_VALUES = ("file_name", "policy")
MAX_VALUE_LENGTH = 1000
_EXTRA_NAME = r"^[a-z][a-z0-9_]{0,49}$"
_WEB_LINK = r"^(https?://[^\s<>|\"]+)?$"

NUDGE_INPUT_PROPERTIES: dict[str, Any] = {
    # Optional values may be null: `${{ event.x }}` yields null when the event lacks x.
    **{name: {"type": ["string", "null"], "maxLength": MAX_VALUE_LENGTH, "description": text}
       for name, text in NUDGE_VALUES.items()},
    "file_name": {"type": "string", "minLength": 1, "maxLength": MAX_VALUE_LENGTH,
                  "description": NUDGE_VALUES["file_name"]},
    "policy": {"type": "string", "minLength": 1, "maxLength": MAX_VALUE_LENGTH,
               "description": NUDGE_VALUES["policy"]},
    # Links become href/Slack link targets: web links only, nothing that breaks out of them.
    "policy_url": {"type": ["string", "null"], "pattern": _WEB_LINK, "maxLength": 2000,
                   "description": NUDGE_VALUES["policy_url"]},
    "respond_url": {"type": ["string", "null"], "pattern": _WEB_LINK, "maxLength": 2000,
                    "description": NUDGE_VALUES["respond_url"]},
    "language": {"type": ["string", "null"], "maxLength": 35,
                 "description": "The employee's language (de, fr-CH...); English when absent "
                                "or when no template speaks it."},
    "templates": {"type": "string", "minLength": 1, "maxLength": 4096,
                  "description": "A folder of templates overriding the shipped ones, file by "
                                 "file (see the plugin docs)."},
    "values": {"type": "object", "maxProperties": 50,
               "propertyNames": {"pattern": _EXTRA_NAME},
               "additionalProperties": {"type": "string", "maxLength": MAX_VALUE_LENGTH},
               "description": "More values for the author's own templates."},
}


@dataclass(frozen=True)
class NudgeContent:
    """Every rendered part of one nudge, in one language."""

    language: str
    subject: str
    text: str
    html: str
    mrkdwn: str
    button_mistake: str
    button_reason: str
    justification_label: str


# Each part and the escaping its output format needs.
_PARTS: dict[str, Escape] = {
    "subject": plain,
    "text": plain,
    "html": escape_html,
    "mrkdwn": escape_mrkdwn,
    "button_mistake": plain,
    "button_reason": plain,
    "justification_label": plain,
}
_SINGLE_LINE = ("subject", "button_mistake", "button_reason", "justification_label")


def nudge_values(inputs: Mapping[str, Any]) -> dict[str, str]:
    """The flat string mapping templates see: known values (empty when absent), then extras."""
    values = {name: str(inputs.get(name) or "") for name in NUDGE_VALUES}
    for name in REQUIRED_VALUES:
        if not values[name].strip():
            raise InputError(f"'{name}' is required for a nudge")
    for name, value in (inputs.get("values") or {}).items():
        if name in values:
            raise InputError(f"values.{name}: '{name}' is a nudge input; set it directly")
        values[name] = str(value)
    return values


def render_nudge(inputs: Mapping[str, Any],
                 run_context: Mapping[str, Any] | None = None) -> NudgeContent:
    """Render every part of the nudge in the employee's language (English as the fallback)."""
    override = (resolve_template_dir(inputs["templates"], run_context)
                if inputs.get("templates") else None)
    source = TemplateSource(override)
    language = source.choose(inputs.get("language"))
    values = nudge_values(inputs)
    parts: dict[str, str] = {}
    for part, escape in _PARTS.items():
        text = source.load(part, language).render(values, escape)
        parts[part] = _one_line(text) if part in _SINGLE_LINE else text.strip() + "\n"
        if not parts[part].strip():
            raise InputError(f"the nudge's {part} template rendered empty")
    return NudgeContent(language=language, **parts)


def _one_line(text: str) -> str:
    """Headers and labels are one line: no header injection, no wrapped buttons."""
    return re.sub(r"\s+", " ", text).strip()
