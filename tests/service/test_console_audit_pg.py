"""The audit page's chain check on a PostgreSQL journal (engine/journal/postgres_verify.py):
an entry edited in the database is shown as the place where the chain breaks."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from servicetest import new_event
from test_console import okta, service

from crownguard.engine.journal import open_journal
from crownguard.engine.runner import Runner
from crownguard.engine.service.console.audit import AuditFilter, audit_page
from crownguard.engine.service.console.pages import environment
from crownguard.engine.service.service import Service
from crownguard.engine.service.settings import Role

__all__ = ["okta", "service"]  # test_console's fixtures, used here


@pytest.mark.parametrize("service", ["postgres"], indirect=True)  # the service's own: PG too
def test_the_audit_page_shows_where_a_postgresql_chain_breaks(
        service: Service, okta: Any, postgres_dsn: str) -> None:
    journal = open_journal(postgres_dsn)
    try:
        event = new_event()
        okta.add_user(event["actor"]["email"])
        Runner(service.host, service.config, journal=journal).run(
            service.triage.router.playbooks["contain-after-approval"], event,
            risk={"score": 1})
        intact = audit_page(journal, AuditFilter(), "0", True)
        assert intact["problems"] == []
        with psycopg.connect(postgres_dsn, autocommit=True) as db:
            db.execute("UPDATE entries SET payload = replace(payload, 'suspend?', "
                       "'nothing?') WHERE type = 'step_waiting'")
            found = db.execute("SELECT seq FROM entries WHERE type = 'step_waiting'"
                               ).fetchone()
        assert found is not None
        seq = found[0]
        data = audit_page(journal, AuditFilter(), "0", True)
        assert data["problems"] and data["problems"][0]["seq"] == seq
        page = environment().get_template("audit.html").render(
            session=None, notices=[], path="/ui/audit", Role=Role, **data)
        assert f"it first breaks at entry {seq}" in page
        assert f'<tr id="entry-{seq}" class="broken">' in page
    finally:
        journal.close()
