"""`crownguard fingerprints refresh|show|match` against the MLflow and Hugging Face mocks."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from safetensors.numpy import save as safetensors_bytes

from crownguard.engine.cli import main
from crownguard.plugins.huggingface.mock import ORG, HubMock
from crownguard.plugins.mlflow.mock import MlflowMock

TENSORS = {f"encoder.layer.{i}.weight": np.zeros((4, i + 1), np.float32) for i in range(12)}
WEIGHTS = safetensors_bytes(TENSORS, metadata={"format": "pt"})
FILES = {"model.safetensors": WEIGHTS, "MLmodel": b"flavors: {}\n"}


def sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def connections(tmp_path: Path, **settings: dict[str, Any]) -> Path:
    path = tmp_path / "connections.yaml"
    path.write_text(yaml.safe_dump({"connections": settings}))
    return path


def downloads(mock: MlflowMock) -> int:
    return sum(c.path.startswith("/api/2.0/mlflow-artifacts/artifacts/") for c in mock.calls)


@pytest.fixture
def mlflow(mock_server: Any) -> MlflowMock:
    mock = mock_server(MlflowMock)
    assert isinstance(mock, MlflowMock)
    mock.add_version("fraud-model", FILES, tags={"sensitivity": "restricted"})
    mock.add_version("fraud-model", {**FILES, "model.safetensors": WEIGHTS + b" "},
                     tags={"sensitivity": "restricted"})
    return mock


def test_refresh_is_incremental_and_says_what_changed(
        mlflow: MlflowMock, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = connections(tmp_path, mlflow=mlflow.connection_settings())
    index = str(tmp_path / "fp.sqlite")
    assert main(["fingerprints", "refresh", "--config", str(config), "--fingerprints",
                 index]) == 0
    out, err = capsys.readouterr()
    assert "mlflow: 2 versions listed; 2 versions added; 0 changed; 0 removed" in out
    assert "files: 4 added, 0 changed, 0 removed; 2 structural fingerprints" in out
    assert "mlflow: listing files 2/2: fraud-model v1" in err  # the progress display
    before = downloads(mlflow)

    assert main(["fingerprints", "refresh", "--config", str(config), "--fingerprints",
                 index]) == 0
    out, err = capsys.readouterr()
    assert "0 versions added; 0 changed; 0 removed; 2 unchanged; files: 0 added" in out
    assert downloads(mlflow) == before and "listing files" not in err

    assert main(["fingerprints", "refresh", "--config", str(config), "--fingerprints",
                 index, "--force", "--head-bytes", "0"]) == 0
    out, err = capsys.readouterr()
    assert "0 versions added; 2 changed" in out and "0 structural fingerprints" in out
    assert "listing files 2/2" in err and downloads(mlflow) == before + 4
    before = downloads(mlflow)

    mlflow.add_version("fraud-model", {"model.safetensors": WEIGHTS[:-1] + b"\x20"})
    assert main(["fingerprints", "refresh", "--config", str(config), "--fingerprints",
                 index]) == 0
    out, _ = capsys.readouterr()
    assert "1 versions added; 0 changed" in out and "files: 1 added" in out
    assert "  added    fraud-model v3 (mlflow)" in out
    assert downloads(mlflow) == before + 1

    assert main(["fingerprints", "show", "--fingerprints", index]) == 0
    out, _ = capsys.readouterr()
    assert out.splitlines()[0].endswith("1 registries, 1 models, 3 versions, 5 files, "
                                        "1 structural fingerprints")
    assert "mlflow  fraud-model v1, restricted  (2 files)" in out
    assert f"    {sha(WEIGHTS)[:12]}  model.safetensors\n" in out  # re-listed without heads
    assert "model.safetensors  safetensors, 12 tensors" in out  # v3's
    assert main(["fingerprints", "show", "--fingerprints", index, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert len(shown["versions"]) == 3 and len(shown["structures"]) == 1


def test_match_by_sha_and_by_file(mlflow: MlflowMock, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    config = connections(tmp_path, mlflow=mlflow.connection_settings())
    index = str(tmp_path / "fp.sqlite")
    assert main(["fingerprints", "refresh", "--config", str(config), "--fingerprints",
                 index]) == 0
    capsys.readouterr()
    assert main(["fingerprints", "match", sha(WEIGHTS), "--fingerprints", index]) == 0
    assert capsys.readouterr().out == ("SHA-256 matches registered fraud-model v1 (mlflow, "
                                       "restricted): model.safetensors\n")
    converted = tmp_path / "holiday-photos.npz"
    buffer = io.BytesIO()
    np.savez(buffer, **TENSORS)  # type: ignore[arg-type]
    converted.write_bytes(buffer.getvalue())
    assert main(["fingerprints", "match", str(converted), "--fingerprints", index]) == 0
    assert capsys.readouterr().out == (
        "tensor structure: re-saved or converted copy of fraud-model v2 (mlflow, restricted): "
        "model.safetensors, 12 of 12 tensors\n")
    assert main(["fingerprints", "match", "0" * 64, "--fingerprints", index, "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["matches"] == []
    other = tmp_path / "notes.txt"
    other.write_text("hello")
    assert main(["fingerprints", "match", str(other), "--fingerprints", index]) == 1
    assert capsys.readouterr().out.startswith("no registered model has SHA-256")


def test_bad_input_is_one_line_naming_what(tmp_path: Path, mlflow: MlflowMock,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    index = str(tmp_path / "missing.sqlite")
    assert main(["fingerprints", "match", "nonsense", "--fingerprints", index]) == 2
    assert "nonsense: neither a SHA-256 (64 hex digits) nor a file" in capsys.readouterr().err
    assert main(["fingerprints", "show", "--fingerprints", index]) == 2
    assert f"--fingerprints: no fingerprint index at {index}" in capsys.readouterr().err
    config = connections(tmp_path, mlflow=mlflow.connection_settings())
    assert main(["fingerprints", "refresh", "--config", str(config), "--registry", "okta"]) == 2
    assert "--registry okta: not a model registry plugin here" in capsys.readouterr().err
    assert main(["fingerprints", "refresh", "--config", str(config), "--registry",
                 "huggingface"]) == 2
    assert "no 'huggingface' connection" in capsys.readouterr().err


# --- Hugging Face: an organisation's repos, private and gated ones too ----------------------------


@pytest.fixture
def hub(mock_server: Any) -> HubMock:
    mock = mock_server(HubMock)
    assert isinstance(mock, HubMock)
    mock.page_size = 1  # every listing is paged: the Link headers are followed
    mock.add_repo(f"{ORG}/fraud-llm", private=True,
                  contents={"model.safetensors": WEIGHTS, "config.json": b"{}",
                            "onnx/model.onnx": b"\x08\x07"})
    mock.add_repo(f"{ORG}/gated-llm", gated="manual", contents={"weights.safetensors": WEIGHTS})
    mock.add_repo("someone-else/public", contents={"model.safetensors": b"x"})
    return mock


def test_the_index_learns_private_and_gated_repos_from_the_tree_listing(
        hub: HubMock, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = connections(tmp_path, huggingface={**hub.connection_settings(),
                                                "organization": ORG})
    index = str(tmp_path / "fp.sqlite")
    assert main(["fingerprints", "refresh", "--config", str(config), "--fingerprints",
                 index]) == 0
    out, _ = capsys.readouterr()
    assert "huggingface: 2 versions listed; 2 versions added" in out
    assert main(["fingerprints", "match", sha(WEIGHTS), "--fingerprints", index, "--json"]) == 0
    found = json.loads(capsys.readouterr().out)["matches"]
    assert {(m["model"], m["version"], m["path"]) for m in found} == {
        (f"{ORG}/fraud-llm", "main", "model.safetensors"),
        (f"{ORG}/gated-llm", "main", "weights.safetensors")}
    assert main(["fingerprints", "show", "--fingerprints", index, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    # config.json is kept in git: no SHA-256 in the listing, so it is not indexed.
    assert sorted(f["path"] for f in shown["files"]) == ["model.safetensors", "onnx/model.onnx",
                                                         "weights.safetensors"]
    assert len(shown["structures"]) == 2  # the heads of both safetensors were read
    assert any(c.headers.get("Range") for c in hub.calls if "/resolve/" in c.path)
    assert any("cursor=" in c.path or "cursor" in c.query for c in hub.calls)

    hub.commit(f"{ORG}/gated-llm", {"extra.bin": b"more"})
    assert main(["fingerprints", "refresh", "--config", str(config), "--fingerprints",
                 index]) == 0
    out, _ = capsys.readouterr()
    assert "0 versions added; 1 changed" in out and "files: 1 added, 0 changed" in out
    assert f"  changed  {ORG}/gated-llm @main (huggingface)" in out


def test_the_hub_mock_hides_private_and_gated_files_like_the_hub(hub: HubMock) -> None:
    import requests

    base = hub.base_url.rstrip("/")
    member = {"Authorization": f"Bearer {hub.read_token}"}
    hub.tokens["hf_outsider"] = {"user": "outsider", "role": "read", "orgs": []}
    outsider = {"Authorization": "Bearer hf_outsider"}
    tree = f"{base}/api/models/{ORG}/fraud-llm/tree/main"
    answer = requests.get(tree, timeout=5)
    assert answer.status_code == 401 and answer.headers["X-Error-Code"] == "RepoNotFound"
    assert requests.get(tree, headers=outsider, timeout=5).status_code == 404
    listed = requests.get(tree, headers=member, params={"recursive": "true"}, timeout=5)
    assert listed.status_code == 200 and "next" in listed.links
    gated = f"{base}/{ORG}/gated-llm/resolve/main/weights.safetensors"
    answer = requests.get(gated, timeout=5)
    assert answer.status_code == 401 and answer.headers["X-Error-Code"] == "GatedRepo"
    assert requests.get(gated, headers=outsider, timeout=5).status_code == 403
    hub.request_access(f"{ORG}/gated-llm", "outsider", "accepted")
    part = requests.get(gated, headers={**outsider, "Range": "bytes=0-7"}, timeout=5)
    assert part.status_code == 206 and part.content == WEIGHTS[:8]
    assert part.headers["Content-Range"] == f"bytes 0-7/{len(WEIGHTS)}"
    models = requests.get(f"{base}/api/models", params={"author": ORG}, timeout=5)
    assert [m["id"] for m in models.json()] == [f"{ORG}/gated-llm"]  # public ones only
    entry = requests.get(f"{base}/api/models/{ORG}/gated-llm/tree/main", timeout=5).json()[0]
    assert entry["lfs"]["oid"] == sha(WEIGHTS) and entry["lfs"]["size"] == len(WEIGHTS)


def test_mlflow_reads_only_the_head_of_an_artifact(mlflow: MlflowMock) -> None:
    from crownguard.engine.config import config_from_mapping
    from crownguard.engine.plugins import PluginHost
    from crownguard.plugins.mlflow.client import MlflowRegistryClient

    host = PluginHost.from_entry_points()
    config = config_from_mapping({"connections": {"mlflow": mlflow.connection_settings()}},
                                 host.connection_types)
    try:
        client = MlflowRegistryClient(config.connections.get("mlflow"))
        path = next(p for p in mlflow.artifacts if p.endswith("model.safetensors"))
        assert client.read_model_file_head(path, 16, "read head") == WEIGHTS[:16]
        size, digest, head = client.artifact_digest(path, "hash", head_bytes=10)
        assert (size, digest, head) == (len(WEIGHTS), sha(WEIGHTS), WEIGHTS[:10])
    finally:
        config.connections.close()


def test_a_gated_repo_of_another_account_is_indexed_by_its_hashes(
        hub: HubMock, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hub.add_repo("partner/gated", gated="auto", contents={"model.safetensors": WEIGHTS,
                                                          "more.safetensors": WEIGHTS + b" "})
    config = connections(tmp_path, huggingface={**hub.connection_settings(),
                                                "organization": "partner"})
    index = str(tmp_path / "fp.sqlite")
    assert main(["fingerprints", "refresh", "--config", str(config), "--fingerprints",
                 index]) == 0
    out, _ = capsys.readouterr()
    assert "1 versions added" in out and "files: 2 added" in out
    assert "0 structural fingerprints" in out  # the files themselves are gated
    assert sum("/resolve/" in c.path for c in hub.calls) == 1  # tried once, then not again
    assert main(["fingerprints", "match", sha(WEIGHTS), "--fingerprints", index]) == 0


def test_a_redirect_to_the_lfs_host_is_followed_without_the_token_only_when_configured(
        hub: HubMock, mock_server: Any, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    storage = mock_server(HubMock)  # plays the Hub's storage host
    assert isinstance(storage, HubMock)
    for repo in (f"{ORG}/fraud-llm", f"{ORG}/gated-llm"):  # public there: the URL is signed
        storage.add_repo(repo, contents=dict(hub.repo(repo)["files"]))
    hub.lfs_redirect = storage.base_url
    settings = {**hub.connection_settings(), "organization": ORG}
    index = str(tmp_path / "fp.sqlite")
    config = connections(tmp_path, huggingface=settings)
    assert main(["fingerprints", "refresh", "--config", str(config), "--fingerprints",
                 index]) == 1
    out, err = capsys.readouterr()
    assert f"refusing to send to {storage.base_url.rstrip('/')}" in err
    assert hub.write_token not in out + err and not storage.calls

    config = connections(tmp_path, huggingface={**settings, "lfs_url": storage.base_url})
    assert main(["fingerprints", "refresh", "--config", str(config), "--fingerprints",
                 index]) == 0
    assert "2 structural fingerprints" in capsys.readouterr().out
    reads = [c for c in storage.calls if "/resolve/" in c.path]
    assert reads and all("Authorization" not in c.headers for c in reads)
    assert all(c.headers.get("Range") for c in reads)
