"""The service keeps the fingerprint index fresh on the policy's interval (issue 15)."""

from __future__ import annotations

import hashlib
import sqlite3
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import save as safetensors_bytes

from crownguard.engine.config import Config, Connections
from crownguard.engine.errors import TriageInputError
from crownguard.engine.plugins import PluginHost
from crownguard.engine.service.metrics import ServiceMetrics
from crownguard.engine.service.refresher import Refresher, registries_for
from crownguard.engine.service.service import _refresh_plan
from crownguard.engine.triage import load_policy
from crownguard.plugins.mlflow.mock import MlflowMock

WEIGHTS = safetensors_bytes({f"layer.{i}.weight": np.zeros((4, i + 1), np.float32)
                             for i in range(8)})


def policy(tmp_path: Path, refresh: str) -> Any:
    path = tmp_path / "policy.yaml"
    path.write_text(f"routing:\n{refresh}")
    return load_policy(str(path))


def test_the_refresher_indexes_new_versions_on_its_interval(mock_server: Any,
                                                            tmp_path: Path) -> None:
    mlflow = mock_server(MlflowMock)
    mlflow.add_version("fraud-model", {"model.safetensors": WEIGHTS},
                       tags={"sensitivity": "restricted"})
    host = PluginHost.from_entry_points()
    config = Config(connections=Connections({"mlflow": mlflow.connection_settings()}))
    plan = _refresh_plan(policy(tmp_path, "  fingerprints: fp.sqlite\n"
                                "  fingerprints_refresh: {interval: 0.2}\n"), host, config)
    assert plan is not None and plan[3] == ["mlflow"] and plan[4] == pytest.approx(0.2)
    metrics = ServiceMetrics(lambda: {})
    refresher = Refresher(*plan, metrics)
    refresher.start()
    try:
        new = WEIGHTS + b" "
        mlflow.add_version("fraud-model", {"model.safetensors": new},
                           tags={"sensitivity": "restricted"})
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            time.sleep(0.1)
            try:  # read-only look: the refresher may be creating or writing the file
                with sqlite3.connect(f"file:{tmp_path / 'fp.sqlite'}?mode=ro", uri=True) as db:
                    if db.execute("SELECT 1 FROM artifacts WHERE sha256 = ?",
                                  (hashlib.sha256(new).hexdigest(),)).fetchone():
                        break
            except sqlite3.Error:
                continue
        else:
            pytest.fail("the second version was never indexed")
    finally:
        refresher.stop()
    assert b'crownguard_fingerprint_refreshes_total{registry="mlflow",result="ok"}' \
        in metrics.render()


def test_a_refresh_without_an_index_or_with_an_unknown_registry_refuses_to_start(
        tmp_path: Path) -> None:
    host = PluginHost.from_entry_points()
    with pytest.raises(TriageInputError, match="needs routing.fingerprints"):
        _refresh_plan(policy(tmp_path, "  fingerprints_refresh: {interval: 1h}\n"), host,
                      Config())
    with pytest.raises(TriageInputError, match="slack is not a model registry plugin here"):
        registries_for(host, Config(), ["slack"])


def test_a_failing_registry_is_counted_and_never_raises(tmp_path: Path) -> None:
    host = PluginHost.from_entry_points()
    config = Config(connections=Connections(
        {"mlflow": {"base_url": "http://127.0.0.1:9", "token": "t" * 20}}))
    metrics = ServiceMetrics(lambda: {})
    Refresher(tmp_path / "fp.sqlite", host, config, ["mlflow"], 60, metrics).refresh_once()
    assert b'registry="mlflow",result="failed"' in metrics.render()
