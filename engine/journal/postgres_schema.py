"""The PostgreSQL journal's DSN handling and its versioned schema migrations.

A DSN (`postgresql://user:password@host:port/db?...`) carries a secret: `Target` keeps the
password apart and names the journal by user, host, port and database only, for messages.
Migrations are numbered; `migrate()` applies the missing ones in one transaction under a
transaction-level advisory lock, so processes starting together migrate once, and a database
written by a newer crownguard is refused rather than misread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import JournalError
from ..secrets import Redactor

if TYPE_CHECKING:
    import psycopg

DSN_SCHEMES = ("postgresql://", "postgres://")
# Every text column compares bytewise ("C"), as SQLite does: ids, ISO times and prefixes sort
# the same on every server whatever its locale.
_MIGRATIONS: dict[int, str] = {
    1: """
CREATE TABLE entries (
    seq BIGINT PRIMARY KEY, prev_hash TEXT COLLATE "C" NOT NULL, hash TEXT COLLATE "C" NOT NULL,
    kind TEXT COLLATE "C" NOT NULL, run_id TEXT COLLATE "C" NOT NULL,
    type TEXT COLLATE "C" NOT NULL, at TEXT COLLATE "C" NOT NULL,
    payload TEXT COLLATE "C" NOT NULL, v INTEGER NOT NULL);
CREATE INDEX entries_by_run ON entries (run_id, seq);
CREATE INDEX entries_by_hash ON entries (hash);
CREATE TABLE chain_head (
    id INTEGER PRIMARY KEY CHECK (id = 1), seq BIGINT NOT NULL, hash TEXT COLLATE "C" NOT NULL);
INSERT INTO chain_head (id, seq, hash) VALUES (1, 0, '{genesis}');
CREATE TABLE runs (
    run_id TEXT COLLATE "C" PRIMARY KEY, seq BIGINT NOT NULL, playbook TEXT COLLATE "C" NOT NULL,
    playbook_path TEXT COLLATE "C", playbook_text TEXT COLLATE "C" NOT NULL,
    playbook_sha256 TEXT COLLATE "C" NOT NULL, inputs TEXT COLLATE "C" NOT NULL,
    status TEXT COLLATE "C" NOT NULL, kind TEXT COLLATE "C" NOT NULL,
    parent_run_id TEXT COLLATE "C", config_path TEXT COLLATE "C",
    created_at TEXT COLLATE "C" NOT NULL, updated_at TEXT COLLATE "C" NOT NULL,
    owner_host TEXT COLLATE "C", owner_pid INTEGER, owner_boot_id TEXT COLLATE "C",
    owner_started TEXT COLLATE "C", lease_expires DOUBLE PRECISION);
CREATE INDEX runs_by_status ON runs (status, created_at);
CREATE INDEX runs_by_status_seq ON runs (status, seq);
CREATE INDEX runs_by_created ON runs (created_at);
CREATE INDEX runs_by_parent ON runs (parent_run_id);
CREATE TABLE approvals (
    seq BIGINT PRIMARY KEY, run_id TEXT COLLATE "C" NOT NULL, step_id TEXT COLLATE "C" NOT NULL,
    decision TEXT COLLATE "C" NOT NULL, by_name TEXT COLLATE "C" NOT NULL,
    comment TEXT COLLATE "C", at TEXT COLLATE "C" NOT NULL, accepted BOOLEAN NOT NULL,
    reason TEXT COLLATE "C");
CREATE INDEX approvals_by_run ON approvals (run_id, seq);
CREATE TABLE resume_failures (
    run_id TEXT COLLATE "C" PRIMARY KEY, kind TEXT COLLATE "C" NOT NULL,
    reason TEXT COLLATE "C" NOT NULL, count INTEGER NOT NULL,
    first_at TEXT COLLATE "C" NOT NULL, last_at TEXT COLLATE "C" NOT NULL);
CREATE TABLE dedupe_starts (
    key TEXT COLLATE "C" PRIMARY KEY, at DOUBLE PRECISION NOT NULL, run_id TEXT COLLATE "C");
""",
    # The open waits and their deadlines (see `waits`), filled from the chain: the latest
    # step_waiting of each step of a run not ended, with no end of that step or run after it.
    2: """
CREATE TABLE open_waits (
    run_id TEXT COLLATE "C" NOT NULL, step_id TEXT COLLATE "C" NOT NULL, seq BIGINT NOT NULL,
    expires_at DOUBLE PRECISION, PRIMARY KEY (run_id, step_id));
CREATE INDEX open_waits_by_deadline ON open_waits (expires_at);
INSERT INTO open_waits (run_id, step_id, seq, expires_at)
SELECT DISTINCT ON (e.run_id, e.payload::jsonb->>'step') e.run_id, e.payload::jsonb->>'step',
       e.seq, CASE WHEN coalesce(e.payload::jsonb->>'expires_at', '') = '' THEN NULL ELSE
       extract(epoch FROM (e.payload::jsonb->>'expires_at')::timestamptz) END
FROM entries e JOIN runs r ON r.run_id = e.run_id
WHERE r.status NOT IN ('succeeded', 'failed', 'cancelled') AND e.kind = 'event'
  AND e.type = 'step_waiting' AND e.payload::jsonb->>'step' IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM entries t WHERE t.run_id = e.run_id AND t.seq > e.seq
                  AND t.kind = 'event' AND (t.type IN ('run_finished', 'run_cancelled') OR
                  (t.type IN ('step_succeeded', 'step_failed', 'step_skipped')
                   AND t.payload::jsonb->>'step' = e.payload::jsonb->>'step')))
ORDER BY e.run_id, e.payload::jsonb->>'step', e.seq DESC;
""",
    # The service's tables (engine/service: intake, poll cursors, dead letters, interactions,
    # access requests) and the risk history (engine/triage/risk/store_pg.py).
    3: """
CREATE TABLE service_intake (
    id BIGSERIAL PRIMARY KEY, source TEXT COLLATE "C" NOT NULL,
    event_id TEXT COLLATE "C" NOT NULL, event TEXT NOT NULL, status TEXT COLLATE "C" NOT NULL,
    received_at TEXT COLLATE "C" NOT NULL, started_at TEXT COLLATE "C",
    finished_at TEXT COLLATE "C", owner TEXT COLLATE "C", owner_host TEXT COLLATE "C",
    lease_expires DOUBLE PRECISION, runs TEXT, error TEXT, UNIQUE (source, event_id));
CREATE INDEX service_intake_by_status ON service_intake (status, id);
CREATE TABLE service_poll_cursors (
    name TEXT COLLATE "C" PRIMARY KEY, cursor TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE service_dead_letters (
    id BIGSERIAL PRIMARY KEY, source TEXT COLLATE "C" NOT NULL, key TEXT COLLATE "C" NOT NULL,
    event_id TEXT COLLATE "C", reason TEXT NOT NULL, raw TEXT NOT NULL, at TEXT NOT NULL,
    UNIQUE (source, key));
CREATE TABLE service_interactions (
    id BIGSERIAL PRIMARY KEY, receiver TEXT COLLATE "C" NOT NULL, key TEXT COLLATE "C" NOT NULL,
    interaction TEXT NOT NULL, status TEXT COLLATE "C" NOT NULL, received_at TEXT NOT NULL,
    owner TEXT COLLATE "C", owner_host TEXT COLLATE "C", lease_expires DOUBLE PRECISION,
    finished_at TEXT, error TEXT, UNIQUE (receiver, key));
CREATE INDEX service_interactions_by_status ON service_interactions (status, id);
CREATE TABLE access_requests (
    id TEXT COLLATE "C" PRIMARY KEY, requester TEXT COLLATE "C" NOT NULL,
    model TEXT COLLATE "C" NOT NULL, version TEXT COLLATE "C", alias TEXT COLLATE "C",
    access TEXT COLLATE "C" NOT NULL, justification TEXT NOT NULL,
    duration_seconds INTEGER NOT NULL, state TEXT COLLATE "C" NOT NULL,
    created_at TEXT COLLATE "C" NOT NULL, updated_at TEXT COLLATE "C" NOT NULL, decision TEXT,
    approvals TEXT NOT NULL DEFAULT '[]', approvals_required INTEGER NOT NULL DEFAULT 1,
    decided_by TEXT, decided_at TEXT COLLATE "C", granted_at TEXT COLLATE "C",
    expires_at TEXT COLLATE "C", revoked_at TEXT COLLATE "C", revoked_by TEXT,
    grant_info TEXT, last_seq BIGINT NOT NULL);
CREATE INDEX access_requests_by_state ON access_requests (state, expires_at);
CREATE TABLE history_daily (
    person TEXT COLLATE "C" NOT NULL, day INTEGER NOT NULL, bytes BIGINT NOT NULL,
    PRIMARY KEY (person, day));
CREATE TABLE history_models (
    person TEXT COLLATE "C" NOT NULL, registry TEXT COLLATE "C" NOT NULL,
    model TEXT COLLATE "C" NOT NULL, count BIGINT NOT NULL, PRIMARY KEY (person, registry, model));
CREATE TABLE history_violations (
    id BIGSERIAL, person TEXT COLLATE "C" NOT NULL, incident TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (person, incident));
CREATE TABLE history_events (
    event TEXT COLLATE "C" PRIMARY KEY, day INTEGER NOT NULL, bytes BIGINT,
    registry TEXT COLLATE "C", model TEXT COLLATE "C");
CREATE INDEX history_events_day ON history_events (day);
""",
}
PG_SCHEMA_VERSION = max(_MIGRATIONS)
_VERSIONS = """
CREATE TABLE IF NOT EXISTS crownguard_schema (
    version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"""
# One advisory lock per schema (current_schema()): two journals in two schemas of one
# database migrate independently.
_LOCK = "SELECT pg_advisory_xact_lock(hashtext('crownguard journal migrate ' || current_schema()))"


def is_dsn(value: object) -> bool:
    """Whether `--journal` / $CROWNGUARD_JOURNAL names a PostgreSQL database, not a file."""
    return isinstance(value, str) and value.startswith(DSN_SCHEMES)


@dataclass(frozen=True)
class Target:
    """A PostgreSQL DSN: `dsn` to connect (secret), `name` to show, `redactor` for its
    password (live, so log records and every redacted text lose it too)."""

    dsn: str
    name: str
    redactor: Redactor

    @classmethod
    def parse(cls, dsn: str) -> Target:
        from psycopg.conninfo import conninfo_to_dict

        redactor = Redactor()
        try:
            parts = conninfo_to_dict(dsn)
        except Exception:  # any error: its message may quote the DSN, password and all
            scheme = dsn.split("://", 1)[0]
            raise JournalError(f"the journal {scheme}://... is not a valid PostgreSQL DSN "
                               "(postgresql://user@host:port/database)") from None
        password = parts.get("password")
        if password:
            redactor.add(str(password))
        host = parts.get("host") or "localhost"
        port = f":{parts['port']}" if parts.get("port") else ""
        user = f"{parts['user']}@" if parts.get("user") else ""
        name = f"postgresql://{user}{host}{port}/{parts.get('dbname') or ''}"
        return cls(dsn, redactor.redact(name), redactor)

    def message(self, exc: BaseException) -> str:
        """A database error's message with the password (in any encoding) masked."""
        text = str(exc).strip().splitlines()
        return self.redactor.redact(text[0] if text else type(exc).__name__)


def schema_version(conn: psycopg.Connection[Any]) -> int:
    """The schema version of the journal in the connection's schema (0: none yet)."""
    row = conn.execute("SELECT to_regclass('crownguard_schema') IS NOT NULL").fetchone()
    if not row or not _first(row):
        return 0
    found = conn.execute("SELECT max(version) FROM crownguard_schema").fetchone()
    return int(_first(found) or 0) if found else 0


def migrate(conn: psycopg.Connection[Any], where: str) -> list[int]:
    """Apply the missing migrations in one transaction under an advisory lock; the versions
    applied (empty: it was current)."""
    from .audit import GENESIS

    with conn.transaction():
        conn.execute(_LOCK)
        conn.execute(_VERSIONS)
        version = schema_version(conn)
        check_version(version, where)
        applied = []
        for number in sorted(n for n in _MIGRATIONS if n > version):
            for statement in _MIGRATIONS[number].replace("{genesis}", GENESIS).split(";"):
                if statement.strip():
                    conn.execute(statement.encode())
            conn.execute("INSERT INTO crownguard_schema (version) VALUES (%s)", (number,))
            applied.append(number)
        return applied


def check_version(version: int, where: str) -> None:
    if version > PG_SCHEMA_VERSION:
        raise JournalError(f"journal {where} has schema {version}, newer than this crownguard "
                           f"understands ({PG_SCHEMA_VERSION})")


def _first(row: Any) -> Any:
    return next(iter(row.values())) if isinstance(row, dict) else row[0]
