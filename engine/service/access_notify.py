"""Telling people of access requests by Slack direct message (slack.send_direct_message).

The requester hears in the policy's words (access_views.told), never the risk reasons: that
their request is received (with where it stands), granted, denied, that a grant ends within a
day, and that it ended (expired or revoked). The approvers get the request with why it needs
them, and Approve and Deny buttons whose clicks come back through `POST
/v1/slack/interactions` (slack.py routes them to the desk). Every message carries a dedupe
key of the request and the change, so one sent again (a retry, a restart) is found in the DM
and not posted twice. A message that cannot be sent is logged and never undoes a change.

In the service the messages go out on a thread of their own, in order (`background`): a
request's answer does not wait for Slack, nor for its timeouts when Slack is down. The
reminder is sent in the caller's thread (the access timer's), which needs to know whether it
went out before recording it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from ..config import Config
from ..errors import ActionError, CrownguardError
from ..plugins import PluginHost
from .access import call_registry_action
from .access_store import AccessRequest
from .access_views import clock, told

log = logging.getLogger("crownguard.access")
ACTION = "slack.send_direct_message"
CONNECTION = "slack"
ACCESS_RUN_PREFIX = "access:"  # the buttons' "run id": access:<request id>
DECIDE_STEP = "decide"         # the buttons' "step"
# What the requester is told of each change (the desk's `what`); the approvers hear "pending".
TO_REQUESTER = ("received", "granted", "denied", "expiring", "expired", "revoked")


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _hours(seconds: int) -> str:
    return f"{seconds / 3600:g} h"


def requester_text(what: str, request: AccessRequest) -> str:
    """The requester's message for a change: the policy's words and nothing of the risk."""
    if what == "received":
        return (f"Your access request {request.id} for {request.access} access to "
                f"{request.model} for {_hours(request.duration_seconds)} is received. "
                f"{_sentence(told(request))}.")
    if what == "expiring":
        return (f"Your {request.access} access to {request.model} ends in less than a day, "
                f"at {clock(request.expires_at)} (access request {request.id}). Ask again "
                "before then if you still need it.")
    return f"Access request {request.id}: {told(request)}."


def approver_text(request: AccessRequest) -> str:
    """What the approvers are asked: who, what, for how long, why they said, why it needs you."""
    decision = request.decision or {}
    needed = request.approvals_required
    return (f"Access request {request.id}: {request.requester} asks for {request.access} "
            f"access to {request.model} for {_hours(request.duration_seconds)}, saying: "
            f"\"{request.justification}\". {decision.get('reason') or 'It needs an approval.'} "
            f"({needed} approval{'s' if needed != 1 else ''} needed; or answer in the console "
            f"or with POST /v1/access-requests/{request.id}/approve or /deny.)")


class SlackNotifier:
    """The desk's Notifier over Slack DMs. `approvers_by_role`: the people to ask when the
    policy names no approver (the service's tokens of the approver role, by e-mail)."""

    def __init__(self, host: PluginHost, config: Config,
                 approvers_by_role: Callable[[], list[str]] = list, *,
                 background: bool = False):
        self.host, self.config = host, config
        self.approvers_by_role = approvers_by_role
        self._sender = (ThreadPoolExecutor(1, thread_name_prefix="crownguard-access-slack")
                        if background else None)

    @classmethod
    def available(cls, host: PluginHost, config: Config) -> bool:
        return ACTION in host.actions and CONNECTION in config.connections

    def tell(self, what: str, request: AccessRequest) -> bool:
        """Send the change's messages; False when one could not be sent (said in the log).
        In the background (but the reminder): True once handed to the sending thread."""
        if self._sender is not None and what != "expiring":
            self._sender.submit(self._tell_logged, what, request)
            return True
        return self._tell(what, request)

    def close(self) -> None:
        """Send what is queued, then stop the sending thread."""
        if self._sender is not None:
            self._sender.shutdown(wait=True)

    def _tell_logged(self, what: str, request: AccessRequest) -> None:
        try:
            self._tell(what, request)
        except Exception:  # on the sending thread nobody else would see it
            log.exception("access request %s: telling of '%s' failed", request.id, what)

    def _tell(self, what: str, request: AccessRequest) -> bool:
        if what in TO_REQUESTER:
            return self._send(request.requester, requester_text(what, request),
                              f"access-{request.id}-{what}", request)
        if what == "pending":
            named = [str(a) for a in (request.decision or {}).get("approvers") or []]
            people = [p for p in (named or self.approvers_by_role()) if "@" in p]
            if not people:
                log.warning("access request %s: no approver to ask in Slack (the policy names "
                            "none by e-mail, and no approver token is an e-mail)", request.id)
            sent = [self._send(person, approver_text(request), f"access-{request.id}-ask",
                               request, buttons=True)
                    for person in dict.fromkeys(people)
                    if person.lower() != request.requester.lower()]
            return all(sent)
        return True  # nobody is told of the others (requested, one approval of two)

    def _send(self, email: str, text: str, key: str, request: AccessRequest, *,
              buttons: bool = False) -> bool:
        if "@" not in email:  # a registry's user name (the Hub's), not a Slack e-mail
            log.info("access request %s: %s is no e-mail address: not told in Slack",
                     request.id, email)
            return True
        inputs: dict[str, object] = {"email": email, "text": text, "dedupe_key": key}
        if buttons:
            inputs["approval"] = {"run_id": f"{ACCESS_RUN_PREFIX}{request.id}",
                                  "step_id": DECIDE_STEP}
        try:
            call_registry_action(self.host, self.config, ACTION, inputs, timeout=30.0)
        except (CrownguardError, ActionError) as exc:
            log.warning("access request %s: the Slack message to %s was not sent: %s",
                        request.id, email, self.config.redactor.redact(str(exc)))
            return False
        return True
