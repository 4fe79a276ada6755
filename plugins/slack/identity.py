"""Who answered a nudge: the Slack user of an interaction, known by their e-mail when Slack
says it.

Playbooks name approvers by e-mail (`event.actor.email`) or by Slack user id. An interaction
carries only the user id, so the answer is made by the e-mail that users.info gives, with the
user id as an alias that also counts. When the e-mail cannot be had (the token lacks
users:read or users:read.email, the user is a bot, Slack is down), the answer is made by the
user id alone and `note` says why: approvers listed by e-mail will then refuse it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from crownguard.engine import CrownguardError, RateLimited
from crownguard.plugins.slack.client import SlackClient

# users.info is a tier-4 method (100+ a minute): a 429 is rare and short. One wait of at most
# this long, then the answer goes on without the e-mail rather than hold the request.
MAX_RATE_LIMIT_WAIT = 5.0


@dataclass(frozen=True)
class Answerer:
    """`by` is the identity the answer is recorded under; `aliases` also count as approvers;
    `note` says why the e-mail is missing, when it is."""

    by: str
    aliases: tuple[str, ...] = ()
    note: str | None = None


def answerer(client: SlackClient, user_id: str) -> Answerer:
    """The answering person, by e-mail with the Slack user id as alias, else by the id."""
    try:
        user = _user_info(client, user_id)
    except CrownguardError as exc:  # the vendor's errors are redacted and name the method
        return Answerer(user_id, note=f"Slack could not say who {user_id} is ({exc})")
    profile = user.get("profile")
    email = profile.get("email") if isinstance(profile, dict) else None
    if isinstance(email, str) and email.strip():
        return Answerer(email.strip(), (user_id,))
    if user.get("is_bot") or user.get("is_app_user"):
        why = f"{user_id} is a bot or app user, which has no e-mail"
    else:
        why = (f"Slack gave no e-mail for {user_id}: the app's token needs the scope "
               "users:read.email to see it")
    return Answerer(user_id, note=why)


def _user_info(client: SlackClient, user_id: str) -> dict[str, object]:
    try:
        return client.user_info(user_id)
    except RateLimited as exc:
        wait = exc.retry_after if exc.retry_after is not None else 1.0
        if wait > MAX_RATE_LIMIT_WAIT:
            raise
        time.sleep(max(wait, 0.0))
        return client.user_info(user_id)
