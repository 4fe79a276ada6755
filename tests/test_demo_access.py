"""The demo's access episode: a researcher granted for 8 hours and taken back on time, her
download triaged with the grant, a leaver refused and told no more than the policy says."""

from __future__ import annotations

import io
import re

import pytest

from crownguard.engine.cli.demo import Episode, default_episodes, run_demo
from crownguard.engine.cli.demo_access import LEAVES, AccessResult, told
from crownguard.engine.plugins import PluginHost
from crownguard.engine.service.access_store import AccessKind, AccessRequest, AccessState


@pytest.fixture(scope="module")
def played() -> tuple[int, str]:
    out = io.StringIO()
    code = run_demo(PluginHost.from_entry_points(), out=out)
    return code, out.getvalue()


def _episode(out: str) -> str:
    return out[out.index("[9] Just-in-time access"):out.index("\nsummary")]


def test_the_researcher_is_granted_for_8_hours_and_loses_it_on_time(
        played: tuple[int, str]) -> None:
    code, out = played
    assert code == 0, out
    part = _episode(out)
    assert "asks for 8 h of read access, at 2026-11-25 09:00 UTC" in part
    assert "granted by policy: risk 20 (low): the model is tagged restricted, below 25" in part
    assert "she is told: granted: read access to acme-support-llama3-8b-ft until " \
           "2026-11-25 17:00 UTC" in part
    before, after = part.split("8 hours pass")
    assert "her own read of the model in MLflow answers 200" in before
    assert re.search(r"expired +access request [0-9a-f]{16}: its 8 h ended at 2026-11-25 "
                     r"17:00 UTC, the READ permission is taken back", after)
    assert "her own read of the model in MLflow answers 403" in after
    assert "POST   /api/3.0/mlflow/users/permissions/grant" in part
    assert "POST   /api/3.0/mlflow/users/permissions/revoke" in part
    assert "2 access requests: 1 granted for 8 h and taken back on time, 1 refused" in \
        out[out.index("\nsummary"):]


def test_her_download_under_the_grant_carries_it_into_triage(played: tuple[int, str]) -> None:
    part = _episode(played[1])
    granted = re.search(r"-20  access_granted +holds access request ([0-9a-f]{16}) for "
                        r"acme-support-llama3-8b-ft until 2026-11-25 17:00 UTC: \"evaluate the "
                        r"v3 adapter", part)
    assert granted is not None
    assert f"expired    access request {granted.group(1)}" in part  # the same request
    assert "risk       50 medium" in part and "without the grant it would have scored 70 high" \
        in part


def test_the_leaver_is_refused_and_told_only_what_the_policy_says(
        played: tuple[int, str]) -> None:
    part = _episode(played[1])
    leaver = part[part.index("dana.whitfield@example.com (leaving"):]
    [told_line] = [line for line in leaver.splitlines() if "she is told" in line]
    assert "refused: the access policy does not allow this request for " \
           "acme-support-llama3-8b-ft; an admin can review request" in told_line
    for tip in ("departing", "notice", "risk", LEAVES, "watchlist", "leav"):
        assert tip not in told_line
    assert "the audit trail and the approvers see: denied: departing employee (leaves " \
           "2026-12-04); in the notice period" in leaver
    grants = part.count("/permissions/grant")
    assert grants == 1  # the researcher's only


def test_what_a_requester_is_told_in_each_state() -> None:
    def request(state: AccessState, expires: str | None = None) -> AccessRequest:
        return AccessRequest("abcdef0123456789", "x@corp.example", "m", None, None,
                             AccessKind.READ, "because", 3600, state, "t", "t",
                             decision={"reason": "denied: on watchlist FLIGHT_RISK"},
                             expires_at=expires)

    assert told(request(AccessState.GRANTED, "2026-11-25T17:00:00.000Z")) == \
        "granted: read access to m until 2026-11-25 17:00 UTC"
    refused = told(request(AccessState.DENIED))
    assert "refused" in refused and "FLIGHT_RISK" not in refused and "abcdef0123456789" in refused
    assert told(request(AccessState.PENDING)) == "pending: waiting for an approver of m"


def test_a_story_that_goes_otherwise_is_not_as_expected() -> None:
    assert not AccessResult().as_expected
    assert AccessResult().summary() == "access requests: not as the story expects"


def test_a_custom_story_plays_no_access_episode_unless_asked() -> None:
    out = io.StringIO()
    [first] = default_episodes()[:1]
    code = run_demo(PluginHost.from_entry_points(), [Episode(first.title, first.payload)],
                    out=out)
    assert code == 0 and "Just-in-time access" not in out.getvalue()
