"""`crownguard slack-answer`: a Slack interaction request (the employee's button or
justification), verified with the app's signing secret, answers its waiting step as the
employee: by their e-mail (users.info), with their Slack user id as an alias that also counts
for the step's approvers (identity.py)."""

from __future__ import annotations

import argparse
import sys

from crownguard.engine import ActionContext, CommandContext, CrownguardError
from crownguard.plugins.slack.actions import parse_interaction
from crownguard.plugins.slack.client import SlackClient
from crownguard.plugins.slack.identity import answerer

NAME = "slack-answer"
HELP = "verify a Slack interaction request and record the employee's answer in its waiting run"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--body-file", required=True, metavar="FILE",
                        help="the request body exactly as Slack sent it")
    parser.add_argument("--header", action="append", metavar="'NAME: VALUE'",
                        help="X-Slack-Signature and X-Slack-Request-Timestamp, as received")
    parser.add_argument("--config", metavar="FILE",
                        help="connections file with slack.signing_secret")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--journal", metavar="PATH",
                        help="the run journal (default: $CROWNGUARD_JOURNAL, else "
                             "~/.local/state/crownguard/journal.sqlite)")


def run(args: argparse.Namespace, cli: CommandContext) -> int:
    config = cli.config()
    headers = {}
    for item in args.header or []:
        name, sep, value = item.partition(":")
        if not sep:
            raise CrownguardError(f"--header takes 'Name: value', got '{item}'")
        headers[name.strip()] = value.strip()
    try:
        with open(args.body_file, encoding="utf-8") as body_file:
            body = body_file.read()
    except OSError as exc:
        raise CrownguardError(f"{args.body_file}: cannot read ({exc.strerror})") from None
    inputs = {"body": body, "headers": headers}
    parse_interaction.validate_inputs(inputs)
    ctx = ActionContext(run_id="slack-interaction", step_id="parse", attempt=1,
                        idempotency_key="slack-interaction", connections=config.connections)
    reply = parse_interaction.func(ctx, inputs)
    comment = reply["choice"] + (f": {reply['justification']}" if reply.get("justification")
                                 else "")
    # Only a verified request gets this far: ask Slack who the user is (users.info).
    who = answerer(ctx.client(SlackClient), reply["user"])
    if who.note:
        print(f"crownguard: slack-answer: answering as Slack user {who.by} alone: {who.note}",
              file=sys.stderr)
    return cli.answer(reply["run_id"], reply["step_id"], "approve", by=who.by,
                      aliases=who.aliases, comment=comment)
