"""Is this file a model? From a registry fingerprint, from its bytes, or from metadata.

    detect(event_or_file, content=None, index=None) -> Detection
    detect_content(path_or_bytes_or_fileobj, name=None, size=None) -> Detection
    detect_metadata(file_info, source_kind) -> Detection

Each verdict says how it was settled (`evidence_kind`: registry fingerprint, structural
fingerprint, content, metadata; spelled once in evidence.EvidenceKind) and how strongly
(`strength`: strong, moderate = a suspected model, weak = not a model). A detector sets the
kind by passing it to `Detection.verdict(confidence, format, EvidenceKind.CONTENT, ...)`;
the strength follows (evidence.strength_of).

Content detection reads at most the first 64 KiB plus, for zips, the end-of-central-directory
record and up to 1 MiB of central directory: a 10 GB file costs no more than a 10 KB one.
Nothing is ever unpickled, imported or executed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..events.model import FileInfo, ModelMovementEvent, SourceKind
from .content import detect_content
from .evidence import Evidence, EvidenceKind, Strength, strength_of
from .formats import MODEL_THRESHOLD, Detection, Method, ModelFormat, name_disguises
from .metadata import detect_metadata
from .window import HEAD_BYTES, READ_BUDGET, ContentSource

if TYPE_CHECKING:
    from .fingerprints import FingerprintIndex

__all__ = [
    "HEAD_BYTES",
    "MODEL_THRESHOLD",
    "READ_BUDGET",
    "ContentSource",
    "Detection",
    "Evidence",
    "EvidenceKind",
    "Method",
    "ModelFormat",
    "Strength",
    "detect",
    "detect_content",
    "detect_metadata",
    "strength_of",
]

_VAGUE = (None, ModelFormat.UNKNOWN, ModelFormat.ARCHIVE)


def detect(target: ModelMovementEvent | FileInfo, *, content: ContentSource | None = None,
           index: FingerprintIndex | None = None, size: int | None = None) -> Detection:
    """The verdict for an event's file: fingerprint first, then content, then metadata.

    A SHA-256 found in the fingerprint index is certain (confidence 1.0) and names the
    registered model; otherwise the bytes decide when `content` is given, and the metadata
    when it is not.
    """
    if isinstance(target, ModelMovementEvent):
        file, source_kind = target.file, target.source.kind
    else:
        file, source_kind = target, SourceKind.UNKNOWN
    start = _position(content)
    if content is not None:
        base = detect_content(content, name=file.name, size=size if size is not None
                              else None)
        base = _note_name_disagreement(base, file)
    else:
        base = detect_metadata(file, source_kind)
    match = index.best_match(file.sha256) if index is not None and file.sha256 else None
    if match is None:
        if index is not None and content is not None and base.format in _TENSOR_FORMATS:
            return _structural(base, file, index, content, start)
        return base
    fmt = base.format if base.format not in _VAGUE else None
    if fmt is None and match.format:
        fmt = ModelFormat(match.format)
    evidence = [f"SHA-256 matches registered {match.describe()}", *base.evidence]
    return Detection.verdict(1.0, fmt, Method.FINGERPRINT, evidence,
                             disguised=base.disguised or name_disguises(file.name), match=match,
                             details=base.details)


_TENSOR_FORMATS = (ModelFormat.SAFETENSORS, ModelFormat.GGUF, ModelFormat.PYTORCH,
                   ModelFormat.ONNX, ModelFormat.NUMPY)


def _position(content: ContentSource | None) -> int | None:
    seekable = getattr(content, "seekable", None)
    if seekable is None or isinstance(content, (bytes, bytearray, memoryview)) or not seekable():
        return None
    return int(content.tell())  # type: ignore[union-attr]


def _structural(base: Detection, file: FileInfo, index: FingerprintIndex,
                content: ContentSource, start: int | None) -> Detection:
    """A file whose hash is new but whose tensors are a registered model's (structure.py)."""
    from .structure import fingerprint_content

    if not index.has_structures():
        return base
    if start is not None:
        content.seek(start)  # type: ignore[union-attr]
    try:
        fingerprint = fingerprint_content(content, file.name)
    except OSError:
        return base
    found = index.match_structure(fingerprint)
    if found is None:
        return base
    evidence = [f"tensor structure: {found.describe()}", *base.evidence]
    return Detection.verdict(0.99 if found.complete else 0.95, base.format,
                             EvidenceKind.STRUCTURAL_FINGERPRINT,
                             evidence, disguised=base.disguised or name_disguises(file.name),
                             match=found.to_model_match(),
                             details={**base.details, "structure": found.to_dict()})


def _note_name_disagreement(detection: Detection, file: FileInfo) -> Detection:
    """Say so when the name promises a model format that the bytes do not bear out."""
    if detection.is_model:
        return detection
    claimed = detect_metadata(file)
    if not claimed.is_model:
        return detection
    evidence = [*detection.evidence,
                f"the name '{file.name}' suggests a model, but the content does not"]
    return Detection.verdict(detection.confidence, detection.format, detection.method, evidence,
                             details=detection.details)
