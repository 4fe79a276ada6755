"""`crownguard access request|list|show|revoke`: just-in-time model access requests from the
command line, over the same AccessDesk as the service's `/v1/access-requests`."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..config import load_config
from ..errors import UsageError
from ..journal import open_journal
from ..operators import cli_operator
from ..plugins import PluginHost
from ..service.access import AccessDesk, ActionRegistry, Caller
from ..service.access_playbook import AccessPlaybook
from ..service.access_store import AccessRequest, AccessState, AccessStore
from ..service.settings import Role
from ..triage import load_policy
from .console import printable

EXIT_OK = 0


def _store(args: argparse.Namespace) -> AccessStore:
    return AccessStore(open_journal(args.journal))


def _desk(args: argparse.Namespace) -> AccessDesk:
    host = PluginHost.from_entry_points()
    config = load_config(args.config, host.connection_types)
    store = _store(args)
    return AccessDesk(store, load_policy(args.policy), ActionRegistry(host, config),
                      AccessPlaybook(host, config, store.journal))


def _print(request: AccessRequest, as_json: bool, extra: dict[str, Any] | None = None) -> None:
    if as_json:
        print(json.dumps({**request.to_dict(), **(extra or {})}, indent=2, sort_keys=True))
        return
    target = request.model + (f" v{request.version}" if request.version else "") + (
        f" @{request.alias}" if request.alias else "")
    print(printable(f"{request.id}  {request.state}  {request.requester} -> {target} "
                    f"({request.access}, {request.duration_seconds // 60} min)"))
    if request.decision:
        print(printable(f"  decision: {request.decision.get('reason')}"))
    for approval in request.approvals:
        print(printable(f"  approved by {approval.get('by')} at {approval.get('at')}"))
    if request.expires_at and request.state == AccessState.GRANTED:
        print(printable(f"  granted until {request.expires_at}"))
    if request.revoked_by:
        print(printable(f"  ended by {request.revoked_by} at {request.revoked_at}"))


def _seconds(text: str) -> int:
    try:
        hours = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a number of hours, not {text!r}") from None
    if not 0 < hours <= 8760:
        raise argparse.ArgumentTypeError("more than 0 and at most 8760 hours")
    return round(hours * 3600)


def cmd_request(args: argparse.Namespace) -> int:
    requester, _ = cli_operator(args.requester)
    if args.version and args.alias:
        raise UsageError("give --version or --alias, not both")
    desk = _desk(args)
    made = desk.request(requester, args.model, args.why, duration_seconds=args.duration_seconds,
                        access=args.access, version=args.version, alias=args.alias)
    _print(made, args.json)
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    found = _store(args).find(state=args.state, requester=args.requester, model=args.model,
                              limit=args.limit)
    if args.json:
        print(json.dumps([r.to_dict() for r in found], indent=2, sort_keys=True))
    elif not found:
        print("no access requests")
    for request in [] if args.json else found:
        _print(request, False)
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    store = _store(args)
    request = store.get(args.id)
    history = store.history(request.id)
    if args.json:
        _print(request, True, {"history": history})
        return EXIT_OK
    _print(request, False)
    for entry in history:
        payload = entry["payload"]
        who = payload.get("by") or payload.get("requester")
        why = payload.get("reason")
        print(printable(f"  #{entry['seq']} {entry['at']} {entry['type']} by {who}"
                        + (f": {why}" if why else "")))
    return EXIT_OK


def cmd_revoke(args: argparse.Namespace) -> int:
    who, _ = cli_operator(args.by)
    # Whoever holds the journal and the connections file operates the service's store: a
    # responder, as far as revoking goes.
    _print(_desk(args).revoke(args.id, Caller(who, Role.RESPONDER), args.reason), args.json)
    return EXIT_OK


def _decider(args: argparse.Namespace) -> Caller:
    who, _ = cli_operator(args.by)
    # The same check as the API's: one of the request's approvers (e-mails in any case), or,
    # when it names none, anyone operating the store; --override acts as an admin, the one
    # role that may approve a denied request.
    return Caller(who, Role.ADMIN if getattr(args, "override", False) else Role.APPROVER)


def cmd_approve(args: argparse.Namespace) -> int:
    _print(_desk(args).approve(args.id, _decider(args), args.comment), args.json)
    return EXIT_OK


def cmd_deny(args: argparse.Namespace) -> int:
    _print(_desk(args).deny(args.id, _decider(args), args.comment), args.json)
    return EXIT_OK


def add_commands(sub: Any) -> None:
    """Register `access request|list|show|approve|deny|revoke|test` on the `crownguard`
    subparsers."""
    group = sub.add_parser("access", help="just-in-time model access requests")
    commands = group.add_subparsers(dest="access_command", required=True,
                                    parser_class=type(group))

    def common(p: argparse.ArgumentParser, *, registry: bool) -> None:
        p.add_argument("--journal", metavar="PATH",
                       help="the journal (default: $CROWNGUARD_JOURNAL, else "
                            "~/.local/state/crownguard/journal.sqlite)")
        if registry:
            p.add_argument("--config", metavar="FILE", required=True,
                           help="the connections file (its `mlflow` connection)")
            p.add_argument("--policy", metavar="FILE",
                           help="the policy (its `access` section)")
        p.add_argument("--json", action="store_true", help="print JSON")

    p = commands.add_parser("request", help="ask for access to a registered model")
    p.add_argument("model", help="the registered model's name")
    p.add_argument("--why", required=True, help="the justification (recorded)")
    p.add_argument("--hours", dest="duration_seconds", type=_seconds, default=None,
                   help="for how long (default and maximum: the policy's)")
    p.add_argument("--access", choices=("read", "download"), default="read")
    p.add_argument("--version")
    p.add_argument("--alias")
    p.add_argument("--as", dest="requester", metavar="NAME",
                   help="the requester (default: the OS user)")
    common(p, registry=True)
    p.set_defaults(func=cmd_request)

    p = commands.add_parser("list", help="access requests, newest first")
    p.add_argument("--state", choices=[str(s) for s in AccessState])
    p.add_argument("--requester")
    p.add_argument("--model")
    p.add_argument("--limit", type=int, default=100)
    common(p, registry=False)
    p.set_defaults(func=cmd_list)

    p = commands.add_parser("show", help="one request and its history")
    p.add_argument("id", help="the request id (or a unique prefix of 8 or more)")
    common(p, registry=False)
    p.set_defaults(func=cmd_show)

    for name, run, what in (("approve", cmd_approve, "approve a pending request (or, with "
                             "--override, a denied one)"), ("deny", cmd_deny,
                                                            "deny a pending request")):
        p = commands.add_parser(name, help=what)
        p.add_argument("id", help="the request id (or a unique prefix of 8 or more)")
        p.add_argument("--comment", help="why (recorded)")
        p.add_argument("--by", metavar="NAME",
                       help="who decides (default: the OS user); must be one of the "
                            "request's approvers")
        if name == "approve":
            p.add_argument("--override", action="store_true",
                           help="approve a request the policy denied, as an admin (recorded)")
        common(p, registry=True)
        p.set_defaults(func=run)

    p = commands.add_parser("revoke", help="end a request or its grant early")
    p.add_argument("id")
    p.add_argument("--reason")
    p.add_argument("--by", metavar="NAME", help="who revokes (default: the OS user)")
    common(p, registry=True)
    p.set_defaults(func=cmd_revoke)
