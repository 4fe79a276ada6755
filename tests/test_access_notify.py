"""The access desk tells people by Slack DM (the slack mock's state is what was sent): the
requester's confirmation in the policy's words, a reminder a day before a grant of more than a
day ends (once, also across a restart; again on the next pass when Slack failed), and a word
when the grant ends (expired, revoked). The approvers are asked with Approve/Deny buttons."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import crownguard.plugins.slack as slack_plugin
from crownguard.engine.journal import SQLiteJournal
from crownguard.engine.plugins import PluginHost
from crownguard.engine.service.access import AccessDesk, Caller
from crownguard.engine.service.access_notify import SlackNotifier
from crownguard.engine.service.access_store import AccessState, AccessStore
from crownguard.engine.service.settings import Role
from crownguard.engine.triage.policy import policy_from_mapping
from crownguard.plugins.slack.mock import SlackMock

NOON = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)  # a Wednesday, working hours
WHY = "retraining the fraud model on the Q3 data"
EVE, FLO, OWNER = "eve@corp.example", "flo@corp.example", "omar@corp.example"
POLICY = {"access": {"models": {"tag": "sensitivity"}, "auto_grant_below": 25,
                     "max_duration_hours": 96, "approvers": {"owner_tag": "owner"},
                     "people": {FLO: {"watchlists": ["FLIGHT_RISK"]}}}}


class Registry:
    """The model registry as the desk needs it: grants recorded, nothing real."""

    def __init__(self) -> None:
        self.granted: set[tuple[str, str]] = set()

    def model_tags(self, model: str) -> dict[str, str]:
        return {"sensitivity": "restricted", "owner": OWNER}

    def grant(self, model: str, user: str, permission: str) -> dict[str, Any]:
        self.granted.add((model, user))
        return {"changed": True, "pre_existing": None, "api": "fake"}

    def revoke(self, model: str, user: str, permission: str) -> dict[str, Any]:
        self.granted.discard((model, user))
        return {"changed": True}


@pytest.fixture
def slack(mock_server: Callable[..., Any]) -> SlackMock:
    server = mock_server(SlackMock)
    assert isinstance(server, SlackMock)
    for person in (EVE, FLO, OWNER):
        server.add_user(person, person.split("@")[0].title())
    return server


@pytest.fixture
def make_desk(slack: SlackMock, isolated_host: Callable[..., PluginHost],
              mock_config: Callable[..., Any], tmp_path: Path) -> Callable[[], AccessDesk]:
    host = isolated_host(slack_plugin, name="slack")
    config = mock_config("slack", slack, host=host)
    registry = Registry()

    def make() -> AccessDesk:  # a new process on the same journal
        store = AccessStore(SQLiteJournal(tmp_path / "journal.db"))
        return AccessDesk(store, policy_from_mapping(POLICY), registry,
                          notifier=SlackNotifier(host, config))

    return make


def dm(slack: SlackMock, email: str) -> list[dict[str, Any]]:
    """The app's messages in the person's DM, oldest first."""
    user = next(u for u in slack.users.values() if u["profile"]["email"] == email)
    channel = slack.dm_of(user["id"])
    return [] if channel is None else slack.messages(channel)


def texts(slack: SlackMock, email: str) -> list[str]:
    return [str(m["text"]) for m in dm(slack, email)]


def test_a_long_grant_is_reminded_once_a_day_before_it_ends_also_after_a_restart(
        make_desk: Callable[[], AccessDesk], slack: SlackMock) -> None:
    desk = make_desk()
    made = desk.request(EVE, "secret", WHY, duration_seconds=3 * 86400, now=NOON)
    assert made.state == AccessState.GRANTED
    [received] = texts(slack, EVE)
    assert received.startswith(f"Your access request {made.id} for read access to secret "
                               "for 72 h is received. Granted: read access to secret until ")
    assert desk.remind_due(NOON + timedelta(days=1)) == []  # two days left: not yet
    [reminded] = desk.remind_due(NOON + timedelta(days=2, hours=1))
    assert reminded.grant is not None and reminded.grant["reminded_at"]
    assert texts(slack, EVE)[-1].startswith("Your read access to secret ends in less than a "
                                            "day, at 2026-12-05 12:00 UTC")
    assert desk.remind_due(NOON + timedelta(days=2, hours=2)) == []
    desk.store.close()
    again = make_desk()  # a restart: the reminder is in the request's history
    assert again.remind_due(NOON + timedelta(days=2, hours=3)) == []
    kinds = [h["type"] for h in again.store.history(made.id)]
    assert kinds.count("access_reminded") == 1 and len(texts(slack, EVE)) == 2
    [expired] = again.expire_due(NOON + timedelta(days=3, minutes=1))
    assert expired.state == AccessState.EXPIRED
    assert texts(slack, EVE)[-1] == (f"Access request {made.id}: expired: your read access to "
                                     "secret ended at 2026-12-05 12:00 UTC.")


def test_a_grant_of_a_day_or_less_is_not_reminded(make_desk: Callable[[], AccessDesk],
                                                  slack: SlackMock) -> None:
    desk = make_desk()
    desk.request(EVE, "secret", WHY, duration_seconds=86400, now=NOON)
    assert desk.remind_due(NOON + timedelta(hours=12)) == []
    assert len(texts(slack, EVE)) == 1  # the confirmation only


def test_a_reminder_slack_refused_is_sent_on_a_later_pass(
        make_desk: Callable[[], AccessDesk], slack: SlackMock) -> None:
    desk = make_desk()
    made = desk.request(EVE, "secret", WHY, duration_seconds=2 * 86400, now=NOON)
    slack.inject("status", status=500, path="/api/chat.postMessage", times=10)
    assert desk.remind_due(NOON + timedelta(days=1, hours=1)) == []
    assert "access_reminded" not in [h["type"] for h in desk.store.history(made.id)]
    slack.clear_faults()
    [reminded] = desk.remind_due(NOON + timedelta(days=1, hours=2))
    assert reminded.id == made.id and "ends in less than a day" in texts(slack, EVE)[-1]


def test_an_early_revoke_is_told_and_a_pending_request_asks_the_owner_with_buttons(
        make_desk: Callable[[], AccessDesk], slack: SlackMock) -> None:
    desk = make_desk()
    made = desk.request(FLO, "secret", WHY, duration_seconds=7200, now=NOON)
    assert made.state == AccessState.PENDING
    [received] = texts(slack, FLO)
    assert received == (f"Your access request {made.id} for read access to secret for 2 h "
                        "is received. Pending: waiting for an approver of secret.")
    [ask] = dm(slack, OWNER)
    assert "FLIGHT_RISK" in ask["text"] and WHY in ask["text"]  # the approver hears why
    [buttons] = [b for b in ask["blocks"] if b["type"] == "actions"]
    values = [json.loads(e["value"]) for e in buttons["elements"]]
    assert [(v["run_id"], v["step_id"], v["choice"]) for v in values] == [
        (f"access:{made.id}", "decide", "approve"), (f"access:{made.id}", "decide", "deny")]
    granted = desk.approve(made.id, Caller(OWNER, Role.APPROVER), now=NOON)
    assert granted.state == AccessState.GRANTED
    assert texts(slack, FLO)[-1].startswith(f"Access request {made.id}: granted: read access")
    desk.revoke(made.id, Caller("ops-bot", Role.RESPONDER), "handover done")
    assert texts(slack, FLO)[-1].startswith(f"Access request {made.id}: revoked: your read "
                                            "access to secret was taken back at ")
    assert not any("FLIGHT_RISK" in t for t in texts(slack, FLO))


def test_the_cli_tells_the_requester_of_a_request_and_its_revoke(
        slack: SlackMock, mock_server: Callable[..., Any], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    from crownguard.engine.cli import main
    from crownguard.plugins.mlflow.mock import MlflowMock

    mlflow = mock_server(MlflowMock, auth="basic")
    mlflow.default_permission = "NO_PERMISSIONS"
    mlflow.add_version("fraud", {"weights.bin": b"w"})
    mlflow.tag_model("fraud", {"sensitivity": "internal"})
    mlflow.add_user(EVE, "eve-pw")
    config, policy = tmp_path / "connections.yaml", tmp_path / "policy.yaml"
    config.write_text(json.dumps({"connections": {"mlflow": mlflow.connection_settings(),
                                                  "slack": slack.connection_settings()}}))
    policy.write_text(json.dumps({"weights": {"off_hours": 0},
                                  "access": {"auto_grant_below": 15}}))
    files = ["--config", str(config), "--policy", str(policy),
             "--journal", str(tmp_path / "j.sqlite")]
    assert main(["access", "request", "fraud", "--why", WHY, "--hours", "2", "--as", EVE,
                 "--json", *files]) == 0
    made = json.loads(capsys.readouterr().out)
    assert texts(slack, EVE)[0].startswith(f"Your access request {made['id']} for read "
                                           "access to fraud for 2 h is received. Granted: ")
    assert main(["access", "revoke", made["id"], "--by", "ops", *files]) == 0
    assert texts(slack, EVE)[-1].startswith(f"Access request {made['id']}: revoked: ")


def test_a_model_the_policy_does_not_manage_is_told_as_not_needed() -> None:
    from crownguard.engine.service.access_store import AccessKind, AccessRequest
    from crownguard.engine.service.access_views import told

    request = AccessRequest("abcdef0123456789", EVE, "public-bert", None, None,
                            AccessKind.READ, WHY, 3600, AccessState.DENIED, "t", "t",
                            decision={"outcome": "not_needed", "reason": "not managed"})
    assert told(request) == ("not needed: public-bert is not a model the access policy "
                             "manages; its registry's own permissions apply")


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_two_processes_reminding_at_once_record_it_once(
        kind: str, slack: SlackMock, isolated_host: Callable[..., PluginHost],
        mock_config: Callable[..., Any], tmp_path: Path,
        request: pytest.FixtureRequest) -> None:
    from crownguard.engine.journal import open_journal

    where = str(tmp_path / "j.sqlite") if kind == "sqlite" else \
        str(request.getfixturevalue("postgres_dsn"))
    host = isolated_host(slack_plugin, name="slack")
    config = mock_config("slack", slack, host=host)
    registry, policy = Registry(), policy_from_mapping(POLICY)
    slack_notifier = SlackNotifier(host, config)
    journals = [open_journal(where), open_journal(where)]
    stores = [AccessStore(j) for j in journals]
    other = AccessDesk(stores[1], policy, registry, notifier=slack_notifier)
    later = NOON + timedelta(days=2, hours=1)

    class Racing:
        """Process one's notifier: while it sends, process two reminds (and records) first."""

        def tell(self, what: str, made: Any) -> bool:
            if what == "expiring":
                assert [r.id for r in other.remind_due(later)] == [made.id]
            return slack_notifier.tell(what, made)

    try:
        first = AccessDesk(stores[0], policy, registry, notifier=Racing())
        made = first.request(EVE, "secret", WHY, duration_seconds=3 * 86400, now=NOON)
        assert first.remind_due(later) == []  # process two recorded it meanwhile
        kinds = [h["type"] for h in first.store.history(made.id)]
        assert kinds.count("access_reminded") == 1
        assert sum("ends in less than a day" in t for t in texts(slack, EVE)) == 1
    finally:
        for store, journal in zip(stores, journals, strict=True):
            store.close()
            journal.close()
