"""What a dedupe store says of a key's latest claim (`triage.dedupe`, `postgres_dedupe`).

In the core so that the PostgreSQL store, beside the journal, and the triage wing's stores
answer with one type.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DedupeClaim:
    """The latest claim of a key: when (event time), by whom (a digest; None when the
    claimer named none) and the run it started, once noted."""

    at: float
    claimant: str | None
    run_id: str | None
