"""Contextual risk scoring of model-movement events.

    policy = load_policy(path_or_None)
    risk = score(event, detection, policy, history)   # RiskScore(score, level, reasons)
    risk.to_dict() -> {"score", "level", "reasons": [{indicator, weight, detail}], "indicators"}
"""

from __future__ import annotations

from ..policy import HighRiskPeriod, Policy, default_policy_data, load_policy, policy_from_mapping
from .history import History, HistoryFacts, InMemoryHistory, model_key
from .scoring import score
from .types import LEVEL_RANK, Reason, RiskLevel, RiskScore

__all__ = [
    "LEVEL_RANK",
    "HighRiskPeriod",
    "History",
    "HistoryFacts",
    "InMemoryHistory",
    "Policy",
    "Reason",
    "RiskLevel",
    "RiskScore",
    "default_policy_data",
    "load_policy",
    "model_key",
    "policy_from_mapping",
    "score",
]
