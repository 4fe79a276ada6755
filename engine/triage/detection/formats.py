"""Model formats, the Detection verdict (with the registered model it matches), and the
file-name tables both detectors share.

A Detection's `confidence` is how sure crownguard is that the file is a model (of `format`
when one is named); `is_model` is `confidence >= MODEL_THRESHOLD`. Keeping one number makes a
verdict from bytes, from metadata and from a registry fingerprint comparable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from .evidence import Evidence, EvidenceKind, Strength, strength_of

MODEL_THRESHOLD = 0.5


class ModelFormat(StrEnum):
    """Serialisation formats of trained models that crownguard recognises."""

    SAFETENSORS = "safetensors"
    GGUF = "gguf"
    ONNX = "onnx"
    PYTORCH = "pytorch"
    PICKLE = "pickle"
    JOBLIB = "joblib"
    KERAS = "keras"
    KERAS_H5 = "keras_h5"
    TF_SAVEDMODEL = "tf_savedmodel"
    TFLITE = "tflite"
    COREML = "coreml"
    NUMPY = "numpy"
    HDF5 = "hdf5"
    ARCHIVE = "archive"
    UNKNOWN = "unknown"


# The kinds of evidence are spelled once, in evidence.py; `Method` is their older name.
Method = EvidenceKind


@dataclass(frozen=True, slots=True)
class ModelMatch:
    """A registered artifact whose SHA-256 equals the file's."""

    registry: str
    model: str
    version: str
    path: str
    sensitivity: str | None
    size: int | None = None
    format: str | None = None

    def describe(self) -> str:
        tag = f", {self.sensitivity}" if self.sensitivity else ""
        return f"{self.model} v{self.version} ({self.registry}{tag}): {self.path}"

    def to_dict(self) -> dict[str, Any]:
        return {"registry": self.registry, "model": self.model, "version": self.version,
                "path": self.path, "sensitivity": self.sensitivity, "size": self.size,
                "format": self.format}


@dataclass(slots=True)
class Detection:
    """Is this file a model? With the format, a confidence and the evidence for it.

    Slotted, not frozen, for construction speed (see events.model); treat it as a value."""

    is_model: bool
    format: ModelFormat | None
    confidence: float
    method: Method
    evidence: tuple[str, ...] = ()
    disguised: bool = False
    match: ModelMatch | None = None
    details: dict[str, Any] = field(default_factory=dict)
    strength: Strength = Strength.WEAK

    @classmethod
    def verdict(cls, confidence: float, format: ModelFormat | None, method: EvidenceKind,
                evidence: list[str] | tuple[str, ...], *, disguised: bool = False,
                match: ModelMatch | None = None, details: dict[str, Any] | None = None,
                unambiguous: bool = False) -> Detection:
        """A verdict; its strength follows from the kind and confidence (evidence.strength_of),
        and `unambiguous` is the metadata detector's word that the name settles it."""
        confidence = round(1.0 if confidence > 1.0 else 0.0 if confidence < 0.0 else confidence,
                           3)
        is_model = confidence >= MODEL_THRESHOLD
        return cls(is_model, format, confidence, method, tuple(evidence), disguised, match,
                   {} if details is None else details,
                   strength_of(method, confidence, is_model, unambiguous=unambiguous))

    @property
    def evidence_kind(self) -> EvidenceKind:
        """How the model question was settled (the verdict's `method`)."""
        return self.method

    @property
    def summary(self) -> Evidence:
        """The kind, strength and confidence, as `risk.evidence` shows them."""
        return Evidence(self.method, self.strength, self.confidence)

    def to_dict(self) -> dict[str, Any]:
        return {"is_model": self.is_model,
                "format": None if self.format is None else str(self.format),
                "confidence": self.confidence, "method": str(self.method),
                "evidence_kind": str(self.method), "strength": str(self.strength),
                "evidence": list(self.evidence), "disguised": self.disguised,
                "match": None if self.match is None else self.match.to_dict(),
                "details": dict(self.details)}


# Extensions that name one model format and little else.
MODEL_EXTENSIONS: dict[str, ModelFormat] = {
    ".safetensors": ModelFormat.SAFETENSORS,
    ".gguf": ModelFormat.GGUF,
    ".ggml": ModelFormat.GGUF,
    ".onnx": ModelFormat.ONNX,
    ".ort": ModelFormat.ONNX,
    ".pt": ModelFormat.PYTORCH,
    ".pth": ModelFormat.PYTORCH,
    ".pt2": ModelFormat.PYTORCH,
    ".ckpt": ModelFormat.PYTORCH,
    ".mar": ModelFormat.PYTORCH,
    ".joblib": ModelFormat.JOBLIB,
    ".keras": ModelFormat.KERAS,
    ".tflite": ModelFormat.TFLITE,
    ".lite": ModelFormat.TFLITE,
    ".mlmodel": ModelFormat.COREML,
    ".mlpackage": ModelFormat.COREML,
    ".nemo": ModelFormat.ARCHIVE,
    ".pdparams": ModelFormat.PICKLE,
}

# Extensions that are a model format's own: with a plausible size, the name alone settles it
# (strong metadata). .joblib, .mar, .lite and .ort are models' too, but others use them.
UNAMBIGUOUS_MODEL_EXTENSIONS = frozenset({
    ".safetensors", ".gguf", ".ggml", ".onnx", ".pt", ".pth", ".pt2", ".ckpt", ".keras",
    ".tflite", ".mlmodel", ".mlpackage", ".pdparams", ".nemo"})
UNAMBIGUOUS_MODEL_NAMES = frozenset({"pytorch_model.bin", "tf_model.h5", "flax_model.msgpack",
                                     "saved_model.pb", "model.mlmodel"})

# Documents whose bytes a monitoring tool often reports as generic: Office Open XML and
# OpenDocument files are zip archives, PDFs are often `application/octet-stream`, images in
# newer formats are not recognised. They are documents unless the bytes name a model carrier.
DOCUMENT_EXTENSIONS = frozenset({
    ".docx", ".docm", ".dotx", ".xlsx", ".xlsm", ".xltx", ".xlsb", ".pptx", ".pptm", ".potx",
    ".ppsx", ".vsdx", ".odt", ".ods", ".odp", ".odg", ".odf", ".pdf",
    ".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".heic", ".heif", ".webp",
    ".svg", ".raw", ".cr2", ".nef", ".arw", ".dng"})
# Extensions whose files are documents stored as zips: a zip under their name is expected.
ZIPPED_DOCUMENT_EXTENSIONS = frozenset({
    ".docx", ".docm", ".dotx", ".xlsx", ".xlsm", ".xltx", ".xlsb", ".pptx", ".pptm", ".potx",
    ".ppsx", ".vsdx", ".odt", ".ods", ".odp", ".odg", ".odf"})

# Extensions that models use but so does much else; they need a second hint.
AMBIGUOUS_EXTENSIONS: dict[str, ModelFormat] = {
    ".bin": ModelFormat.UNKNOWN,
    ".pkl": ModelFormat.PICKLE,
    ".pickle": ModelFormat.PICKLE,
    ".h5": ModelFormat.HDF5,
    ".hdf5": ModelFormat.HDF5,
    ".npy": ModelFormat.NUMPY,
    ".npz": ModelFormat.NUMPY,
    ".pb": ModelFormat.TF_SAVEDMODEL,
    ".msgpack": ModelFormat.UNKNOWN,
    ".model": ModelFormat.UNKNOWN,
    ".weights": ModelFormat.UNKNOWN,
    ".tar": ModelFormat.ARCHIVE,
    ".tgz": ModelFormat.ARCHIVE,
    ".gz": ModelFormat.ARCHIVE,
    ".zip": ModelFormat.ARCHIVE,
    ".7z": ModelFormat.ARCHIVE,
    ".rar": ModelFormat.ARCHIVE,
    ".xz": ModelFormat.ARCHIVE,
    ".zst": ModelFormat.ARCHIVE,
}

# Extensions of everyday non-model files: a model under one of these names is disguised.
NON_MODEL_EXTENSIONS = frozenset({
    ".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".heic", ".webp", ".svg",
    ".mp3", ".wav", ".flac", ".m4a", ".mp4", ".mov", ".avi", ".mkv", ".webm",
    ".pdf", ".doc", ".docx", ".xls", ".xlsx", ".ppt", ".pptx", ".odt", ".ods", ".rtf",
    ".docm", ".dotx", ".xlsm", ".xltx", ".xlsb", ".pptm", ".potx", ".ppsx", ".vsdx", ".odp",
    ".odg", ".odf", ".heif", ".raw", ".cr2", ".nef", ".arw", ".dng",
    ".txt", ".md", ".csv", ".tsv", ".log", ".json", ".xml", ".html", ".htm", ".yaml", ".yml",
    ".ics", ".vcf", ".eml", ".exe", ".dll", ".dmg", ".iso", ".msi", ".apk", ".py", ".js",
})

# File names that are model artifacts whatever their extension says.
MODEL_FILE_NAMES: dict[str, ModelFormat] = {
    "pytorch_model.bin": ModelFormat.PYTORCH,
    "tf_model.h5": ModelFormat.KERAS_H5,
    "flax_model.msgpack": ModelFormat.UNKNOWN,
    "saved_model.pb": ModelFormat.TF_SAVEDMODEL,
    "saved_model.pbtxt": ModelFormat.TF_SAVEDMODEL,
    "model.mlmodel": ModelFormat.COREML,
    "variables.index": ModelFormat.TF_SAVEDMODEL,
}

# Files that sit beside a model in a registry but are not the model (MLflow, Hugging Face).
MODEL_COMPANION_NAMES = frozenset({
    "mlmodel", "conda.yaml", "python_env.yaml", "requirements.txt", "input_example.json",
    "serving_input_example.json", "config.json", "generation_config.json", "tokenizer.json",
    "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "vocab.json",
    "merges.txt", "readme.md", "license", "model_index.json", "registered_model_meta",
    "tokenizer.model", "spiece.model", "sentencepiece.model", "sentencepiece.bpe.model",
    "spm.model", "bpe.model", "preprocessor_config.json", "added_tokens.json",
})


def extension_of(name: str) -> str:
    """The last extension, lower-cased, with its dot ('' when there is none)."""
    base = name.rsplit("/", 1)[-1].rsplit("\\", 1)[-1]
    dot = base.rfind(".")
    return base[dot:].lower() if dot > 0 else ""


def base_name(path: str) -> str:
    return path.rsplit("/", 1)[-1].rsplit("\\", 1)[-1]


def name_disguises(name: str | None) -> bool:
    """Whether a file name claims an everyday non-model type."""
    return bool(name) and extension_of(name or "") in NON_MODEL_EXTENSIONS


def format_from_name(name: str) -> ModelFormat | None:
    """The model format a file name alone points to, if it points to one."""
    lower = base_name(name).lower()
    if lower in MODEL_FILE_NAMES:
        return MODEL_FILE_NAMES[lower]
    ext = extension_of(lower)
    return MODEL_EXTENSIONS.get(ext)
