"""The audit page's data: chain entries after a sequence number, filtered by run, kind, type,
who (`payload.by`) and time, and, when asked for, what `audit verify` finds, each problem
with the entry where the chain breaks (a link to the entries around it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ... import runs
from ...errors import CrownguardError
from ...journal import Journal
from .pages import ConsoleRefusal
from .runlist import journal_time

PAGE = 100
SCAN = 20_000  # entries read at most for one page of a narrow filter
KINDS = ("run", "event", "approval", "status")
AROUND = 3  # entries shown before a break when following its link


@dataclass(frozen=True)
class AuditFilter:
    run: str = ""
    kind: str = ""
    type: str = ""
    by: str = ""
    since: str = ""
    until: str = ""

    def matches(self, entry: dict[str, Any], since: str | None, until: str | None) -> bool:
        payload = entry.get("payload") or {}
        who = payload.get("by") if isinstance(payload, dict) else None
        return ((not self.kind or entry["kind"] == self.kind)
                and (not self.type or entry["type"] == self.type)
                and (not self.by or str(who or "").lower() == self.by.strip().lower())
                and (since is None or str(entry.get("at") or "") >= since)
                and (until is None or str(entry.get("at") or "") < until))


def audit_page(journal: Journal, filters: AuditFilter, since_seq: str, verify: bool
               ) -> dict[str, Any]:
    try:
        after = int(since_seq or 0)
    except ValueError:
        raise ConsoleRefusal(400, "Bad filter", "since_seq must be a whole number") from None
    run_id = None
    if filters.run:
        try:
            run_id = runs.find_run(journal, filters.run).run_id
        except CrownguardError as exc:
            raise ConsoleRefusal(400, "Bad filter", str(exc)) from None
    if filters.kind and filters.kind not in KINDS:
        raise ConsoleRefusal(400, "Bad filter", f"kind must be one of {', '.join(KINDS)}")
    since, until = journal_time(filters.since, "from"), journal_time(filters.until, "until")
    shown: list[dict[str, Any]] = []
    more, last = False, after
    for scanned, entry in enumerate(journal.entries(run_id=run_id, since_seq=after)):
        if len(shown) >= PAGE or scanned >= SCAN:
            more = True
            break
        last = entry.seq
        exported = entry.to_export()
        if filters.matches(exported, since, until):
            shown.append(exported)
    problems = None
    if verify:
        problems = [{"text": str(p), "seq": p.seq, "last_seq": p.last_seq,
                     "kind": str(p.kind), "run_id": p.run_id, "type": p.type,
                     "from_seq": max((p.seq or 1) - AROUND - 1, 0)}
                    for p in journal.verify(max_problems=50)]
    broken = {p["seq"] for p in problems or () if p["seq"] is not None}
    return {"entries": shown, "next_seq": last if more else None, "since_seq": after,
            "kinds": KINDS, "verified": verify, "problems": problems, "broken": broken,
            "head": journal.head(), "filters": filters,
            "filtered": any(vars(filters).values())}
