"""Metadata detection that holds up (look-alikes and missed models, by class), and the
strength of each kind of evidence: what a verdict allows the playbooks to do."""

from __future__ import annotations

import pytest

from crownguard.engine.triage.detection import (
    Detection,
    EvidenceKind,
    Method,
    ModelFormat,
    Strength,
    detect_metadata,
)
from crownguard.engine.triage.events import FileInfo

MB = 1024 * 1024
GB = 1024 * MB


# --- documents are documents, whatever generic type their bytes get ----------------------

@pytest.mark.parametrize(("name", "by_bytes", "category_by_bytes"), [
    ("Q3 board deck.pptx", "application/zip", "Archive"),
    ("forecast.xlsx", "application/zip", "Archive"),
    ("contract.docx", "application/octet-stream", None),
    ("minutes.odt", "application/zip", "Archive"),
    ("budget.ods", "application/octet-stream", "Archive"),
    ("annual-report.pdf", "application/octet-stream", None),
    ("scan-0042.pdf", "application/octet-stream", "Uncategorized"),
    ("IMG_2031.heic", "application/octet-stream", None),
    ("team-photo.jpg", "application/octet-stream", "Uncategorized"),
])
def test_office_files_pdfs_and_images_are_documents_over_generic_bytes(
        name: str, by_bytes: str, category_by_bytes: str | None) -> None:
    file = FileInfo(name=name, size=40 * MB, mime_type_by_bytes=by_bytes, category="Document",
                    category_by_bytes=category_by_bytes)
    detection = detect_metadata(file)
    assert not detection.is_model and not detection.disguised
    assert detection.strength is Strength.WEAK


@pytest.mark.parametrize(("name", "by_bytes"), [
    ("annual-report.pdf", "application/x-hdf5"),
    ("contract.docx", "application/x-python-pickle"),
    ("team-photo.jpg", "application/zip"),
    ("scan.pdf", "application/x-tar"),
])
def test_a_document_whose_bytes_name_a_model_carrier_may_be_a_renamed_model(
        name: str, by_bytes: str) -> None:
    detection = detect_metadata(FileInfo(name=name, size=400 * MB, mime_type_by_bytes=by_bytes))
    assert detection.is_model and detection.disguised
    assert detection.strength is Strength.MODERATE  # suspected, never enough to contain


# --- "model" in an archive's or image's name is not enough on its own ---------------------

@pytest.mark.parametrize(("name", "path"), [
    ("model-railway-photos.zip", "/Users/sam/Pictures/"),
    ("model_trains_2025.7z", None),
    ("fraud-model-api_latest.tar", "/home/ci/images/"),
    ("model-server-docker-image.tar", None),
    ("model.zip", None),
    ("model_portfolio.jpg", None),
    ("model-shoot.tar.gz", None),
])
def test_model_in_the_name_of_an_archive_or_image_is_not_enough(name: str,
                                                                path: str | None) -> None:
    file = FileInfo(name=name, size=3 * GB, directory=path,
                    mime_type_by_bytes="application/octet-stream")
    assert not detect_metadata(file).is_model


def test_an_archive_with_model_and_a_model_folder_is_suspected() -> None:
    file = FileInfo(name="model.tar.gz", size=900 * MB, path="/opt/ml/model/model.tar.gz")
    detection = detect_metadata(file)
    assert detection.is_model and detection.strength is Strength.MODERATE


def test_a_container_image_named_after_weights_is_doubted() -> None:
    plain = detect_metadata(FileInfo(name="llama-weights.tar", size=9 * GB))
    image = detect_metadata(FileInfo(name="llama-weights-oci-image.tar", size=9 * GB))
    assert image.confidence < plain.confidence
    assert any("container image" in line for line in image.evidence)


# --- large files with unknown extensions in checkpoint folders ----------------------------

@pytest.mark.parametrize("path", [
    "/data/train/checkpoints/run7/__0_0.distcp",
    "/data/train/run7/step-12000/shard_003",
    "/data/train/global_step4500/mp_rank_00_model_states",
    "/home/ml/ckpt/latest.data",
    "/home/ml/exp_ckpt_v2/part-00001",
    "C:\\work\\runs\\exp12\\weights\\last.engine",
])
def test_large_files_with_unknown_extensions_in_checkpoint_folders_are_suspected(
        path: str) -> None:
    name = path.replace("\\", "/").rsplit("/", 1)[1]
    detection = detect_metadata(FileInfo(name=name, path=path, size=2 * GB))
    assert detection.is_model and detection.strength is Strength.MODERATE
    assert "checkpoint folder" in detection.evidence[0]


def test_small_files_and_known_other_types_in_checkpoint_folders_are_not() -> None:
    assert not detect_metadata(FileInfo(name="shard_003", path="/x/step-12000/shard_003",
                                        size=2 * MB)).is_model
    assert not detect_metadata(FileInfo(name="events.log", path="/x/checkpoints/events.log",
                                        size=2 * GB)).is_model
    assert not detect_metadata(FileInfo(name="shard_003", path="/x/steps/shard_003",
                                        size=2 * GB)).is_model


# --- pickles, joblib and HDF5 named after a library or an architecture --------------------

@pytest.mark.parametrize("name", [
    "churn_xgb_v3.pkl", "xgboost-fraud.pickle", "lgbm_ranker.pkl", "catboost_scoring.pkl",
    "sklearn_pipeline.pkl", "demand-lstm.h5", "fraud_gru_2.hdf5", "cnn_defects.h5",
    "resnet50_finetune.pkl", "bert-ner.pkl", "llama_lora.pkl", "rf_clf.pkl",
])
def test_pickles_and_hdf5_named_after_a_library_or_architecture_are_suspected(
        name: str) -> None:
    detection = detect_metadata(FileInfo(name=name, size=20 * MB))
    assert detection.is_model and detection.strength is Strength.MODERATE


@pytest.mark.parametrize("name", ["grumpy_cat.pkl", "agrument.h5", "survey_results.pkl",
                                  "xgbar.pkl", "bilstmz.h5", "scandinavia.hdf5"])
def test_library_words_inside_other_words_are_not_hints(name: str) -> None:
    assert not detect_metadata(FileInfo(name=name, size=20 * MB)).is_model


# --- strength ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["fraud-v7.safetensors", "llama.Q4_K_M.gguf", "det.onnx",
                                  "resnet.pt", "pytorch_model.bin", "net.keras"])
def test_a_model_formats_own_extension_with_a_plausible_size_is_strong(name: str) -> None:
    detection = detect_metadata(FileInfo(name=name, size=300 * MB,
                                         mime_type_by_bytes="application/octet-stream"))
    assert detection.is_model and detection.strength is Strength.STRONG
    assert detection.evidence_kind is EvidenceKind.METADATA


def test_a_model_extension_without_a_plausible_size_is_only_suspected() -> None:
    tiny = detect_metadata(FileInfo(name="weights.safetensors", size=120))
    unknown = detect_metadata(FileInfo(name="weights.safetensors"))
    odd_bytes = detect_metadata(FileInfo(name="weights.onnx", size=300 * MB,
                                         mime_type_by_bytes="image/png"))
    for detection in (tiny, unknown, odd_bytes):
        assert detection.is_model and detection.strength is Strength.MODERATE
    assert any("too small" in line for line in tiny.evidence)


@pytest.mark.parametrize("name", ["model.joblib", "weights.bin", "checkpoint-12.bin",
                                  "model.onnx_data"])
def test_names_others_use_too_are_suspected_not_strong(name: str) -> None:
    detection = detect_metadata(FileInfo(name=name, size=300 * MB,
                                         path=f"/home/ml/checkpoints/{name}"))
    assert detection.is_model and detection.strength is Strength.MODERATE


def test_a_rename_seen_by_the_tool_from_a_model_name_is_strong() -> None:
    file = FileInfo(name="holiday.jpg", original_name="fraud-v7.safetensors", size=800 * MB)
    detection = detect_metadata(file)
    assert detection.strength is Strength.STRONG and detection.disguised


@pytest.mark.parametrize(("kind", "confidence", "strength"), [
    (EvidenceKind.REGISTRY_FINGERPRINT, 1.0, Strength.STRONG),
    (EvidenceKind.STRUCTURAL_FINGERPRINT, 0.95, Strength.STRONG),
    (EvidenceKind.STRUCTURAL_FINGERPRINT, 0.6, Strength.MODERATE),
    (EvidenceKind.CONTENT, 0.99, Strength.STRONG),
    (EvidenceKind.CONTENT, 0.6, Strength.MODERATE),  # NumPy floats: weights or data
    (EvidenceKind.CONTENT, 0.05, Strength.WEAK),
    (EvidenceKind.METADATA, 0.95, Strength.MODERATE),  # unless the name is unambiguous
])
def test_strength_follows_from_the_kind_and_confidence(kind: EvidenceKind, confidence: float,
                                                       strength: Strength) -> None:
    detection = Detection.verdict(confidence, ModelFormat.UNKNOWN, kind, ["why"])
    assert detection.strength is strength
    data = detection.to_dict()
    assert data["evidence_kind"] == str(kind) and data["strength"] == str(strength)
    summary = detection.summary.to_dict()
    assert summary["strong"] is (strength is Strength.STRONG)
    assert summary["suspected"] is (strength is Strength.MODERATE)


def test_the_older_name_of_the_kinds_still_works() -> None:
    assert Method.FINGERPRINT is EvidenceKind.REGISTRY_FINGERPRINT
    assert Method.CONTENT is EvidenceKind.CONTENT
