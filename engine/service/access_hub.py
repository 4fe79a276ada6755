"""Gated Hugging Face repos' access requests, polled from the Hub and answered through it.

    access:
      huggingface_poll:
        interval_seconds: 300
        repos: [acme-ml/fraud-llm]
        users: {priya-r: priya.raman@corp.example}   # Hub username -> who they are here
        email_domains: [corp.example]                 # the Hub's e-mails trusted as identity

Every `interval_seconds` the poller lists each repo's pending requests
(`huggingface.list_access_requests`) and makes each one a crownguard access request of the
person it names (`users`, else the e-mail the Hub shares when its domain is trusted), with the
gate form's answers as the justification. The desk decides it as any other (the policy, the
`model-access-request` playbook, approvers) and answers on the Hub through `HubRegistry`:
accept on a grant, reject on a denial, reject again (the access taken back) at expiry or
revoke. A Hub request is known by (repo, user, request time) in the journal's
`access_sources`: a second poll, a restart or a second process never makes it twice, and a
request the Hub shows anew (cancelled back to pending: a new time) is a new request. One that
names nobody known, or gives no justification, is left pending on the Hub, said once in the
log and tried again at each poll (a `users` entry added later takes effect).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..config import Config
from ..errors import ActionError, ConfigError, CrownguardError
from ..plugins import PluginHost
from ..triage.policy import Policy
from .access import AccessDesk, Registry, call_registry_action
from .access_store import AccessError, AccessState, DuplicateSource
from .service import Service

log = logging.getLogger("crownguard.access")
HUB = "huggingface"  # the registry's name in a request's decision, and the connection's
DEFAULT_INTERVAL = 300.0
ACCESS = "download"  # a gated repo's access is to download its files
ENDED = "access to this repository ended; ask again if you still need it"
_ACTIONS = ("huggingface.get_repo", "huggingface.list_access_requests",
            "huggingface.accept_access_request", "huggingface.reject_access_request")


class HubRegistry:
    """A gated Hub repo as the desk's registry, through the huggingface plugin's actions. The
    Hub holds the request itself, so a refusal, an expiry and a revoke all reject it there."""

    def __init__(self, host: PluginHost, config: Config, *, timeout: float = 60.0):
        self.host, self.config, self.timeout = host, config, timeout

    def _call(self, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
        return call_registry_action(self.host, self.config, name, inputs, self.timeout)

    def model_tags(self, model: str) -> dict[str, str]:
        """The repo's `key:value` tags (its card's `tags: [sensitivity:restricted]`)."""
        tags: dict[str, str] = {}
        for tag in self._call("huggingface.get_repo", {"repo_id": model}).get("tags") or []:
            key, sep, value = str(tag).partition(":")
            if sep and key.strip() and value.strip():
                tags.setdefault(key.strip().lower(), value.strip())
        return tags

    def pending(self, repo: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self._call("huggingface.list_access_requests",
                                                 {"repo_id": repo, "status": "pending"}
                                                 )["requests"]
        return found

    def grant(self, model: str, user: str, permission: str) -> dict[str, Any]:
        return self._call("huggingface.accept_access_request", {"repo_id": model, "user": user})

    def revoke(self, model: str, user: str, permission: str) -> dict[str, Any]:
        return self.refuse(model, user, ENDED)

    def refuse(self, model: str, user: str, reason: str) -> dict[str, Any]:
        return self._call("huggingface.reject_access_request",
                          {"repo_id": model, "user": user, "reason": reason[:500]})


def hub_registries(host: PluginHost, config: Config) -> dict[str, Registry]:
    """{"huggingface": HubRegistry} when the connections file has a huggingface connection
    and the plugin is installed; {} otherwise (Hub requests then wait for one)."""
    if HUB not in config.connections.names() or any(a not in host.actions for a in _ACTIONS):
        return {}
    return {HUB: HubRegistry(host, config)}


@dataclass(frozen=True)
class HubPollSettings:
    interval_seconds: float
    repos: tuple[str, ...]
    users: dict[str, str] = field(default_factory=dict)  # Hub username (lower case) -> person
    email_domains: tuple[str, ...] = ()  # empty: every e-mail the Hub shares is trusted


def hub_poll_settings(policy: Policy) -> HubPollSettings | None:
    """The policy's `access.huggingface_poll` (validated by the policy schema), or None."""
    data = (policy.data.get("access") or {}).get("huggingface_poll")
    if not data:
        return None
    return HubPollSettings(
        float(data.get("interval_seconds", DEFAULT_INTERVAL)),
        tuple(dict.fromkeys(str(r) for r in data.get("repos") or ())),
        {str(k).lower(): str(v) for k, v in (data.get("users") or {}).items()},
        tuple(str(d).lower().lstrip("@") for d in data.get("email_domains") or ()))


def source_key(repo: str, item: dict[str, Any]) -> str:
    """One Hub request: the repo, the user and when they asked (a new ask is a new key)."""
    return f"{HUB}:{repo}:{item.get('user')}:{item.get('timestamp')}"


def requester_of(item: dict[str, Any], settings: HubPollSettings) -> str | None:
    """Who the Hub user is here: named in `users`, else their e-mail on the Hub when it has a
    trusted domain. None: nobody known (the request is left for a person on the Hub)."""
    user = str(item.get("user") or "")
    if user.lower() in settings.users:
        return settings.users[user.lower()]
    email = str(item.get("email") or "").strip()
    name, at, domain = email.rpartition("@")
    if not (name and at and domain) or "*" in email:  # absent, or masked by the Hub
        return None
    if settings.email_domains and domain.lower() not in settings.email_domains:
        return None
    return email


def justification_of(item: dict[str, Any]) -> str:
    """The gate form's answers, as the user gave them (one field: its text alone)."""
    fields = {k: v for k, v in (item.get("fields") or {}).items()
              if v is not None and str(v).strip()}
    if len(fields) == 1:
        return str(next(iter(fields.values()))).strip()
    return "; ".join(f"{k}: {str(v).strip()}" for k, v in fields.items())


@dataclass
class HubPollResult:
    created: list[str] = field(default_factory=list)  # the access requests made
    known: int = 0
    set_aside: int = 0
    answered_again: int = 0
    failed_repos: list[str] = field(default_factory=list)


class HubAccessPoller:
    """Polls the gated repos' pending requests into the desk, in a thread of its own."""

    def __init__(self, desk: AccessDesk, registry: HubRegistry, settings: HubPollSettings, *,
                 redact: Callable[[str], str] = str):
        self.desk, self.registry, self.settings, self.redact = desk, registry, settings, redact
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="crownguard-hub-access",
                                        daemon=True)
        self.completed = 0

    def poll_once(self) -> HubPollResult:
        result = HubPollResult()
        for repo in self.settings.repos:
            if self._stop.is_set():
                break
            try:
                pending = self.registry.pending(repo)
            except (CrownguardError, ActionError) as exc:  # this repo next time; the rest now
                result.failed_repos.append(repo)
                log.warning("hub access poll: %s: %s", repo, self.redact(str(exc)))
                continue
            for item in pending:
                if item.get("user"):
                    self._take(repo, item, result)
        self.completed += 1
        return result

    def _take(self, repo: str, item: dict[str, Any], result: HubPollResult) -> None:
        key = source_key(repo, item)
        store = self.desk.store
        known = store.source(key)
        if known is not None and known.request_id is not None:
            result.known += 1
            self._answer_again(known.request_id, repo, item, result)
            return
        user = str(item["user"])
        requester = requester_of(item, self.settings)
        if requester is None:
            self._set_aside(key, result, f"the Hub user {user} is not known here: name them "
                            "in access.huggingface_poll.users (or share a trusted e-mail)")
            return
        try:
            made = self.desk.request(
                requester, repo, justification_of(item), access=ACCESS, registry=HUB,
                source={"key": key, "user": user, "repo": repo,
                        "timestamp": item.get("timestamp"), "hub_request_id":
                        item.get("request_id"), "fields": item.get("fields") or {}})
        except DuplicateSource:  # another process made it between our read and our write
            result.known += 1
            return
        except AccessError as exc:  # no justification, no such repo...: left pending there
            self._set_aside(key, result, f"{user}'s request for {repo}: {exc}")
            return
        result.created.append(made.id)
        log.info("hub access poll: %s asked for %s as %s: access request %s is %s",
                 user, repo, requester, made.id, made.state)

    def _answer_again(self, request_id: str, repo: str, item: dict[str, Any],
                      result: HubPollResult) -> None:
        """A request refused or ended here that the Hub still shows pending (the rejection
        did not reach it): reject it there again."""
        request = self.desk.store.get(request_id)
        refused = request.state == AccessState.DENIED and \
            (request.decision or {}).get("outcome") != "not_needed"
        if not refused and request.state not in (AccessState.EXPIRED, AccessState.REVOKED):
            return
        try:
            self.registry.refuse(repo, str(item["user"]), "not approved; ask the model's "
                                 "owner or the security team" if refused else ENDED)
            result.answered_again += 1
        except (CrownguardError, ActionError) as exc:
            log.warning("hub access poll: access request %s: the rejection did not reach the "
                        "Hub yet: %s", request_id, self.redact(str(exc)))

    def _set_aside(self, key: str, result: HubPollResult, problem: str) -> None:
        result.set_aside += 1
        if self.desk.store.set_aside(key, problem[:1000]):
            log.warning("hub access poll: left pending on the Hub: %s", self.redact(problem))

    def start(self) -> HubAccessPoller:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self.desk.store.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                self.poll_once()
            except Exception:  # a bad pass must not end the poller: the next one retries
                log.exception("the hub access poll failed")
            self._stop.wait(max(self.settings.interval_seconds - (time.monotonic() - began),
                                0.05))


def hub_poller(service: Service, make_desk: Callable[[Service], AccessDesk | None]
               ) -> HubAccessPoller | None:
    """The poller of the policy's `access.huggingface_poll` (not started), or None when there
    is none; a ConfigError when it cannot run."""
    settings = hub_poll_settings(service.policy)
    if settings is None:
        return None
    where = f"{service.policy.source}: access.huggingface_poll"
    if not hub_registries(service.host, service.config):
        raise ConfigError(f"{where}: needs the huggingface plugin and a '{HUB}' connection in "
                          "the connections file")
    desk = make_desk(service)
    if desk is None:
        raise ConfigError(f"{where}: the journal keeps no access requests")
    registry = desk.registries.get(HUB)
    if not isinstance(registry, HubRegistry):  # the desk answers the Hub's requests too
        registry = desk.registries[HUB] = HubRegistry(service.host, service.config)
    return HubAccessPoller(desk, registry, settings,
                           redact=lambda text: service.config.redactor.redact(text))
