"""Scoring registered-model exports without and with the access-request join, side by side.

    python benchmarks/bench_access_context.py [--requests 1000] [--events 2000] [--rounds 5]

A journal with `--requests` access requests (200 people, 50 models, half granted, half
denied) is made in a temporary folder; the same exports (each a fingerprint match to one of
the models) are scored with `access=None` and with the service's `StoreAccess` over the
journal, alternately, each round. Only exports whose file is a registered model reach the
join; every other event costs one `is None` test.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from crownguard.engine.journal import SQLiteJournal
from crownguard.engine.service.access_ledger import StoreAccess
from crownguard.engine.service.access_store import AccessStore, Change, NewRequest, format_time
from crownguard.engine.triage.detection import Detection, Method, ModelFormat
from crownguard.engine.triage.detection.formats import ModelMatch
from crownguard.engine.triage.events import (
    Actor,
    Destination,
    DestinationKind,
    FileInfo,
    ModelMovementEvent,
    Source,
    SourceKind,
)
from crownguard.engine.triage.risk import HistoryFacts, load_policy, score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rng = random.Random(1)
    policy = load_policy()
    now = datetime.now(UTC)
    models = [f"model-{i}" for i in range(50)]
    people = [f"p{i}@corp.example" for i in range(200)]
    with tempfile.TemporaryDirectory() as folder:
        journal = SQLiteJournal(Path(folder) / "journal.db", synchronous="NORMAL")
        store = AccessStore(journal)
        for number in range(args.requests):
            rid = store.create(NewRequest(rng.choice(people), rng.choice(models), "read",
                                          "x" * 30, 3600)).id
            if number % 2:
                store.change(rid, Change.APPROVED, "policy")
                store.change(rid, Change.GRANTED, "crownguard",
                             granted_at=format_time(now - timedelta(hours=1)),
                             expires_at=format_time(now + timedelta(hours=7)))
            else:
                store.change(rid, Change.DENIED, "policy",
                             decided_at=format_time(now - timedelta(hours=2)))
        exports = []
        for number in range(args.events):
            event = ModelMovementEvent(
                id=str(number), time=now, actor=Actor(email=rng.choice(people)),
                file=FileInfo(name="w.safetensors", size=1 << 30),
                destination=Destination(DestinationKind.REMOVABLE_MEDIA, "usb", False),
                source=Source(SourceKind.ENDPOINT))
            match = ModelMatch("mlflow", rng.choice(models), "1", "w", "restricted")
            exports.append((event, Detection.verdict(1.0, ModelFormat.SAFETENSORS,
                                                     Method.FINGERPRINT, ["fp"], match=match)))
        facts = HistoryFacts(prior_model_accesses=1)

        def rate(access: Any) -> float:
            began = time.perf_counter()
            for event, detection in exports:
                score(event, detection, policy, facts, access=access)
            return len(exports) / (time.perf_counter() - began)

        for number in range(args.rounds):
            access = StoreAccess(store)  # a fresh one each round: its first reads included
            print(f"round {number}: access=None {rate(None):,.0f} exports/s, "
                  f"StoreAccess {rate(access):,.0f} exports/s")
        store.close()
        journal.close()


if __name__ == "__main__":
    main()
