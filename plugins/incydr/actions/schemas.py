"""JSON Schema pieces the Incydr actions share, and the vendor vocabularies they accept."""

from __future__ import annotations

from typing import Any

from ..query import DURATION

# States a person may set (OPEN_NEW_DATA is Incydr's own, when new activity reopens a session).
SETTABLE_STATES = ["OPEN", "IN_PROGRESS", "CLOSED", "CLOSED_TP", "CLOSED_TP_BENIGN", "CLOSED_FP"]
SESSION_STATES = [*SETTABLE_STATES, "OPEN_NEW_DATA"]
SEVERITY_NAMES = {0: "NO_RISK", 1: "LOW", 2: "MODERATE", 3: "HIGH", 4: "CRITICAL"}
WATCHLIST_TYPES = ["DEPARTING_EMPLOYEE", "FLIGHT_RISK", "HIGH_IMPACT_EMPLOYEE",
                   "ELEVATED_ACCESS_PRIVILEGES", "PERFORMANCE_CONCERNS",
                   "POOR_SECURITY_PRACTICES", "SUSPICIOUS_SYSTEM_ACTIVITY", "NEW_EMPLOYEE",
                   "CONTRACT_EMPLOYEE"]

USER: dict[str, Any] = {
    "type": "string", "minLength": 1, "maxLength": 320,
    "description": "The person: e-mail/username as Incydr knows it, or the numeric actor id.",
}
ID: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": 128,
                      "pattern": "^[A-Za-z0-9_.:-]+$"}
DATE: dict[str, Any] = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$",
                        "description": "A date, yyyy-MM-dd."}
TIMESTAMP: dict[str, Any] = {
    "type": "string", "minLength": 10, "maxLength": 40,
    "description": "ISO 8601 date or date-time; without a zone it is UTC.",
}
WITHIN_LAST: dict[str, Any] = {
    "type": "string", "pattern": DURATION,
    "description": "ISO 8601 duration back from now (P30D, PT12H).",
}
WATCHLIST_TYPE: dict[str, Any] = {"enum": WATCHLIST_TYPES,
                                  "description": "Which watchlist, by type."}
NULLABLE_STRING: dict[str, Any] = {"type": ["string", "null"]}
NULLABLE_INT: dict[str, Any] = {"type": ["integer", "null"]}
OBJECTS: dict[str, Any] = {"type": "array", "items": {"type": "object"}}

PAGED_OUTPUT: dict[str, Any] = {
    "returned": {"type": "integer", "minimum": 0},
    "total_count": NULLABLE_INT,
    "truncated": {"type": "boolean"},
    "pages": {"type": "integer", "minimum": 0},
}

SESSION_SUMMARY: dict[str, Any] = {
    "type": "object",
    "required": ["session_id", "actor_id", "state", "severity", "score", "alert_ids"],
    "properties": {
        "session_id": {"type": "string"},
        "actor_id": NULLABLE_STRING,
        "actor_name": NULLABLE_STRING,
        "state": {"type": "string"},
        "severity": {"type": "integer", "minimum": 0, "maximum": 4},
        "severity_name": {"type": "string"},
        "score": {"type": "integer"},
        "alert_ids": {"type": "array", "items": {"type": "string"}},
        "begin_time": NULLABLE_INT,
        "end_time": NULLABLE_INT,
        "exfiltration_summary": NULLABLE_STRING,
        "context_summary": NULLABLE_STRING,
    },
}


def session_summary(session: dict[str, Any]) -> dict[str, Any]:
    """The facts a playbook branches on, from an Incydr session (latest state and score)."""
    states = session.get("states") or []
    scores = session.get("scores") or []
    last_state = states[-1] if states else {}
    last_score = scores[-1] if scores else {}
    severity = int(last_score.get("severity") or 0)
    return {
        "session_id": str(session.get("sessionId") or ""),
        "actor_id": session.get("actorId"),
        "actor_name": session.get("actorName"),
        "state": str(last_state.get("stateV2") or last_state.get("state") or "OPEN"),
        "severity": severity,
        "severity_name": SEVERITY_NAMES.get(severity, str(severity)),
        "score": int(last_score.get("score") or 0),
        "alert_ids": [str(a.get("alertId")) for a in session.get("triggeredAlerts") or []
                      if a.get("alertId")],
        "begin_time": session.get("beginTime"),
        "end_time": session.get("endTime"),
        "exfiltration_summary": session.get("exfiltrationSummary"),
        "context_summary": session.get("contextSummary"),
    }
