"""Shared nudge content for the Slack and e-mail plugins (package crownguard.plugins._nudge).

Not a plugin: it has no hookimpls and no entry point. It holds the safe template renderer, the
shipped templates (English, German, French) under templates/<language>/, the nudge inputs both
plugins accept, and the in-process delivery ledger for peers that cannot be asked what they
already received.
"""

from crownguard.plugins._nudge.content import (
    NUDGE_INPUT_PROPERTIES,
    NUDGE_VALUES,
    NudgeContent,
    nudge_values,
    render_nudge,
)
from crownguard.plugins._nudge.ledger import DELIVERIES, DeliveryLedger
from crownguard.plugins._nudge.templates import (
    DEFAULT_LANGUAGE,
    TEMPLATE_FILES,
    TemplateSource,
    primary_language,
    resolve_template_dir,
)
from crownguard.plugins._nudge.templating import (
    Template,
    TemplateError,
    escape_html,
    escape_mrkdwn,
)

__all__ = [
    "DEFAULT_LANGUAGE",
    "DELIVERIES",
    "NUDGE_INPUT_PROPERTIES",
    "NUDGE_VALUES",
    "TEMPLATE_FILES",
    "DeliveryLedger",
    "NudgeContent",
    "Template",
    "TemplateError",
    "TemplateSource",
    "escape_html",
    "escape_mrkdwn",
    "nudge_values",
    "primary_language",
    "render_nudge",
    "resolve_template_dir",
]
