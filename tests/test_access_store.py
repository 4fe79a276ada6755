"""Access requests: the table, the state machine, and the journal entries beside them, on
both journals (a SQLite file, a PostgreSQL schema: tests/journal_kinds.py)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from journal_kinds import KINDS, location_for, open_kind

from crownguard.engine.journal import Journal, open_journal
from crownguard.engine.service.access_store import (
    AccessState,
    AccessStore,
    Change,
    NewRequest,
    TransitionRefused,
    UnknownRequest,
    format_time,
)


@pytest.fixture(params=KINDS)
def journal(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Journal]:
    opened = open_kind(request.param, request, tmp_path)
    yield opened
    opened.close()


@pytest.fixture
def store(journal: Journal) -> AccessStore:
    return AccessStore(journal)


def ask(store: AccessStore, who: str = "alice@corp.example") -> str:
    return store.create(NewRequest(who, "fraud-model", "read", "retrain the fraud model on Q3",
                                   3600, version="4")).id


def test_a_request_is_pending_and_chained(store: AccessStore, journal: Journal) -> None:
    rid = ask(store)
    request = store.get(rid)
    assert (request.state, request.requester, request.version) == (
        AccessState.PENDING, "alice@corp.example", "4")
    [entry] = list(journal.entries(f"access:{rid}"))
    assert (entry.kind, entry.type, entry.payload["model"]) == (
        "access", "access_requested", "fraud-model")
    assert request.last_seq == entry.seq
    assert journal.verify() == []


def test_every_change_is_an_entry_and_the_chain_verifies(store: AccessStore,
                                                         journal: Journal) -> None:
    rid = ask(store)
    store.change(rid, Change.APPROVED, "bob", reason="owner approved", decided_by="bob")
    expires = format_time(datetime.now(UTC) + timedelta(hours=1))
    store.change(rid, Change.GRANTED, "crownguard", expires_at=expires,
                 grant_info={"pre_existing": None})
    done = store.change(rid, Change.REVOKED, "alice@corp.example", reason="done early")
    assert done.state == AccessState.REVOKED and done.grant == {"pre_existing": None}
    types = [e.type for e in journal.entries(f"access:{rid}")]
    assert types == ["access_requested", "access_approved", "access_granted", "access_revoked"]
    assert [h["payload"]["to"] for h in store.history(rid)[1:]] == [
        "approved", "granted", "revoked"]
    assert journal.verify() == []


def test_a_change_the_table_does_not_allow_is_refused_and_leaves_no_entry(
        store: AccessStore, journal: Journal) -> None:
    rid = ask(store)
    head = journal.head()
    with pytest.raises(TransitionRefused, match="is pending: it cannot be expired"):
        store.change(rid, Change.EXPIRED, "crownguard")
    assert journal.head() == head
    store.change(rid, Change.REVOKED, "alice@corp.example")
    with pytest.raises(TransitionRefused, match="is revoked"):
        store.change(rid, Change.APPROVED, "bob")


def test_a_stale_change_loses_the_compare_and_set_and_its_entry(
        store: AccessStore, journal: Journal) -> None:
    rid = ask(store)
    store.change(rid, Change.REVOKED, "alice@corp.example")
    head = journal.head()
    # A process that read the request while it was pending tries to approve it now.
    with pytest.raises(TransitionRefused, match="no longer pending"):
        store.change(rid, Change.APPROVED, "bob", expect=AccessState.PENDING)
    assert journal.head() == head and store.get(rid).state == AccessState.REVOKED


@pytest.mark.parametrize("kind", KINDS)
def test_two_processes_expiring_one_grant_record_it_once(
        kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    path = location_for(kind, request, tmp_path)
    first = AccessStore(open_journal(path))
    rid = ask(first)
    first.change(rid, Change.APPROVED, "policy")
    first.change(rid, Change.GRANTED, "crownguard", expires_at=format_time(datetime.now(UTC)))
    stores = [AccessStore(open_journal(path)) for _ in range(4)]
    won: list[bool] = []
    barrier = threading.Barrier(len(stores))

    def expire(store: AccessStore) -> None:
        barrier.wait()
        try:
            store.change(rid, Change.EXPIRED, "crownguard", expect=AccessState.GRANTED)
            won.append(True)
        except TransitionRefused:
            won.append(False)

    threads = [threading.Thread(target=expire, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(won) == [False, False, False, True]
    types = [e.type for e in first.journal.entries(f"access:{rid}")]
    assert types.count("access_expired") == 1
    for store in [first, *stores]:
        store.close()
        store.journal.close()


def test_due_lists_only_granted_requests_past_their_deadline(store: AccessStore) -> None:
    past, later = ask(store), ask(store)
    for rid, when in ((past, datetime.now(UTC) - timedelta(seconds=1)),
                      (later, datetime.now(UTC) + timedelta(hours=1))):
        store.change(rid, Change.APPROVED, "policy")
        store.change(rid, Change.GRANTED, "crownguard", expires_at=format_time(when))
    assert [r.id for r in store.due()] == [past]
    assert store.next_deadline() is not None


def test_lookup_by_prefix_and_unknown_ids(store: AccessStore) -> None:
    rid = ask(store)
    assert store.get(rid[:8]).id == rid
    with pytest.raises(UnknownRequest, match="no access request 'nope'"):
        store.get("nope")
    assert [r.id for r in store.find(state="pending", requester="alice@corp.example")] == [rid]
    assert store.find(state="granted") == []


def test_the_store_refuses_columns_it_does_not_know(store: AccessStore) -> None:
    rid = ask(store)
    with pytest.raises(Exception, match="cannot set state"):
        store.change(rid, Change.APPROVED, "bob", state="granted")
