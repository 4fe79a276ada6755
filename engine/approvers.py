"""Who may answer a waiting step: the one check behind `crownguard approve`, a plugin's
answering command (`crownguard slack-answer`) and a scenario's `resume.answers`.

An answer is made by one identity, `by` (what the journal records), with optional aliases
that also count: the same person under another name, such as their Slack user id next to
their e-mail. Identities that are e-mail addresses compare case-insensitively (mail systems
do not care about case, and directories spell addresses inconsistently); any other identity
(a Slack user id, a token name) compares exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def step_approvers(waiting: Mapping[str, Any] | None, fallback: Sequence[str] = ()) -> list[str]:
    """The approvers a waiting step names (its wait's `data.approvers`), else `fallback` (the
    connections file's `approvers`); an empty list means anyone may answer."""
    named = ((waiting or {}).get("data") or {}).get("approvers") or []
    return [str(a) for a in named] if named else [str(a) for a in fallback]


def _key(identity: str) -> str:
    identity = identity.strip()
    return identity.casefold() if "@" in identity else identity


def refusal(by: str, allowed: Sequence[str], aliases: Sequence[str] = ()) -> str | None:
    """None when `by` or one of its `aliases` is among `allowed` (or nobody is named), else
    why the answer is refused."""
    if not allowed:
        return None
    wanted = {_key(a) for a in allowed}
    if any(_key(identity) in wanted for identity in (by, *aliases)):
        return None
    known_as = f" (also {', '.join(aliases)})" if aliases else ""
    return f"{by}{known_as} may not answer (allowed: {', '.join(allowed)})"
