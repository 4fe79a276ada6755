"""The fingerprint index of registered models: SQLite, incremental refresh, exact lookups."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from test_detection_files import safetensors_file

from crownguard.engine.triage.detection import Method, ModelFormat, detect
from crownguard.engine.triage.detection.fingerprints import FingerprintIndex, ModelVersionRef
from crownguard.engine.triage.events import FileInfo


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class FakeRegistry:
    """Stands in for the MLflow plugin's list_model_files action; counts its calls."""

    def __init__(self) -> None:
        self.files: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.calls: list[tuple[str, str]] = []
        self.failing: set[tuple[str, str]] = set()

    def add(self, model: str, version: str, *names: str) -> None:
        self.files[(model, version)] = [
            {"path": f"artifacts/{n}", "size": 100 + i, "sha256": sha(f"{model}/{version}/{n}")}
            for i, n in enumerate(names)]

    def __call__(self, ref: ModelVersionRef) -> Mapping[str, Any]:
        key = (ref.model, ref.version)
        self.calls.append(key)
        if key in self.failing:
            raise ConnectionError("registry unavailable")
        return {"name": ref.model, "version": ref.version, "files": self.files[key]}


@pytest.fixture
def registry() -> FakeRegistry:
    reg = FakeRegistry()
    reg.add("fraud-model", "6", "model.safetensors", "MLmodel")
    reg.add("fraud-model", "7", "model.safetensors", "MLmodel", "conda.yaml")
    reg.add("churn", "1", "model.pkl")
    return reg


def refs(stamp: str = "1", sensitivity: str = "restricted") -> list[ModelVersionRef]:
    return [ModelVersionRef("mlflow", "fraud-model", "6", sensitivity, stamp),
            ModelVersionRef("mlflow", "fraud-model", "7", sensitivity, stamp),
            ModelVersionRef("mlflow", "churn", "1", "internal", stamp)]


def test_a_hash_names_the_registered_model_version(registry: FakeRegistry) -> None:
    with FingerprintIndex() as index:
        report = index.refresh(refs(), registry)
        assert len(report.listed) == 3 and report.files == 6
        match = index.best_match(sha("fraud-model/7/model.safetensors"))
        assert match is not None
        assert (match.model, match.version, match.sensitivity) == ("fraud-model", "7",
                                                                  "restricted")
        assert match.path == "artifacts/model.safetensors"
        assert match.format == "safetensors"
        assert match.describe() == ("fraud-model v7 (mlflow, restricted): "
                                    "artifacts/model.safetensors")
        assert index.lookup(sha("nobody/1/x")) == []
        assert index.lookup(None) == []


def test_refresh_is_incremental(registry: FakeRegistry) -> None:
    with FingerprintIndex() as index:
        index.refresh(refs(), registry)
        registry.calls.clear()
        again = index.refresh(refs(), registry)
        assert registry.calls == [] and again.unchanged == 3 and not again.listed
        registry.add("fraud-model", "8", "model.safetensors")
        newer = [*refs(), ModelVersionRef("mlflow", "fraud-model", "8", "restricted", "1")]
        report = index.refresh(newer, registry)
        assert registry.calls == [("fraud-model", "8")]
        assert report.listed == ["fraud-model v8 (mlflow)"]


def test_a_changed_stamp_relists_and_replaces_the_files(registry: FakeRegistry) -> None:
    with FingerprintIndex() as index:
        index.refresh(refs(), registry)
        registry.add("churn", "1", "model-retrained.pkl")
        changed = [r if r.model != "churn" else ModelVersionRef("mlflow", "churn", "1",
                                                                "internal", "2")
                   for r in refs()]
        registry.calls.clear()
        index.refresh(changed, registry)
        assert registry.calls == [("churn", "1")]
        assert index.lookup(sha("churn/1/model.pkl")) == []
        assert index.best_match(sha("churn/1/model-retrained.pkl")) is not None


def test_a_new_sensitivity_tag_is_applied_without_listing(registry: FakeRegistry) -> None:
    with FingerprintIndex() as index:
        index.refresh(refs(sensitivity="internal"), registry)
        before = index.best_match(sha("fraud-model/7/model.safetensors"))  # answer kept
        assert before is not None and before.sensitivity == "internal"
        registry.calls.clear()
        report = index.refresh(refs(sensitivity="restricted"), registry)
        assert registry.calls == []
        assert "fraud-model v7 (mlflow)" in report.retagged
        match = index.best_match(sha("fraud-model/7/model.safetensors"))
        assert match is not None and match.sensitivity == "restricted"


def test_prune_drops_versions_deleted_in_the_registry(registry: FakeRegistry) -> None:
    with FingerprintIndex() as index:
        index.refresh(refs(), registry)
        assert index.lookup(sha("fraud-model/6/model.safetensors")) != []  # answer kept
        remaining = [r for r in refs() if r.version != "6"]
        report = index.refresh(remaining, registry, prune=True)
        assert report.removed == ["fraud-model v6 (mlflow)"]
        assert index.lookup(sha("fraud-model/6/model.safetensors")) == []
        assert index.stats() == {"versions": 2, "files": 4, "structures": 0}


def test_a_failing_listing_is_reported_and_leaves_the_rest(registry: FakeRegistry) -> None:
    with FingerprintIndex() as index:
        registry.failing.add(("churn", "1"))
        report = index.refresh(refs(), registry)
        assert report.errors == {"churn v1 (mlflow)": "ConnectionError: registry unavailable"}
        assert len(report.listed) == 2
        registry.failing.clear()
        retry = index.refresh(refs(), registry)
        assert retry.listed == ["churn v1 (mlflow)"]


def test_the_same_file_in_two_versions_matches_the_newest_first(registry: FakeRegistry) -> None:
    shared = sha("identical-weights")
    registry.files[("fraud-model", "6")].append({"path": "w.bin", "size": 1, "sha256": shared})
    registry.files[("fraud-model", "7")].append({"path": "w.bin", "size": 1, "sha256": shared})
    with FingerprintIndex() as index:
        index.refresh(refs(), registry)
        assert [m.version for m in index.lookup(shared.upper())] == ["7", "6"]


def test_entries_without_a_usable_hash_are_skipped() -> None:
    with FingerprintIndex() as index:
        stored = index.add_version(ModelVersionRef("mlflow", "m", "1"), [
            {"path": "model.onnx", "sha256": sha("ok")},
            {"path": "data/", "sha256": None},
            {"path": "big.bin", "sha256": "not-a-hash"}])
        assert stored == 1


def test_an_iterable_of_files_is_accepted_as_well_as_the_listing_object() -> None:
    with FingerprintIndex() as index:
        index.refresh([ModelVersionRef("hf", "acme/llm", "main")],
                      lambda ref: iter([{"path": "model.gguf", "sha256": sha("gguf")}]))
        match = index.best_match(sha("gguf"))
        assert match is not None and match.registry == "hf" and match.format == "gguf"


def test_the_index_persists_in_its_sqlite_file(tmp_path: Path, registry: FakeRegistry) -> None:
    path = tmp_path / "fingerprints.sqlite"
    with FingerprintIndex(path) as index:
        index.refresh(refs(), registry)
    with FingerprintIndex(path) as reopened:
        assert reopened.best_match(sha("fraud-model/7/model.safetensors")) is not None
        registry.calls.clear()
        reopened.refresh(refs(), registry)
        assert registry.calls == []


def test_lookups_from_many_threads(registry: FakeRegistry) -> None:
    with FingerprintIndex() as index:
        index.refresh(refs(), registry)
        target = sha("fraud-model/7/model.safetensors")
        results: list[str | None] = []

        def look() -> None:
            for _ in range(200):
                match = index.best_match(target)
                results.append(match.version if match else None)

        threads = [threading.Thread(target=look) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == ["7"] * 800


def test_model_version_ref_from_an_mlflow_model_version() -> None:
    ref = ModelVersionRef.from_listing(registry="mlflow", model_version={
        "name": "fraud-model", "version": "7", "last_updated_timestamp": 1767225600000,
        "tags": [{"key": "sensitivity", "value": "restricted"}, {"key": "team", "value": "risk"}]})
    assert ref == ModelVersionRef("mlflow", "fraud-model", "7", "restricted", "1767225600000")


def test_detect_with_the_index_is_certain_and_names_the_model(tmp_path: Path) -> None:
    path = safetensors_file(tmp_path / "fraud.safetensors")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    with FingerprintIndex() as index:
        index.add_version(ModelVersionRef("mlflow", "fraud-model", "7", "restricted"),
                          {"files": [{"path": "model/model.safetensors", "sha256": digest}]})
        renamed = FileInfo(name="holiday.jpg", sha256=digest, size=path.stat().st_size)
        by_hash = detect(renamed, index=index)
        assert by_hash.method == Method.FINGERPRINT and by_hash.confidence == 1.0
        assert by_hash.is_model and by_hash.disguised
        assert by_hash.match is not None and by_hash.match.version == "7"
        assert by_hash.format == ModelFormat.SAFETENSORS
        assert "fraud-model v7" in by_hash.evidence[0]
        with_bytes = detect(renamed, index=index, content=path)
        assert with_bytes.method == Method.FINGERPRINT
        assert any("safetensors header" in e for e in with_bytes.evidence)
        unknown = detect(FileInfo(name="other.safetensors", sha256=sha("x")), index=index)
        assert unknown.method == Method.METADATA and unknown.match is None


def test_a_refresh_by_another_process_is_seen(tmp_path: Path, registry: FakeRegistry,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from crownguard.engine.triage.detection import fingerprints

    monkeypatch.setattr(fingerprints, "_RECHECK_SECONDS", 0.0)
    path = tmp_path / "shared.sqlite"
    reader = FingerprintIndex(path)
    target = sha("fraud-model/7/model.safetensors")
    assert reader.best_match(target) is None
    with FingerprintIndex(path) as writer:
        writer.refresh(refs(sensitivity="internal"), registry)
    match = reader.best_match(target)
    assert match is not None and match.version == "7" and match.sensitivity == "internal"
    with FingerprintIndex(path) as writer:  # another process retags: the kept answer goes
        writer.refresh(refs(sensitivity="restricted"), registry)
    match = reader.best_match(target)
    assert match is not None and match.sensitivity == "restricted"
    reader.close()
