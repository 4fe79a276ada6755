"""The audit page's data: chain entries after a sequence number, filtered by run, kind and
type, and, when asked for, what `audit verify` finds."""

from __future__ import annotations

from typing import Any

from ... import runs
from ...errors import CrownguardError
from ...journal import Journal
from .pages import ConsoleRefusal

PAGE = 100
SCAN = 20_000  # entries read at most for one page of a narrow filter
KINDS = ("run", "event", "approval", "status")


def audit_page(journal: Journal, run: str, kind: str, type_: str, since_seq: str,
               verify: bool) -> dict[str, Any]:
    try:
        after = int(since_seq or 0)
    except ValueError:
        raise ConsoleRefusal(400, "Bad filter", "since_seq must be a whole number") from None
    run_id = None
    if run:
        try:
            run_id = runs.find_run(journal, run).run_id
        except CrownguardError as exc:
            raise ConsoleRefusal(400, "Bad filter", str(exc)) from None
    if kind and kind not in KINDS:
        raise ConsoleRefusal(400, "Bad filter", f"kind must be one of {', '.join(KINDS)}")
    shown: list[dict[str, Any]] = []
    more, last = False, after
    for scanned, entry in enumerate(journal.entries(run_id=run_id, since_seq=after)):
        if len(shown) >= PAGE or scanned >= SCAN:
            more = True
            break
        last = entry.seq
        if (kind and entry.kind != kind) or (type_ and entry.type != type_):
            continue
        shown.append(entry.to_export())
    problems = None
    if verify:
        problems = [str(p) for p in journal.verify(max_problems=50)]
    return {"entries": shown, "next_seq": last if more else None, "run": run, "kind": kind,
            "type": type_, "since_seq": after, "kinds": KINDS, "verified": verify,
            "problems": problems, "head": journal.head()}
