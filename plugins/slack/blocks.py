"""Block Kit for the nudge, and the answer reference carried by its buttons.

When a justification is asked for, the message ends with an optional text input and two
buttons. Each button's `value` is a small JSON reference `{v, run_id, step_id, choice}`; Slack
echoes it back untouched in the block_actions payload (with the text input's current value in
`state.values`), so an answer finds its run and step without any state kept here.
"""

from __future__ import annotations

import json
from typing import Any

from crownguard.engine import InputError
from crownguard.plugins._nudge import NudgeContent

ANSWER_BLOCK = "crownguard_answer"
JUSTIFICATION_BLOCK = "crownguard_justification"
JUSTIFICATION_ACTION = "justification"
CHOICE_BLOCK = "crownguard_choice"  # a radio group in a modal (view_submission)
CHOICE_ACTION = "choice"
NUDGE_ACTIONS = {"crownguard_mistake": "mistake", "crownguard_business_reason": "business_reason"}
# An approver's buttons (an access request, slack.send_direct_message's `approval`).
APPROVAL_ACTIONS = {"crownguard_approve": "approve", "crownguard_deny": "deny"}
ACTION_CHOICES = {**NUDGE_ACTIONS, **APPROVAL_ACTIONS}
CHOICES = ("mistake", "business_reason", "approve", "deny")
DENYING_CHOICES = ("deny",)  # answered as a rejection
REFERENCE_VERSION = 1

SECTION_LIMIT = 3000      # characters of text in one section block
BUTTON_TEXT_LIMIT = 75
LABEL_LIMIT = 2000
VALUE_LIMIT = 2000        # button value; private_metadata allows 3000
JUSTIFICATION_LIMIT = 3000


def encode_reference(run_id: str, step_id: str, choice: str | None = None) -> str:
    """The button value / private_metadata naming the run and step an answer belongs to."""
    reference: dict[str, Any] = {"v": REFERENCE_VERSION, "run_id": run_id, "step_id": step_id}
    if choice is not None:
        reference["choice"] = choice
    value = json.dumps(reference, separators=(",", ":"))
    if len(value) > VALUE_LIMIT:
        raise InputError("run and step ids are too long for a Slack button value")
    return value


def nudge_blocks(content: NudgeContent, *, run_id: str | None = None,
                 step_id: str | None = None) -> list[dict[str, Any]]:
    """The nudge's blocks; with run_id and step_id, the justification input and buttons."""
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": part}}
                                     for part in split_sections(content.mrkdwn)]
    if run_id is None or step_id is None:
        return blocks
    blocks.append({
        "type": "input",
        "block_id": JUSTIFICATION_BLOCK,
        "optional": True,
        "label": {"type": "plain_text", "text": _cut(content.justification_label, LABEL_LIMIT)},
        "element": {"type": "plain_text_input", "action_id": JUSTIFICATION_ACTION,
                    "multiline": True, "max_length": JUSTIFICATION_LIMIT},
    })
    buttons = []
    for action_id, choice in NUDGE_ACTIONS.items():
        label = content.button_mistake if choice == "mistake" else content.button_reason
        button: dict[str, Any] = {
            "type": "button", "action_id": action_id,
            "text": {"type": "plain_text", "text": _cut(label, BUTTON_TEXT_LIMIT), "emoji": True},
            "value": encode_reference(run_id, step_id, choice),
        }
        if choice == "mistake":
            button["style"] = "primary"
        buttons.append(button)
    blocks.append({"type": "actions", "block_id": ANSWER_BLOCK, "elements": buttons})
    return blocks


def split_sections(text: str, limit: int = SECTION_LIMIT) -> list[str]:
    """Split mrkdwn at paragraph breaks into pieces that fit one section block each."""
    pieces: list[str] = []
    current = ""
    for paragraph in text.strip().split("\n\n"):
        while len(paragraph) > limit:  # one huge paragraph: cut it hard
            pieces.append(paragraph[:limit])
            paragraph = paragraph[limit:]
        candidate = f"{current}\n\n{paragraph}" if current else paragraph
        if len(candidate) > limit:
            pieces.append(current)
            current = paragraph
        else:
            current = candidate
    if current:
        pieces.append(current)
    return pieces


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def approval_blocks(text: str, run_id: str, step_id: str) -> list[dict[str, Any]]:
    """A message with Approve and Deny buttons whose values name `run_id` and `step_id`."""
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": part}}
                                     for part in split_sections(text)]
    buttons = [{"type": "button", "action_id": action_id,
                "text": {"type": "plain_text", "text": choice.title()},
                "style": "primary" if choice == "approve" else "danger",
                "value": encode_reference(run_id, step_id, choice)}
               for action_id, choice in APPROVAL_ACTIONS.items()]
    blocks.append({"type": "actions", "block_id": ANSWER_BLOCK, "elements": buttons})
    return blocks
