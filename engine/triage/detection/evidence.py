"""How the model question was settled, and how strongly: what a verdict allows a playbook to do.

Every detector spells its kind from here, once:

    EvidenceKind.REGISTRY_FINGERPRINT    the SHA-256 of a registered model artifact
    EvidenceKind.STRUCTURAL_FINGERPRINT  the structure of a registered model (tensor names,
                                         shapes, dtypes) recognised in the bytes
    EvidenceKind.CONTENT                 the bytes, read from the event, a path or the source
    EvidenceKind.METADATA                what the event says: name, size, folder, MIME type

and the strength follows from the kind, the confidence and, for metadata, whether the name is
unambiguous (see `strength_of`). The shipped playbooks contain a host or suspend an account
only on `strong` evidence; a `moderate` one (a suspected model) gets the reversible path.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class EvidenceKind(StrEnum):
    """Where a verdict came from, strongest first."""

    REGISTRY_FINGERPRINT = "registry_fingerprint"
    STRUCTURAL_FINGERPRINT = "structural_fingerprint"
    CONTENT = "content"
    METADATA = "metadata"
    # The name this member had when there was one fingerprint kind (code that says
    # Method.FINGERPRINT keeps working; the value is the registry one).
    FINGERPRINT = "registry_fingerprint"


class Strength(StrEnum):
    """How strongly the evidence says the file is a model."""

    STRONG = "strong"        # settled: a fingerprint, the bytes, or an unambiguous name and size
    MODERATE = "moderate"    # suspected: metadata points to a model, nothing settles it
    WEAK = "weak"            # not taken for a model (is_model is false)


# Content and structural verdicts at or above this are strong; below it (a NumPy array of
# floats, a pickle of bare arrays: weights or data) they are only moderate.
STRONG_CONTENT_CONFIDENCE = 0.8
# The fewest bytes a model in a model format's own extension plausibly has: a smaller
# `weights.safetensors` is a stub, a placeholder or a test file, not enough to contain a host.
PLAUSIBLE_MODEL_BYTES = 4096


def strength_of(kind: EvidenceKind, confidence: float, is_model: bool, *,
                unambiguous: bool = False) -> Strength:
    """The strength of a verdict. `unambiguous` is the metadata detector's word that the name
    alone settles it (a model format's own extension with a plausible size)."""
    if not is_model:
        return Strength.WEAK
    if kind is EvidenceKind.REGISTRY_FINGERPRINT:
        return Strength.STRONG
    if kind is EvidenceKind.METADATA:
        return Strength.STRONG if unambiguous else Strength.MODERATE
    return Strength.STRONG if confidence >= STRONG_CONTENT_CONFIDENCE else Strength.MODERATE


@dataclass(frozen=True, slots=True)
class Evidence:
    """The evidence summary playbooks and policy triggers read as `risk.evidence`."""

    kind: EvidenceKind
    strength: Strength
    confidence: float

    @property
    def strong(self) -> bool:
        return self.strength is Strength.STRONG

    @property
    def suspected(self) -> bool:
        return self.strength is Strength.MODERATE

    def describe(self) -> str:
        """One line for a ticket: what the verdict rests on and what it allows."""
        words = {EvidenceKind.REGISTRY_FINGERPRINT: "a registry fingerprint",
                 EvidenceKind.STRUCTURAL_FINGERPRINT: "a structural fingerprint",
                 EvidenceKind.CONTENT: "the file's content",
                 EvidenceKind.METADATA: "metadata only (name, size, folder, MIME type)"}
        if self.strength is Strength.STRONG:
            return f"a model by {words[self.kind]} (strong, confidence {self.confidence:.2f})"
        if self.strength is Strength.MODERATE:
            return (f"a suspected model, by {words[self.kind]} (moderate, confidence "
                    f"{self.confidence:.2f}): not enough to contain a host or suspend an "
                    "account")
        return f"not taken for a model, by {words[self.kind]} (confidence {self.confidence:.2f})"

    def packed(self) -> tuple[str, str, float]:
        return str(self.kind), str(self.strength), self.confidence

    @classmethod
    def unpacked(cls, packed: tuple[str, str, float]) -> Evidence:
        kind, strength, confidence = packed
        return cls(EvidenceKind(kind), Strength(strength), confidence)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": str(self.kind), "strength": str(self.strength), "strong": self.strong,
                "suspected": self.suspected, "confidence": self.confidence,
                "summary": self.describe()}
