"""`crownguard undo` of the model-access-request run that granted a request, against a real
`mlflow server` whose default permission is NO_PERMISSIONS: the user's own download answers
403 again, the request is revoked, and a second undo changes nothing. Skips without MLflow."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from test_mlflow_access_server import (  # noqa: F401  (the server fixtures)
    WHY,
    alice_downloads,
    locked,
    model,
    patch,
    pytestmark,
)
from test_mlflow_server import ADMIN, ALICE, Server

from crownguard.engine import run_undo
from crownguard.engine.config import load_config
from crownguard.engine.errors import UndoError
from crownguard.engine.journal import SQLiteJournal
from crownguard.engine.plugins import PluginHost
from crownguard.engine.service.access import AccessDesk, ActionRegistry
from crownguard.engine.service.access_playbook import AccessPlaybook
from crownguard.engine.service.access_store import AccessState, AccessStore
from crownguard.engine.service.access_undo import AccessUndo
from crownguard.engine.triage.policy import policy_from_mapping

POLICY = {"weights": {"off_hours": 0},
          "access": {"models": {"tag": "sensitivity"}, "auto_grant_below": 25}}


def test_undo_of_the_granting_run_closes_the_model_on_the_real_server(
        locked: Server, patch: pytest.MonkeyPatch, tmp_path: Path) -> None:  # noqa: F811
    patch.setenv("CG_TEST_MLFLOW_ADMIN_PASSWORD", ADMIN[1])
    path = tmp_path / "connections.yaml"
    path.write_text(yaml.safe_dump({"connections": {"mlflow": {
        "base_url": locked.url, "username": ADMIN[0],
        "password": "${env:CG_TEST_MLFLOW_ADMIN_PASSWORD}"}}}))
    host = PluginHost.from_entry_points()
    config = load_config(path, host.connection_types)
    journal = SQLiteJournal(tmp_path / "j.sqlite")
    desk = AccessDesk(AccessStore(journal), policy_from_mapping(POLICY),
                      ActionRegistry(host, config), AccessPlaybook(host, config, journal))
    version = model(locked, patch, "jit-undo", tmp_path)
    request = desk.request(ALICE[0], "jit-undo", WHY, duration_seconds=600)
    assert request.state == AccessState.GRANTED, request.decision
    assert alice_downloads(locked, "jit-undo", version) == 200

    run_id = str((request.decision or {})["run_id"])
    linked = [AccessUndo(journal, host, str(path))]
    plan = run_undo.prepare_undo(journal, host, run_id, config_path=str(path))
    result = run_undo.undo(journal, host, plan, by="ops@corp.example", linked=linked)
    assert [c.undone for c in result.linked] == [True]
    assert alice_downloads(locked, "jit-undo", version) == 403
    assert desk.store.get(request.id).state == AccessState.REVOKED
    with pytest.raises(UndoError, match="revoked already"):
        run_undo.undo(journal, host, run_undo.prepare_undo(journal, host, run_id,
                                                   config_path=str(path)),
                  by="ops@corp.example", linked=linked)
    assert alice_downloads(locked, "jit-undo", version) == 403
