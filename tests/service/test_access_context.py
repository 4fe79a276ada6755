"""The service's triage reads the access requests of its own journal: a grant recorded there
(by the service's routes, or `crownguard access` on the same file) is context for the next
export of that model by that person."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from crownguard.engine.journal import SQLiteJournal
from crownguard.engine.plugins import PluginHost
from crownguard.engine.service.access_ledger import StoreAccess
from crownguard.engine.service.access_store import AccessStore, Change, NewRequest, format_time
from crownguard.engine.service.service import Options, Service
from crownguard.engine.triage import FingerprintIndex, ModelVersionRef, event_from_dict

SHA = "cd" * 32


def _export(when: datetime) -> Any:
    return event_from_dict({
        "schema": "crownguard/model-movement-event/v1", "id": f"x-{when.timestamp()}",
        "time": format_time(when), "actor": {"email": "ana@corp.example"},
        "file": {"name": "w.safetensors", "size": 1 << 20, "sha256": SHA},
        "destination": {"kind": "removable_media", "trusted": False}})


def test_the_service_triage_sees_a_grant_recorded_in_its_journal(
        service_files: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in service_files["env"].items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "j.sqlite"
    service = Service.start(PluginHost.from_entry_points(),
                            Options(str(service_files["config"]), str(service_files["policy"]),
                                    str(path)))
    try:
        assert isinstance(service.triage.access, StoreAccess)
        index = FingerprintIndex()
        index.add_version(ModelVersionRef("mlflow", "secret", "2", "restricted"),
                          {"files": [{"path": "w.safetensors", "sha256": SHA}]})
        service.triage.index = index
        now = datetime.now(UTC)
        before = service.triage.triage_event(_export(now - timedelta(minutes=5))).risk
        assert "access_granted" not in before.indicators
        # Another process (the CLI) records a grant in the same file, after the service started.
        other = SQLiteJournal(path)
        store = AccessStore(other)
        rid = store.create(NewRequest("ana@corp.example", "secret", "read",
                                      "evaluate the model for the Q4 release", 3600)).id
        store.change(rid, Change.APPROVED, "policy", decided_by="policy")
        store.change(rid, Change.GRANTED, "crownguard", granted_at=format_time(now),
                     expires_at=format_time(now + timedelta(hours=1)))
        store.close()
        other.close()
        after = service.triage.triage_event(_export(now + timedelta(minutes=5))).risk
        [reason] = [r for r in after.reasons if r.indicator == "access_granted"]
        assert rid in reason.detail and reason.weight == -20
    finally:
        service.close()
