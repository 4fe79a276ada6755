"""Model detection from what an event says about a file, when its bytes are out of reach.

The name and extension are the first hint, but they lie both ways (pytorch_model.bin is a
model, holiday.jpg may be one), so they are weighed with the rest: a registry as the source,
paths like mlruns/ or checkpoints/, the size, and the type the monitoring tool saw in the
bytes (Incydr's mimeTypeByBytes / categoryByBytes). Metadata alone never claims certainty.
"""

from __future__ import annotations

import re
from dataclasses import replace

from ..events.model import FileInfo, SourceKind
from .formats import (
    AMBIGUOUS_EXTENSIONS,
    MODEL_COMPANION_NAMES,
    MODEL_EXTENSIONS,
    MODEL_FILE_NAMES,
    NON_MODEL_EXTENSIONS,
    Detection,
    Method,
    ModelFormat,
    base_name,
    format_from_name,
    name_disguises,
)

METADATA_CEILING = 0.95
# Words in a name that read like a model. Short ones must stand as words (after a non-letter
# and before a non-letter): "colorado" holds no LoRA, "gilbert" no BERT, "egypt" no GPT.
_NAME_HINTS = re.compile(
    r"model|checkpoint|fine-?tun|finetune|-of-\d+|state_dict|quantized|embedding|classifier|"
    r"gguf|ggml|frozen|inference_graph|saved_?model|safetensors|"
    r"(?<![a-z])q[2-8]_|"
    r"(?<![a-z])(?:weights?|ckpt|q?lora|adapters?|epochs?|llama|mistral|gpt|resnet|"
    r"(?:distil|tiny|mobile|camem|flau|fin|bio|sci|sentence-?)?bert|roberta|deberta)(?![a-z])",
    re.IGNORECASE)
# A name that says which format an ambiguous extension holds (ggml-model-q4_0.bin).
_FORMAT_HINTS = ((re.compile(r"gguf|ggml", re.IGNORECASE), ModelFormat.GGUF),
                 (re.compile(r"frozen|inference_graph|saved_?model", re.IGNORECASE),
                  ModelFormat.TF_SAVEDMODEL))
# Files that hold (part of) a model under a name no extension table knows.
_SHARD_NAMES = (
    (re.compile(r"\.onnx_data$|\.onnx\.data$"), ModelFormat.ONNX,
     "ONNX external data (the tensors of an .onnx model)"),
    (re.compile(r"(?:^variables|\.ckpt(?:-\d+)?)\.(?:data-\d+-of-\d+|index)$"),
     ModelFormat.TF_SAVEDMODEL, "TensorFlow variables or checkpoint shard"),
    (re.compile(r"\.params$"), ModelFormat.UNKNOWN, "MXNet parameters"),
)
_SHARD_HINT = re.compile(r"onnx.data|data-\d|\.index$|\.params$")
# Suffixes that keep the real name in front: model.onnx.bak is still an ONNX model.
_COPY_SUFFIXES = (".bak", ".old", ".orig", ".tmp", ".part", ".crdownload", ".download",
                  ".copy", ".backup", ".1", ".2")
# Folders whose hash-named blobs are model files (Hugging Face cache, Ollama).
_BLOB_FOLDERS = re.compile(r"/models--[^/]+/blobs/|/\.ollama/models/blobs/|/ollama/models/blobs/",
                           re.IGNORECASE)
_PATH_HINTS = re.compile(r"mlruns|mlartifacts|checkpoints?/|/models?/|huggingface|/\.cache/torch|"
                         r"model-registry|artifacts/|/weights/", re.IGNORECASE)
_NOT_MODEL_PATHS = re.compile(r"/(?:firmware|bootloaders?|drivers|bios)/", re.IGNORECASE)
_OPAQUE_MIMES = ("application/octet-stream", "application/zip", "application/x-hdf5",
                 "application/x-hdf", "application/x-tar", "application/gzip",
                 "application/x-python-pickle", "application/vnd.google.protobuf")
_TEXTUAL_MIMES = frozenset({"application/json", "application/pdf", "application/xml"})
_LARGE = 50 * 1024 * 1024
_DISGUISE_MIN = 1024 * 1024


def detect_metadata(file: FileInfo, source_kind: SourceKind = SourceKind.UNKNOWN) -> Detection:
    """How likely the file is a model, from its name, path, size, source and sniffed type."""
    lower = base_name(file.name).lower()
    for suffix in _COPY_SUFFIXES if lower.endswith(_COPY_SUFFIXES) else ():
        if lower.endswith(suffix) and "." in lower[:-len(suffix)]:
            inner = detect_metadata(replace(file, name=file.name[:-len(suffix)]), source_kind)
            if inner.is_model:
                return Detection.verdict(inner.confidence, inner.format, inner.method,
                                         [f"a copy ({suffix}) of '{file.name[:-len(suffix)]}'",
                                          *inner.evidence], disguised=inner.disguised)
            break
    for pattern, shard_format, what in _SHARD_NAMES if _SHARD_HINT.search(lower) else ():
        if pattern.search(lower):
            confidence = 0.75 if shard_format != ModelFormat.UNKNOWN else 0.55
            return Detection.verdict(confidence, shard_format, Method.METADATA,
                                     [f"'{file.name}' is {what}"])
    dot = lower.rfind(".")
    ext = lower[dot:] if dot > 0 else ""
    by_bytes = file.mime_type_by_bytes.lower() if file.mime_type_by_bytes else ""

    if lower in MODEL_COMPANION_NAMES:
        return Detection.verdict(0.05, None, Method.METADATA,
                                 [f"'{file.name}' is a file that sits beside a model, not one"])
    if by_bytes and (by_bytes.startswith("text/") or by_bytes in _TEXTUAL_MIMES):
        return Detection.verdict(0.05, None, Method.METADATA,
                                 [f"the monitoring tool saw {by_bytes} in the bytes"])
    if file.original_name and file.original_name != file.name:
        renamed = _renamed_from(file)
        if renamed is not None:
            return renamed
    fmt: ModelFormat | None
    if lower in MODEL_FILE_NAMES:
        fmt, confidence = MODEL_FILE_NAMES[lower], 0.9
        evidence = [f"'{file.name}' is a standard model file name"]
    elif ext in MODEL_EXTENSIONS:
        fmt, confidence = MODEL_EXTENSIONS[ext], 0.85
        evidence = [f"extension {ext} is a model format ({fmt})"]
    elif ext in AMBIGUOUS_EXTENSIONS:
        fmt, confidence = AMBIGUOUS_EXTENSIONS[ext], 0.3
        evidence = [f"extension {ext} is used by models and by other files"]
        if _NAME_HINTS.search(lower):
            # "model" alone on an archive is weak (a data model, a car model): such an archive
            # needs its size as well to pass for one.
            weak = fmt == ModelFormat.ARCHIVE and not _NAME_HINTS.search(
                lower.replace("model", " "))
            confidence += 0.15 if weak else 0.25
            evidence.append("the name reads like a model or checkpoint")
            if fmt == ModelFormat.UNKNOWN:
                fmt = next((hinted for pattern, hinted in _FORMAT_HINTS
                            if pattern.search(lower)), fmt)
        if file.path and _PATH_HINTS.search(file.path.replace("\\", "/")):
            confidence += 0.15
            evidence.append("the path is a model or artifact folder")
        elif file.path and _NOT_MODEL_PATHS.search(file.path.replace("\\", "/")):
            confidence -= 0.15
            evidence.append("the path is a firmware or driver folder")
        if file.size is not None and file.size >= _LARGE:
            confidence += 0.1
            evidence.append(f"large binary ({_human(file.size)})")
    elif not ext and file.path and _BLOB_FOLDERS.search(file.path.replace("\\", "/")):
        fmt, confidence = None, 0.7
        evidence = ["a blob of a local model cache (Hugging Face or Ollama)"]
    elif not ext or ext in NON_MODEL_EXTENSIONS:
        disguised = _disguised(file, ext) if ext else None  # no name claims no other type
        if disguised is not None:
            return disguised
        return Detection.verdict(0.02 if ext else 0.1, None, Method.METADATA,
                                 [f"extension {ext or '(none)'} is not a model format"])
    else:
        fmt, confidence = None, 0.1
        evidence = [f"extension {ext} is not a known model format"]
    if source_kind == SourceKind.REGISTRY:
        confidence = max(confidence + 0.1, 0.75)
        evidence.append("downloaded from a model registry")
    if confidence < 0.5:
        fmt = None  # not taken for a model: naming a model format would contradict that
    return Detection.verdict(min(confidence, METADATA_CEILING), fmt, Method.METADATA, evidence)


def _renamed_from(file: FileInfo) -> Detection | None:
    """The monitoring tool saw a rename from a model name to something else."""
    original = file.original_name
    if not original or original == file.name:
        return None
    fmt = format_from_name(original)
    if fmt is None:
        return None
    disguised = name_disguises(file.name)
    return Detection.verdict(0.85, fmt, Method.METADATA,
                             [f"renamed from '{original}' to '{file.name}'"], disguised=disguised)


def _disguised(file: FileInfo, ext: str) -> Detection | None:
    """An everyday extension over opaque binary bytes, large enough to be weights."""
    by_bytes = (file.mime_type_by_bytes or "").lower()
    by_name_category = (file.category or "").lower()
    by_bytes_category = (file.category_by_bytes or "").lower()
    opaque = by_bytes in _OPAQUE_MIMES
    mismatch = bool(by_bytes_category) and by_bytes_category != by_name_category
    if not (opaque or mismatch) or (file.size or 0) < _DISGUISE_MIN:
        return None
    seen = by_bytes or by_bytes_category
    return Detection.verdict(0.55, ModelFormat.UNKNOWN, Method.METADATA,
                             [f"the name says {ext or 'no type'} but the bytes are {seen} "
                              f"({_human(file.size or 0)}): possibly a renamed model"],
                             disguised=True)


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"
