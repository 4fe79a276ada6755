"""Model detection from what an event says about a file, when its bytes are out of reach.

The name and extension are the first hint, but they lie both ways (pytorch_model.bin is a
model, holiday.jpg may be one), so they are weighed with the rest: a registry as the source,
paths like mlruns/ or checkpoints/, the size, and the type the monitoring tool saw in the
bytes (Incydr's mimeTypeByBytes / categoryByBytes). Metadata alone never claims certainty.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from ..events.model import FileInfo, SourceKind
from .evidence import PLAUSIBLE_MODEL_BYTES, Strength
from .formats import (
    AMBIGUOUS_EXTENSIONS,
    DOCUMENT_EXTENSIONS,
    MODEL_COMPANION_NAMES,
    MODEL_EXTENSIONS,
    MODEL_FILE_NAMES,
    NON_MODEL_EXTENSIONS,
    UNAMBIGUOUS_MODEL_EXTENSIONS,
    UNAMBIGUOUS_MODEL_NAMES,
    ZIPPED_DOCUMENT_EXTENSIONS,
    Detection,
    Method,
    ModelFormat,
    base_name,
    extension_of,
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
# Libraries and architectures whose names, as words, mark a pickle, joblib or HDF5 file as a
# trained model: churn_xgb_v3.pkl, fraud-lstm.h5 (digits may follow: resnet50, lstm2).
_LIBRARY_WORDS = re.compile(
    r"(?<![a-z])(?:xgboost|xgb|lightgbm|lgbm|catboost|sklearn|scikit|svm|svc|knn|gbm|gbdt|"
    r"logreg|clf|regressor|estimator|lstm|bilstm|gru|rnn|cnn|transformer|resnet|vgg|unet|yolo"
    r"|efficientnet|mobilenet|densenet|inception|vit|bert|gpt|llama|mistral|lora|keras|"
    r"torch|pytorch|tensorflow)(?![a-z])", re.IGNORECASE)
_LIBRARY_EXTENSIONS = frozenset({".pkl", ".pickle", ".joblib", ".h5", ".hdf5"})
# Archives that are container images (docker save, OCI layouts): "model" in such a name is
# the application's name, not a sign of weights.
_CONTAINER_WORDS = re.compile(r"(?<![a-z])(?:docker|oci|container|image|img|rootfs|layers?)"
                              r"(?![a-z])", re.IGNORECASE)
# Folders where training writes checkpoints: a large file of any extension there is
# suspected to be a model (a shard, a distributed-checkpoint part, an optimizer state).
_CHECKPOINT_FOLDERS = re.compile(
    r"(?:^|/)(?:checkpoints?|ckpts?)(?:/|$)|(?:^|/)[^/]*(?<![a-z])ckpts?(?![a-z])[^/]*/|"
    r"(?:^|/)(?:step|global_step|checkpoint|epoch|iter)[-_]?\d+(?:/|$)|"
    r"(?:^|/)runs/[^/]+/weights(?:/|$)", re.IGNORECASE)
# What a monitoring tool's sniffer reports for the bytes of a model carrier: under a
# document's name these "say otherwise" (generic octet-stream or, for Office files, zip
# does not: that is what the tool reports for real documents too).
_CARRIER_MIMES = frozenset({"application/x-hdf5", "application/x-hdf",
                            "application/x-python-pickle", "application/vnd.google.protobuf",
                            "application/x-tar", "application/gzip", "application/x-gzip",
                            "application/x-xz", "application/x-bzip2", "application/zstd",
                            "application/x-7z-compressed"})
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
    # A feed repeats the same few names, folders and byte types all day: each combination is
    # weighed once (its regexes and evidence texts). The size enters a verdict through the
    # three thresholds (the band below) and, in some verdicts, as a quoted size: those are
    # weighed for each event.
    size = file.size
    if size is None:
        band = -1
    elif size.__class__ is int:
        band = (size < PLAUSIBLE_MODEL_BYTES) + (size < _DISGUISE_MIN) + (size < _LARGE)
    else:  # not what an event holds: no shortcut
        return weigh_metadata(file, source_kind)
    key = (file.name, file.directory, file.path, file.mime_type_by_bytes, file.original_name,
           file.category, file.category_by_bytes, source_kind, band)
    found = _VERDICTS.get(key)
    if found is None:
        found = weigh_metadata(file, source_kind)
        if len(_VERDICTS) >= _VERDICTS_SIZE:
            _VERDICTS.clear()
        if size is not None and _quotes_size(found, size):
            _VERDICTS[key] = _SIZED
            return found
        _VERDICTS[key] = found
    elif found is _SIZED:
        return weigh_metadata(file, source_kind)
    # A copy: a Detection is slotted, not frozen, and its holder may keep it.
    return Detection(found.is_model, found.format, found.confidence, found.method,
                     found.evidence, found.disguised, found.match, {}, found.strength)


def _quotes_size(detection: Detection, size: int) -> bool:
    """Whether the verdict's evidence quotes the size (then it holds for that size only)."""
    shown = _human(size)
    return any(shown in line for line in detection.evidence)


# Verdicts by what detect_metadata reads of a file (_SIZED: weigh each one); cleared when full.
_VERDICTS: dict[tuple[Any, ...], Detection] = {}
_VERDICTS_SIZE = 4096
_SIZED = Detection(False, None, 0.0, Method.METADATA)


def weigh_metadata(file: FileInfo, source_kind: SourceKind = SourceKind.UNKNOWN) -> Detection:
    """detect_metadata without its cache: the algorithm itself."""
    lower = base_name(file.name).lower()
    for suffix in _COPY_SUFFIXES if lower.endswith(_COPY_SUFFIXES) else ():
        if lower.endswith(suffix) and "." in lower[:-len(suffix)]:
            inner = detect_metadata(replace(file, name=file.name[:-len(suffix)]), source_kind)
            if inner.is_model:
                return Detection.verdict(inner.confidence, inner.format, inner.method,
                                         [f"a copy ({suffix}) of '{file.name[:-len(suffix)]}'",
                                          *inner.evidence], disguised=inner.disguised,
                                         unambiguous=inner.strength is Strength.STRONG)
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
    directory = _directory(file)
    fmt: ModelFormat | None
    unambiguous = False
    if lower in MODEL_FILE_NAMES:
        fmt, confidence = MODEL_FILE_NAMES[lower], 0.9
        evidence = [f"'{file.name}' is a standard model file name"]
        unambiguous = lower in UNAMBIGUOUS_MODEL_NAMES
    elif ext in MODEL_EXTENSIONS:
        fmt, confidence = MODEL_EXTENSIONS[ext], 0.85
        evidence = [f"extension {ext} is a model format ({fmt})"]
        unambiguous = ext in UNAMBIGUOUS_MODEL_EXTENSIONS
    elif ext in AMBIGUOUS_EXTENSIONS:
        fmt, confidence = AMBIGUOUS_EXTENSIONS[ext], 0.3
        evidence = [f"extension {ext} is used by models and by other files"]
        archive = fmt == ModelFormat.ARCHIVE
        # "model" alone on an archive is no sign (a data model, a car model, the app of a
        # container image): an archive needs another word, or a model folder, to pass.
        only_model_word = archive and not _NAME_HINTS.search(lower.replace("model", " "))
        named = bool(_NAME_HINTS.search(lower)) and not only_model_word
        if named:
            confidence += 0.25
            evidence.append("the name reads like a model or checkpoint")
            if fmt == ModelFormat.UNKNOWN:
                fmt = next((hinted for pattern, hinted in _FORMAT_HINTS
                            if pattern.search(lower)), fmt)
        elif ext in _LIBRARY_EXTENSIONS and _LIBRARY_WORDS.search(lower):
            named = True
            confidence += 0.25
            word = _LIBRARY_WORDS.search(lower)
            evidence.append(f"the name carries a model library or architecture word "
                            f"('{word.group(0) if word else ''}')")
        elif only_model_word and "model" in lower:
            evidence.append("'model' in an archive's name is not enough on its own")
        if archive and _CONTAINER_WORDS.search(lower):
            confidence -= 0.15
            evidence.append("the name reads like a container image")
        path_hint = False
        if directory and (_PATH_HINTS.search(directory) or _CHECKPOINT_FOLDERS.search(directory)):
            path_hint = True
            confidence += 0.15
            evidence.append("the path is a model or artifact folder")
        elif directory and _NOT_MODEL_PATHS.search(directory):
            confidence -= 0.15
            evidence.append("the path is a firmware or driver folder")
        # A big archive is as often photos or a container image as weights: its size counts
        # only beside a name or folder that already points to a model.
        if file.size is not None and file.size >= _LARGE and (not archive or named
                                                               or path_hint):
            confidence += 0.1
            evidence.append(f"large binary ({_human(file.size)})")
    elif not ext and directory and _BLOB_FOLDERS.search(directory):
        fmt, confidence = None, 0.7
        evidence = ["a blob of a local model cache (Hugging Face or Ollama)"]
    elif ext in NON_MODEL_EXTENSIONS:
        disguised = _disguised(file, ext)
        if disguised is not None:
            return disguised
        return Detection.verdict(0.02, None, Method.METADATA,
                                 [f"extension {ext} is not a model format"])
    elif directory and _CHECKPOINT_FOLDERS.search(directory) and (file.size or 0) >= _LARGE:
        fmt, confidence = ModelFormat.UNKNOWN, 0.6
        evidence = [f"a large file ({_human(file.size or 0)}) with "
                    f"{'extension ' + ext if ext else 'no extension'} in a checkpoint folder"]
    elif not ext:  # no name claims no other type: not disguised
        return Detection.verdict(0.1, None, Method.METADATA,
                                 ["extension (none) is not a model format"])
    else:
        fmt, confidence = None, 0.1
        evidence = [f"extension {ext} is not a known model format"]
    if source_kind == SourceKind.REGISTRY:
        confidence = max(confidence + 0.1, 0.75)
        evidence.append("downloaded from a model registry")
    if confidence < 0.5:
        fmt = None  # not taken for a model: naming a model format would contradict that
    if unambiguous:
        unambiguous = _plausible(file, evidence)
    return Detection.verdict(min(confidence, METADATA_CEILING), fmt, Method.METADATA, evidence,
                             unambiguous=unambiguous)


def _directory(file: FileInfo) -> str:
    """The folder the file is in, with forward slashes ('' when the event names none)."""
    if file.directory:
        folder = file.directory.replace("\\", "/")
        return folder if folder.endswith("/") else folder + "/"
    path = (file.path or "").replace("\\", "/")
    return path[:path.rfind("/") + 1]


def _plausible(file: FileInfo, evidence: list[str]) -> bool:
    """Whether a model format's own name is borne out by the rest: a size a model can have,
    and bytes the tool could not name as something else. Says why when it is not."""
    if file.size is None:
        evidence.append("size unknown: the name alone is not enough to act on")
        return False
    if file.size < PLAUSIBLE_MODEL_BYTES:
        evidence.append(f"only {_human(file.size)}: too small to be the model its name says")
        return False
    by_bytes = (file.mime_type_by_bytes or "").lower()
    if by_bytes and by_bytes not in _OPAQUE_MIMES:
        evidence.append(f"the monitoring tool saw {by_bytes} in the bytes")
        return False
    return True


def _renamed_from(file: FileInfo) -> Detection | None:
    """The monitoring tool saw a rename from a model name to something else."""
    original = file.original_name
    if not original or original == file.name:
        return None
    fmt = format_from_name(original)
    if fmt is None:
        return None
    disguised = name_disguises(file.name)
    evidence = [f"renamed from '{original}' to '{file.name}'"]
    unambiguous = extension_of(original) in UNAMBIGUOUS_MODEL_EXTENSIONS or \
        base_name(original).lower() in UNAMBIGUOUS_MODEL_NAMES
    if unambiguous and file.size is not None and file.size < PLAUSIBLE_MODEL_BYTES:
        unambiguous = False
        evidence.append(f"only {_human(file.size)}: too small to be the model its name says")
    elif unambiguous and file.size is None:
        unambiguous = False
    return Detection.verdict(0.85, fmt, Method.METADATA, evidence, disguised=disguised,
                             unambiguous=unambiguous)


def _disguised(file: FileInfo, ext: str) -> Detection | None:
    """An everyday extension over opaque binary bytes, large enough to be weights."""
    by_bytes = (file.mime_type_by_bytes or "").lower()
    by_name_category = (file.category or "").lower()
    by_bytes_category = (file.category_by_bytes or "").lower()
    if ext in DOCUMENT_EXTENSIONS:
        # Office and OpenDocument files are zips, PDFs and newer images often come back as
        # octet-stream, and the categories then disagree: for a document only bytes that
        # name a model carrier (HDF5, a pickle, a tar, a zip under a PDF or image) say
        # otherwise.
        carrier = by_bytes in _CARRIER_MIMES or (
            by_bytes == "application/zip" and ext not in ZIPPED_DOCUMENT_EXTENSIONS)
        if not carrier:
            return None
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
