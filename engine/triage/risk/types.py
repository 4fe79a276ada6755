"""Risk's value types: the level, one reason and its weight, the score.

Reason and RiskScore are slotted but not frozen, for speed (see events.model); treat them as
values.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ..detection.evidence import Evidence


class RiskLevel(StrEnum):
    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


@dataclass(slots=True)
class Reason:
    indicator: str
    weight: float
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"indicator": self.indicator, "weight": self.weight, "detail": self.detail}


Packed = tuple[int, str, tuple[tuple[str, float, str], ...], tuple[str, str, float] | None]


def _evidence(risk: RiskScore) -> dict[str, Any] | None:
    return None if risk.evidence is None else risk.evidence.to_dict()


@dataclass(slots=True)
class RiskScore:
    score: int
    level: RiskLevel
    reasons: tuple[Reason, ...]
    evidence: Evidence | None = None   # what the model verdict rests on (risk.evidence)

    def packed(self) -> Packed:
        """The score as plain tuples of text and numbers, which the garbage collector stops
        tracking: triage keeps the scores of the last 100,000 events, and as objects they
        cost more in collections than scoring them did."""
        return self.score, str(self.level), tuple(
            [(r.indicator, r.weight, r.detail) for r in self.reasons]), \
            None if self.evidence is None else self.evidence.packed()

    @classmethod
    def unpacked(cls, packed: Packed) -> RiskScore:
        score, level, reasons, evidence = packed
        return cls(score, LEVELS[level], tuple(Reason(*r) for r in reasons),
                   None if evidence is None else Evidence.unpacked(evidence))

    @property
    def indicators(self) -> list[str]:
        return [r.indicator for r in self.reasons]

    def to_dict(self, *, only: Collection[str] | None = None) -> dict[str, Any]:
        """The score as playbooks and routing see it under `risk`; with `only`, just those
        keys (routing builds what the triggers read)."""
        if only is not None:
            return {key: _RISK_PARTS[key](self) for key in only if key in _RISK_PARTS}
        return {"score": self.score, "level": str(self.level),
                "reasons": [r.to_dict() for r in self.reasons], "indicators": self.indicators,
                "evidence": _evidence(self)}

    def summary(self) -> str:
        parts = [f"{r.detail} ({'+' if r.weight >= 0 else ''}{format_weight(r.weight)})"
                 for r in self.reasons]
        return f"{self.score} {self.level}: " + ("; ".join(parts) if parts else "no indicator")


_RISK_PARTS: dict[str, Callable[[RiskScore], Any]] = {
    "score": lambda r: r.score, "level": lambda r: str(r.level),
    "reasons": lambda r: [reason.to_dict() for reason in r.reasons],
    "indicators": lambda r: r.indicators, "evidence": lambda r: _evidence(r),
}
# The level of each spelling, and each level's rank (info 0 ... critical 4), from the enum.
LEVELS: dict[str, RiskLevel] = {str(level): level for level in RiskLevel}
LEVEL_RANK: dict[str, int] = {str(level): rank for rank, level in enumerate(RiskLevel)}


def format_weight(value: float) -> str:
    """A weight as a reason shows it: 20, 7.5."""
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"
