"""The open waits of runs, kept beside the chain so a timer finds the next deadline by index.

A `step_waiting` event opens a wait (its `expires_at`, in epoch seconds, or None when it has no
timeout); the step's end (succeeded, failed, skipped) or the run's (finished, cancelled)
closes it. Both journals write the change in the transaction that appends the event, so the
table never disagrees with the chain; reading it is what lets the service's timer sleep until
the earliest deadline instead of rebuilding every waiting run each tick.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..kinds import EventType, RunStatus

_STEP_ENDS = frozenset({EventType.STEP_SUCCEEDED, EventType.STEP_FAILED,
                        EventType.STEP_SKIPPED})
_RUN_ENDS = frozenset({EventType.RUN_FINISHED, EventType.RUN_CANCELLED})
WAITING = str(RunStatus.WAITING)

# Both dialects, written with "?" (PostgreSQL's "%s" is substituted); `w` is open_waits.
OPEN_ONE = ("INSERT INTO open_waits (run_id, step_id, seq, expires_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (run_id, step_id) DO UPDATE SET seq = excluded.seq, "
            "expires_at = excluded.expires_at")
CLOSE_ONE = "DELETE FROM open_waits WHERE run_id = ? AND step_id = ?"
CLOSE_RUN = "DELETE FROM open_waits WHERE run_id = ?"
OF_RUN = ("SELECT w.run_id, w.step_id, w.seq, w.expires_at FROM open_waits w "
          "WHERE w.run_id = ? ORDER BY w.seq")
# Only waiting runs: a run someone is driving settles its own waits, and one that ended with
# a wait still recorded (a status set by hand) has nothing left to settle.
DUE = ("SELECT w.run_id, w.step_id, w.seq, w.expires_at FROM open_waits w "
       "JOIN runs r ON r.run_id = w.run_id WHERE w.expires_at <= ? AND r.status = 'waiting' "
       "AND (w.expires_at > ? OR (w.expires_at = ? AND (w.run_id > ? OR "
       "(w.run_id = ? AND w.step_id > ?)))) ORDER BY w.expires_at, w.run_id, w.step_id LIMIT ?")
# Any run's: one still being driven when it began to wait is waiting by its deadline.
NEXT = ("SELECT w.expires_at FROM open_waits w WHERE w.expires_at IS NOT NULL "
        "ORDER BY w.expires_at LIMIT 1")
ANSWERS = ("SELECT a.seq AS answer_seq, a.accepted, r.status, w.run_id, w.step_id, w.seq, "
           "w.expires_at FROM approvals a "
           "LEFT JOIN open_waits w ON w.run_id = a.run_id AND w.step_id = a.step_id "
           "LEFT JOIN runs r ON r.run_id = a.run_id WHERE a.seq > ? ORDER BY a.seq LIMIT ?")
# The waits still open in the chain, for a journal written before this table existed: the
# latest step_waiting of each step with no end of that step (or of the run) after it.
BACKFILL_CANDIDATES = (
    "SELECT e.run_id, e.seq, e.payload FROM entries e JOIN runs r ON r.run_id = e.run_id "
    "WHERE r.status NOT IN ('succeeded', 'failed', 'cancelled') AND e.kind = 'event' AND "
    "e.type IN ('step_waiting', 'step_succeeded', 'step_failed', 'step_skipped', "
    "'run_finished', 'run_cancelled') ORDER BY e.seq")


@dataclass(frozen=True)
class OpenWait:
    """A step waiting for an answer: the entry that opened the wait, and its deadline (epoch
    seconds; None: it waits until answered)."""

    run_id: str
    step_id: str
    seq: int
    expires_at: float | None


def deadline(value: Any) -> float | None:
    """An event's `expires_at` (ISO 8601) in epoch seconds; None when absent or unreadable (the
    wait then only ends by an answer, as the runner would find)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


@dataclass(frozen=True)
class WaitChange:
    """What an appended event does to the open waits: opens one (`step` and `expires_at`),
    closes one (`step`) or closes all of the run's (`step` None)."""

    opens: bool
    step: str | None
    expires_at: float | None = None

    def statements(self, run_id: str, seq: int) -> list[tuple[str, tuple[Any, ...]]]:
        if self.opens:
            return [(OPEN_ONE, (run_id, self.step, seq, self.expires_at))]
        if self.step is None:
            return [(CLOSE_RUN, (run_id,))]
        return [(CLOSE_ONE, (run_id, self.step))]


def wait_change(kind: EventType, event: Any) -> WaitChange | None:
    """The change an event makes (None: most events make none)."""
    if kind == EventType.STEP_WAITING and isinstance(event.get("step"), str):
        return WaitChange(True, event["step"], deadline(event.get("expires_at")))
    if kind in _STEP_ENDS and isinstance(event.get("step"), str):
        return WaitChange(False, event["step"])
    if kind in _RUN_ENDS:
        return WaitChange(False, None)
    return None


def still_open(rows: Iterable[Any]) -> list[OpenWait]:
    """The open waits from BACKFILL_CANDIDATES' rows (run_id, seq, payload), replayed."""
    import json

    open_now: dict[tuple[str, str], OpenWait] = {}
    for row in rows:
        run_id, seq, payload = row["run_id"], row["seq"], row["payload"]
        try:
            event = json.loads(payload)
            change = wait_change(EventType(event.get("type")), event)
        except (ValueError, TypeError, AttributeError):
            continue
        if change is None:
            continue
        if change.opens and change.step is not None:
            open_now[(run_id, change.step)] = OpenWait(run_id, change.step, seq,
                                                       change.expires_at)
        elif change.step is not None:
            open_now.pop((run_id, change.step), None)
        else:
            for key in [k for k in open_now if k[0] == run_id]:
                del open_now[key]
    return list(open_now.values())


def open_wait_of(row: Any) -> OpenWait:
    expires = row["expires_at"]
    return OpenWait(row["run_id"], row["step_id"], int(row["seq"]),
                    None if expires is None else float(expires))


def due_args(now: float, after: OpenWait | None, limit: int) -> tuple[Any, ...]:
    """DUE's arguments: deadlines up to `now`, after `after` (the last of the previous page)."""
    if after is None or after.expires_at is None:
        return (now, float("-inf"), float("-inf"), "", "", "", int(limit))
    at = after.expires_at
    return (now, at, at, after.run_id, after.run_id, after.step_id, int(limit))


def answered(rows: Iterable[Any], after_seq: int) -> tuple[list[OpenWait], int]:
    """From ANSWERS' rows: the open waits of waiting runs with an accepted answer given after
    the wait opened, and the last approval seq looked at."""
    found: dict[tuple[str, str], OpenWait] = {}
    last = after_seq
    for row in rows:
        last = max(last, int(row["answer_seq"]))
        if (row["run_id"] is not None and bool(row["accepted"]) and row["status"] == WAITING
                and int(row["answer_seq"]) > int(row["seq"])):
            wait = open_wait_of(row)
            found[(wait.run_id, wait.step_id)] = wait
    return list(found.values()), last
