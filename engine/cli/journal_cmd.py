"""`crownguard journal migrate`: bring a journal's schema up to date, and nothing else.

Every crownguard process that opens a PostgreSQL journal for writing migrates it first (under
an advisory lock, so many starting together migrate once); this runs the migrations alone,
for a deployment step before the processes start, or with a database role that may create
tables when theirs may not. A SQLite file is migrated the same way when it is opened.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..journal import journal_target, open_journal
from ..journal.postgres_schema import PG_SCHEMA_VERSION
from .runs import add_journal_option


def cmd_migrate(args: argparse.Namespace) -> int:
    target = journal_target(args.journal or None)
    with open_journal(target) as journal:
        name = getattr(journal, "name", None) or str(target)
        applied = list(getattr(journal, "applied", []))
    if args.json:
        print(json.dumps({"journal": name, "applied": applied,
                          "schema": PG_SCHEMA_VERSION if isinstance(target, str) else None}))
    elif applied:
        print(f"journal {name}: applied migration{'s' if len(applied) > 1 else ''} "
              f"{', '.join(map(str, applied))}")
    else:
        print(f"journal {name}: schema is current")
    return 0


def add_commands(sub: Any) -> None:
    p = sub.add_parser("journal", help="manage the run journal (schema migrations)")
    journal = p.add_subparsers(dest="journal_command", required=True)
    m = journal.add_parser("migrate", help="apply the journal's schema migrations and exit")
    m.add_argument("--json", action="store_true", help="print what was applied as JSON")
    add_journal_option(m)
    m.set_defaults(func=cmd_migrate)
