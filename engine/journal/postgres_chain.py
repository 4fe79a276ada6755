"""The PostgreSQL journal's chain extended by the server: one statement locks the chain head,
hashes a round's entries one after the other, inserts them and moves the head.

The head's row lock is what orders every writer's entries; taken by this statement, it is held
from the statement to the commit that follows it in the same pipeline, never while the client
thinks or the network carries a reply. The client renders each entry's hashed envelope
(`audit.entry_hash`) around the two values only the head can give, the previous hash and the
seq (a hex digest and an integer: their JSON is the text itself), and the server splices them
in. `crownguard audit verify` recomputes every hash in Python, so the two can never differ
unnoticed.
"""

from __future__ import annotations

from typing import Any

from ..kinds import EntryKind
from .audit import GENESIS, HASH_VERSION, canonical_json
from .sqlite_schema import NewEvent

APPEND = """
WITH RECURSIVE
head AS (SELECT seq, CASE WHEN seq = 0 THEN %(genesis)s ELSE hash END COLLATE "C" AS hash
         FROM chain_head WHERE id = 1 FOR UPDATE),
round AS (SELECT * FROM unnest(%(type)s::text[], %(at)s::text[], %(payload)s::text[],
                               %(opening)s::text[], %(middle)s::text[], %(closing)s::text[])
          WITH ORDINALITY AS e(type, at, payload, opening, middle, closing, n)),
link (n, seq, prev, hash) AS (
    SELECT 0::bigint, seq, NULL::text COLLATE "C", hash FROM head
    UNION ALL
    SELECT r.n, link.seq + 1, link.hash,
           encode(sha256(convert_to(r.opening || r.payload || ',"prev_hash":"' || link.hash
                                    || r.middle || (link.seq + 1)::text || r.closing, 'UTF8')),
                  'hex') COLLATE "C"
    FROM link JOIN round r ON r.n = link.n + 1),
added AS (INSERT INTO entries (seq, prev_hash, hash, kind, run_id, type, at, payload, v)
          SELECT link.seq, link.prev, link.hash, %(kind)s, %(run_id)s, r.type, r.at, r.payload,
                 %(v)s
          FROM link JOIN round r ON r.n = link.n)
UPDATE chain_head SET seq = last.seq, hash = last.hash
FROM (SELECT seq, hash FROM link ORDER BY n DESC LIMIT 1) AS last WHERE id = 1
RETURNING chain_head.seq
"""


def append_args(checked: list[NewEvent]) -> dict[str, Any]:
    """APPEND's parameters for one round's events (all of one run): each entry's envelope as
    `entry_hash` writes it, cut where the payload, prev_hash and seq go."""
    kind, run_id = str(EntryKind.EVENT), checked[0].run_id
    middle = f'","run_id":{canonical_json(run_id)},"seq":'
    return {
        "genesis": GENESIS, "kind": kind, "run_id": run_id, "v": HASH_VERSION,
        "type": [str(e.kind) for e in checked], "at": [e.at for e in checked],
        "payload": [e.payload for e in checked],
        "opening": [f'{{"at":{canonical_json(e.at)},"kind":{canonical_json(kind)},"payload":'
                    for e in checked],
        "middle": [middle] * len(checked),
        "closing": [f',"type":{canonical_json(str(e.kind))},"v":{HASH_VERSION}}}'
                    for e in checked],
    }
