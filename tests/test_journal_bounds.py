"""What is journaled of an output is bounded (issue 12, item 6): a large output is kept by
digest and size, the run itself still sees all of it, and an action may declare that it needs
its full output journaled."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from crownguard.engine import ActionContext, action, hookimpl
from crownguard.engine.journal import SQLiteJournal
from crownguard.engine.runner import Runner
from crownguard.engine.spec import parse_playbook
from crownguard.engine.steps import JOURNAL_VALUE_BYTES, bounded

BIG = 2_000_000  # characters: ~8x the journal's bound


@action("blob.fetch")
def fetch(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """A large answer."""
    return {"data": "x" * BIG}


@action("blob.fetch_all", keep_output=True)
def fetch_all(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """A large answer that must be journaled whole."""
    return {"data": "y" * (JOURNAL_VALUE_BYTES + 10)}


@action("blob.measure")
def measure(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """The size of what it got."""
    return {"length": len(inputs["data"])}


class Blobs:
    @hookimpl
    def crownguard_register_actions(self, register: Any) -> None:
        for item in (fetch, fetch_all, measure):
            register(item)


PLAYBOOK = """
name: big-outputs
steps:
  - id: fetch
    action: blob.fetch
  - id: measure
    action: blob.measure
    needs: [fetch]
    with: {data: "${{ steps.fetch.output.data }}"}
  - id: fetch_all
    action: blob.fetch_all
  - id: each
    action: blob.fetch
    for_each: [1, 2]
"""


@pytest.fixture
def journal(tmp_path: Path) -> Any:
    j = SQLiteJournal(tmp_path / "journal.sqlite")
    yield j
    j.close()


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def test_large_outputs_are_journaled_by_digest_and_the_run_sees_them_whole(
        journal: SQLiteJournal, isolated_host: Any) -> None:
    host = isolated_host(Blobs(), name="blob")
    playbook = parse_playbook(PLAYBOOK, host.actions)
    record = Runner(host, journal=journal).run(playbook, {}, run_id="r1")
    assert record["status"] == "succeeded", record
    assert record["steps"]["measure"]["output"] == {"length": BIG}  # downstream saw it all
    assert len(record["steps"]["fetch"]["output"]["data"]) == BIG  # and so does the record

    events = journal.events("r1")
    done = {e["step"]: e for e in events if e["type"] == "step_succeeded"}
    full = canonical({"data": "x" * BIG})
    kept = done["fetch"]["output"]
    assert kept == {"truncated": True, "sha256": hashlib.sha256(full).hexdigest(),
                    "size": len(full), "preview": full[:1024].decode()}
    started = next(e for e in events if e["type"] == "step_started" and e["step"] == "measure")
    assert started["inputs"]["data"]["truncated"] is True  # a large input, likewise
    assert len(done["fetch_all"]["output"]["data"]) == JOURNAL_VALUE_BYTES + 10  # keep_output
    items = [e for e in events if e["type"] == "item_succeeded"]
    assert len(items) == 2 and all(e["output"]["truncated"] for e in items)
    assert done["each"]["output"]["truncated"] is True
    largest = max(len(json.dumps(e)) for e in events)
    assert largest < JOURNAL_VALUE_BYTES + 4096, largest
    stored = sum(p.stat().st_size for p in journal.path.parent.glob(journal.path.name + "*"))
    assert stored < BIG, stored  # four outputs of 2 MB were not stored (database and WAL)


def test_small_values_are_kept_as_they_are() -> None:
    value = {"device_id": "abc", "changed": True, "list": list(range(100))}
    assert bounded(value) is value
    assert bounded("x" * 10, limit=5)["size"] == len(canonical("x" * 10))


def test_an_action_with_an_undo_keeps_its_output_for_the_undo() -> None:
    undoable = action("blob.change", undo="blob.revert")(measure.func)
    assert undoable.keeps_output and fetch_all.keeps_output and not fetch.keeps_output
