"""The journal's access requests as triage reads them: an `AccessSource` over the AccessStore.

Triage joins a model export to the person's access requests for that model
(`triage.risk.access_facts`); it cannot import the service wing, so this adapter hands it the
store's rows as `AccessFact`s. It only reads (`AccessStore.find`). `crownguard serve` gives
its triage one over its own journal; `crownguard triage` and `respond` open one over the
journal file when it keeps access requests.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ..errors import JournalError
from ..journal import Journal, SQLiteJournal
from ..triage.risk.access_facts import AccessFact, RequestState
from .access_store import AccessRequest, AccessStore, parse_time

# Requests of one model read per export: a person's are among its newest by far.
LOOKBACK = 1000


def fact_of(request: AccessRequest) -> AccessFact:
    return AccessFact(
        request_id=request.id, model=request.model, state=RequestState(str(request.state)),
        justification=request.justification, created_at=parse_time(request.created_at),
        version=request.version,
        granted_at=None if request.granted_at is None else parse_time(request.granted_at),
        expires_at=None if request.expires_at is None else parse_time(request.expires_at),
        ended_at=None if request.revoked_at is None else parse_time(request.revoked_at),
        decided_at=None if request.decided_at is None else parse_time(request.decided_at))


class StoreAccess:
    """A person's requests for a model, from the access store (newest first).

    A model's requests are read once and kept, by requester, until the journal's head moves:
    every change of a request is a journal entry, so a request made or changed since (by
    this process or another one) is seen at the next export. Over a feed with nothing
    written meanwhile (`crownguard triage`), a model's requests are read once."""

    MODELS_KEPT = 512

    def __init__(self, store: AccessStore, *, journal: Journal | None = None):
        self.store = store
        self._journal = journal  # closed with it when this adapter opened it
        self._read: dict[str, tuple[int, dict[str, list[AccessFact]]]] = {}

    def requests_for(self, person: str, model: str) -> list[AccessFact]:
        head = self.store.journal.head()[0]  # read before the rows: never newer than them
        kept = self._read.get(model)
        if kept is None or kept[0] != head:
            if len(self._read) >= self.MODELS_KEPT:
                self._read.clear()
            by_person: dict[str, list[AccessFact]] = {}
            for request in self.store.find(model=model, limit=LOOKBACK):
                by_person.setdefault(request.requester.lower(), []).append(fact_of(request))
            kept = self._read[model] = (head, by_person)
        return kept[1].get(person.lower(), [])

    def close(self) -> None:
        self.store.close()
        if self._journal is not None:
            self._journal.close()


def access_of(journal: Journal) -> StoreAccess | None:
    """The access requests of an open journal (the service's); None for a journal that keeps
    none (PostgreSQL, in this version)."""
    if not isinstance(journal, SQLiteJournal):
        return None
    return StoreAccess(AccessStore(journal))


def open_access(target: str | Path | None) -> StoreAccess | None:
    """The access requests in the journal file at `target`, read only; None when there is no
    such file, it keeps no access requests yet, or it is a PostgreSQL journal."""
    if target is None or isinstance(target, str) or not target.is_file():
        return None
    try:
        with sqlite3.connect(f"{target.resolve().as_uri()}?mode=ro", uri=True) as probe:
            found = probe.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND "
                                  "name = 'access_requests'").fetchone()
        probe.close()
    except sqlite3.Error as exc:
        raise JournalError(f"cannot read the access requests in {target}: {exc}") from None
    if found is None:
        return None
    journal = SQLiteJournal(target, read_only=True)
    try:
        return StoreAccess(AccessStore(journal), journal=journal)
    except BaseException:
        journal.close()
        raise
