"""Model detection from metadata alone (no bytes at hand), and the combined `detect`."""

from __future__ import annotations

from dataclasses import replace

import pytest

from crownguard.engine.triage.detection import Method, ModelFormat, detect, detect_metadata
from crownguard.engine.triage.events import FileInfo, SourceKind

MB = 1024 * 1024


@pytest.mark.parametrize(("name", "fmt"), [
    ("llama-3-8b-instruct.Q4_K_M.gguf", ModelFormat.GGUF),
    ("model-00001-of-00004.safetensors", ModelFormat.SAFETENSORS),
    ("fraud.onnx", ModelFormat.ONNX),
    ("resnet50.pth", ModelFormat.PYTORCH),
    ("pytorch_model.bin", ModelFormat.PYTORCH),
    ("classifier.joblib", ModelFormat.JOBLIB),
    ("detector.tflite", ModelFormat.TFLITE),
    ("Segmenter.mlmodel", ModelFormat.COREML),
    ("net.keras", ModelFormat.KERAS),
    ("saved_model.pb", ModelFormat.TF_SAVEDMODEL),
])
def test_model_names_are_models(name: str, fmt: ModelFormat) -> None:
    detection = detect_metadata(FileInfo(name=name))
    assert detection.is_model and detection.format == fmt
    assert detection.method == Method.METADATA
    assert detection.confidence < 1.0


@pytest.mark.parametrize("name", ["quarterly.xlsx", "notes.txt", "export.csv", "photo.jpg",
                                  "setup.exe", "README", "archive.zip", "data.bin", "x.pkl"])
def test_everyday_names_are_not_models(name: str) -> None:
    assert not detect_metadata(FileInfo(name=name, size=2 * MB)).is_model


def test_an_ambiguous_extension_needs_more_hints() -> None:
    bare = FileInfo(name="data.bin", size=10_000)
    assert not detect_metadata(bare).is_model
    hinted = FileInfo(name="checkpoint-epoch12.bin", path="/home/ml/checkpoints/checkpoint-epoch12.bin",
                      size=800 * MB)
    detection = detect_metadata(hinted)
    assert detection.is_model
    assert any("checkpoint" in e or "model" in e for e in detection.evidence)


@pytest.mark.parametrize(("name", "fmt"), [
    ("frozen_inference_graph.pb", ModelFormat.TF_SAVEDMODEL),
    ("ggml-model-q4_0.bin", ModelFormat.GGUF),
    ("model-q8_0.gguf.bin", ModelFormat.GGUF),
])
def test_a_name_can_say_which_format_an_ambiguous_extension_holds(name: str,
                                                                   fmt: ModelFormat) -> None:
    detection = detect_metadata(FileInfo(name=name, size=90 * MB))
    assert detection.is_model and detection.format == fmt


@pytest.mark.parametrize("name", ["data.bin", "firmware.bin", "x.pkl", "scan.h5", "graph.pb"])
def test_a_file_not_taken_for_a_model_names_no_model_format(name: str) -> None:
    detection = detect_metadata(FileInfo(name=name, size=2 * MB))
    assert not detection.is_model and detection.format is None


@pytest.mark.parametrize("name", ["colorado_trip_photos.zip", "gilbert_family_2025.tar",
                                  "egypt_holiday.zip", "albert_photos.zip", "robert_cv.zip",
                                  "llamas_at_the_farm.zip", "faq4_notes.bin"])
def test_model_words_inside_other_words_are_not_hints(name: str) -> None:
    # colorado holds no LoRA, gilbert no BERT, egypt no GPT
    assert not detect_metadata(FileInfo(name=name, size=300 * MB)).is_model


@pytest.mark.parametrize("name", ["lora_adapter.bin", "qlora-adapter.bin", "distilbert.bin",
                                  "roberta-large.bin", "bert-base-uncased.bin", "gpt2-medium.bin",
                                  "q4_k_m.bin", "finbert_v2.bin", "epoch12.bin"])
def test_model_words_standing_as_words_are_hints(name: str) -> None:
    assert detect_metadata(FileInfo(name=name, size=300 * MB)).is_model


@pytest.mark.parametrize(("name", "fmt"), [
    ("model.onnx_data", ModelFormat.ONNX),
    ("variables.data-00000-of-00001", ModelFormat.TF_SAVEDMODEL),
    ("model.ckpt-1000.data-00000-of-00001", ModelFormat.TF_SAVEDMODEL),
    ("model.ckpt-1000.index", ModelFormat.TF_SAVEDMODEL),
    ("resnet-0000.params", ModelFormat.UNKNOWN),
    ("fraud.onnx.bak", ModelFormat.ONNX),
    ("adapter_model.safetensors.part", ModelFormat.SAFETENSORS),
])
def test_shards_external_data_and_copies_of_models_are_models(name: str,
                                                               fmt: ModelFormat) -> None:
    detection = detect_metadata(FileInfo(name=name, size=500 * MB))
    assert detection.is_model and detection.format == fmt


def test_model_alone_on_a_small_archive_or_in_a_firmware_folder_is_not_enough() -> None:
    assert not detect_metadata(FileInfo(name="data_model_ERD_v3.zip", size=3 * MB)).is_model
    # "model" is not enough on its own, however large the archive (photos, a container image)
    assert not detect_metadata(FileInfo(name="model.zip", size=300 * MB)).is_model
    assert detect_metadata(FileInfo(name="model.zip", size=300 * MB,
                                    path="/srv/mlruns/3/artifacts/model.zip")).is_model
    assert detect_metadata(FileInfo(name="model_weights.zip", size=3 * MB)).is_model
    firmware = FileInfo(name="model_x_bootloader_v2.bin", size=2 * MB,
                        path="/home/dev/firmware/model_x_bootloader_v2.bin")
    assert not detect_metadata(firmware).is_model


@pytest.mark.parametrize("name", ["tokenizer.model", "spiece.model",
                                  "sentencepiece.bpe.model"])
def test_tokenizer_files_sit_beside_a_model(name: str) -> None:
    assert not detect_metadata(FileInfo(name=name, size=MB // 2)).is_model


def test_a_file_without_extension_is_not_disguised_but_a_cache_blob_is_a_model() -> None:
    dump = detect_metadata(FileInfo(name="core", path="/var/crash/core", size=2100 * MB,
                                    mime_type_by_bytes="application/octet-stream"))
    assert not dump.is_model and not dump.disguised
    blob = detect_metadata(FileInfo(
        name="3f1a9c0e", size=4000 * MB, mime_type_by_bytes="application/octet-stream",
        path="/Users/dana/.cache/huggingface/hub/models--meta-llama--Llama-3-8B/blobs/3f1a9c0e"))
    assert blob.is_model and not blob.disguised
    ollama = detect_metadata(FileInfo(name="sha256-6a0746a1ec1a", size=4000 * MB,
                                      path="/Users/dana/.ollama/models/blobs/sha256-6a0746a1ec1a"))
    assert ollama.is_model


def test_a_file_from_the_registry_is_a_model_unless_it_is_a_companion() -> None:
    assert detect_metadata(FileInfo(name="weights.bin"), SourceKind.REGISTRY).is_model
    assert not detect_metadata(FileInfo(name="MLmodel"), SourceKind.REGISTRY).is_model
    assert not detect_metadata(FileInfo(name="requirements.txt"), SourceKind.REGISTRY).is_model


def test_a_large_binary_behind_an_everyday_name_may_be_a_disguised_model() -> None:
    file = FileInfo(name="holiday.mp4", size=700 * MB, mime_type="video/mp4",
                    mime_type_by_bytes="application/octet-stream", category="Video")
    detection = detect_metadata(file)
    assert detection.is_model and detection.disguised
    assert "possibly a renamed model" in detection.evidence[0]
    real_video = replace(file, mime_type_by_bytes="video/mp4", category_by_bytes="Video")
    assert not detect_metadata(real_video).is_model
    photo = FileInfo(name="holiday.jpg", size=700 * MB, mime_type="image/jpeg",
                     mime_type_by_bytes="application/zip", category="Image")
    assert detect_metadata(photo).disguised  # a zip (a PyTorch checkpoint is one) is no JPEG


def test_a_rename_seen_by_the_tool_is_followed() -> None:
    file = FileInfo(name="holiday.jpg", original_name="fraud-v7.safetensors", size=10 * MB)
    detection = detect_metadata(file)
    assert detection.is_model and detection.format == ModelFormat.SAFETENSORS
    assert detection.disguised


def test_bytes_that_are_text_overrule_a_model_extension() -> None:
    file = FileInfo(name="weights.safetensors", mime_type_by_bytes="text/csv")
    assert not detect_metadata(file).is_model


def test_detect_prefers_content_over_metadata(tmp_path: object) -> None:
    file = FileInfo(name="model.safetensors")
    assert detect(file).method == Method.METADATA
    content = detect(file, content=b"id,amount\n1,2\n3,4\n")
    assert content.method == Method.CONTENT and not content.is_model
