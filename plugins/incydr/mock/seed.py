"""The tenant the Incydr mock starts with: actors, watchlists, sessions, alerts, file events.

It tells the shipped samples' story: Dana (departing, on the DEPARTING_EMPLOYEE watchlist with
a departure date) copies a fine-tuned model to a USB drive; Priya (in a department the
HIGH_IMPACT_EMPLOYEE watchlist includes) syncs a quantised model to her personal Google Drive;
Marco uploads a LoRA adapter to a generative-AI site; Sam downloads a CRM CSV (not a model).
Field names are Incydr's (camelCase, epoch milliseconds where the API uses them).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .search import parse_time

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
TENANT_ID = "c4b5e830-4242-4242-4242-345664cfbb33"

# The API client the mock accepts out of the box (test credentials, not a real secret).
DEFAULT_CLIENT_ID = "key-6f3b2a1c-crownguard"
DEFAULT_CLIENT_SECRET = "mock-incydr-secret-Qm27xV"  # noqa: S105
ALL_PERMISSIONS = frozenset({
    "file-events:read", "sessions:read", "sessions:write", "alerts:read",
    "watchlists:read", "watchlists:write", "actors:read", "actors:write", "files:read",
})

DANA, PRIYA, MARCO, SAM, LENA = ("4251230987654321001", "4251230987654321002",
                                 "4251230987654321003", "4251230987654321004",
                                 "4251230987654321005")
DEPARTING_LIST = "6a1f0c52-3d1b-4e0a-9b6f-2c7d8e9f0a11"
HIGH_IMPACT_LIST = "0b7e4d21-8c5f-4a3e-b1d9-5e6f7a8b9c02"


@dataclass
class ApiClient:
    """An Incydr API client: the credentials of the OAuth grant and what it may do."""

    client_id: str
    secret: str
    permissions: frozenset[str] = ALL_PERMISSIONS


@dataclass
class Watchlist:
    watchlist_id: str
    list_type: str
    title: str | None = None
    description: str | None = None
    included_actors: dict[str, int] = field(default_factory=dict)  # actor id -> added (ms)
    excluded_actors: dict[str, int] = field(default_factory=dict)
    included_departments: dict[str, int] = field(default_factory=dict)


def load_samples() -> dict[str, dict[str, Any]]:
    """The shipped sample file events, by file stem."""
    return {path.stem: json.loads(path.read_text(encoding="utf-8"))
            for path in sorted(SAMPLES.glob("*.json"))}


def _actor(actor_id: str, email: str, first: str, last: str, department: str, title: str,
           country: str, locality: str, region: str | None, end_date: str | None = None,
           manager: str | None = LENA, division: str = "Engineering") -> dict[str, Any]:
    return {
        "actorId": actor_id, "name": email, "firstName": first, "lastName": last,
        "alternateNames": [email.split("@")[0]], "active": True, "inScope": True,
        "department": department, "division": division, "title": title,
        "employeeType": "full-time", "country": country,
        "region": region, "locality": locality, "managerActorId": manager, "notes": None,
        "parentActorId": None, "startDate": "2021-02-01", "endDate": end_date,
    }


def actors() -> dict[str, dict[str, Any]]:
    items = [
        _actor(DANA, "dana.whitfield@example.com", "Dana", "Whitfield", "ML Platform",
               "Staff ML Engineer", "United States", "Minneapolis", "Minnesota",
               end_date="2026-12-18"),
        _actor(PRIYA, "priya.raman@example.com", "Priya", "Raman", "ML Research",
               "Senior Research Scientist", "India", "Bengaluru", "Karnataka"),
        _actor(MARCO, "marco.bianchi@example.com", "Marco", "Bianchi", "Claims Analytics",
               "Data Scientist", "Italy", "Milan", "Lombardy"),
        _actor(SAM, "sam.okafor@example.com", "Sam", "Okafor", "Sales Operations",
               "Sales Operations Analyst", "United Kingdom", "London", None, division="Revenue"),
        _actor(LENA, "lena.hoffmann@example.com", "Lena", "Hoffmann", "ML Platform",
               "Director of ML Platform", "Germany", "Berlin", "Berlin", manager=None),
    ]
    return {a["actorId"]: a for a in items}


def watchlists() -> dict[str, Watchlist]:
    departing = Watchlist(DEPARTING_LIST, "DEPARTING_EMPLOYEE")
    departing.included_actors[DANA] = 1794009600000
    high_impact = Watchlist(HIGH_IMPACT_LIST, "HIGH_IMPACT_EMPLOYEE")
    high_impact.included_departments["ML Research"] = 1790035200000
    return {w.watchlist_id: w for w in (departing, high_impact)}


def _session(session_id: str, actor: dict[str, Any], event: dict[str, Any], alert_id: str,
             rule: str, severity: int, indicators: list[dict[str, Any]], summary: str,
             context: str) -> dict[str, Any]:
    at = int(event["_epoch_ms"])
    counts = {"criticalEvents": 0, "highEvents": 0, "moderateEvents": 0, "lowEvents": 0,
              "noRiskEvents": 0}
    key = {4: "criticalEvents", 3: "highEvents", 2: "moderateEvents", 1: "lowEvents"}.get(
        severity, "noRiskEvents")
    counts[key] = 1
    return {
        "sessionId": session_id, "tenantId": TENANT_ID, "actorId": actor["actorId"],
        "actorName": actor["name"], "userId": event["user"]["id"], "type": "STANDARD",
        "beginTime": at - 60_000, "endTime": at, "firstObserved": at + 90_000,
        "lastUpdated": at + 120_000, "exfiltrationSummary": summary,
        "contextSummary": context, **counts,
        "riskIndicators": [{**i, "eventCount": 1} for i in indicators],
        "triggeredAlerts": [{"alertId": alert_id, "ruleId": f"rule-{alert_id[:8]}",
                             "ruleName": rule, "lessonId": None}],
        "scores": [{"score": event["risk"]["score"], "severity": severity,
                    "sourceTimestamp": at + 90_000}],
        "states": [{"state": "OPEN", "stateV2": "OPEN", "sourceTimestamp": at + 90_000,
                    "userId": None}],
        "notes": [],
        "contentInspectionResults": {"detectedOnAlerts": []},
    }


def _observation(event: dict[str, Any], at: int) -> dict[str, Any]:
    """The alert's observation: Incydr rolls the file activity into one JSON string `data`."""
    file, destination = event["file"], event["destination"]
    exposure = {"removable-media-created": "RemovableMedia",
                "sync-app-created": "CloudStorage"}.get(event["event"]["action"],
                                                         "ApplicationRead")
    data: dict[str, Any] = {
        "type$": "OBSERVED_ENDPOINT_ACTIVITY", "id": f"obs-{event['event']['id'][-12:]}",
        "sources": ["Endpoint"], "exposureTypes": [exposure],
        "firstActivityAt": event["@timestamp"], "lastActivityAt": event["@timestamp"],
        "fileCount": 1, "totalFileSize": file["sizeInBytes"],
        "fileCategories": [{"type$": "OBSERVED_FILE_CATEGORY", "category": file["category"],
                            "fileCount": 1, "totalFileSize": file["sizeInBytes"],
                            "isSignificant": True}],
        "files": [{"type$": "OBSERVED_FILE", "eventId": event["event"]["id"],
                   "path": file["directory"], "name": file["name"],
                   "category": file["category"], "size": file["sizeInBytes"]}],
        "syncToServices": ["GoogleDrive"] if exposure == "CloudStorage" else [],
    }
    if exposure == "ApplicationRead":
        data["appReadDetails"] = [{"destinationCategory": destination["category"],
                                   "destinationName": destination["name"]}]
    return {"id": data["id"], "observedAt": _iso(at), "lastObservedAt": _iso(at),
            "type": "FedEndpointExfiltration", "data": json.dumps(data)}


def _alert(alert_id: str, session: dict[str, Any], event: dict[str, Any], rule: str,
           risk_severity: str, watchlist_refs: list[dict[str, Any]]) -> dict[str, Any]:
    created = session["firstObserved"]
    return {
        "tenantId": TENANT_ID, "type": "FED_ENDPOINT_EXFILTRATION", "id": alert_id,
        "createdAt": _iso(created), "state": "OPEN", "stateLastModifiedBy": None,
        "stateLastModifiedAt": _iso(created), "name": rule,
        "description": "Model-weight files leaving through an unsanctioned destination.",
        "actor": session["actorName"], "actorId": session["actorId"], "target": "N/A",
        "severity": "HIGH", "riskSeverity": risk_severity, "ruleId": f"rule-{alert_id[:8]}",
        "watchlists": watchlist_refs, "observations": [_observation(event, session["endTime"])],
        "note": None,
    }


def _iso(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).isoformat(
        timespec="milliseconds").replace("+00:00", "Z")


def sessions_and_alerts(samples: dict[str, dict[str, Any]], people: dict[str, dict[str, Any]]
                        ) -> tuple[dict[str, dict[str, Any]], dict[str, list[str]],
                                   dict[str, dict[str, Any]]]:
    """Sessions (with the event ids each covers) and alerts for the three model samples."""
    def timed(name: str) -> dict[str, Any]:
        event = copy.deepcopy(samples[name])
        event["_epoch_ms"] = int(parse_time(event["@timestamp"]).timestamp() * 1000)
        return event

    usb, cloud, genai = (timed("model-to-removable-media"), timed("model-to-personal-cloud"),
                         timed("model-upload-genai-browser"))
    specs = [
        ("e1a0c3f5-7b9d-4c2e-8f1a-3b5d7f9e1c21", "a7c41e02-5d3b-4f6a-9e8c-1b2d3f4a5c61", DANA,
         usb, "Departing employee: removable media", 4, "CRITICAL",
         "1 file (16.1 GB) copied to removable media",
         "Actor is on the Departing Employee watchlist",
         [{"id": DEPARTING_LIST, "name": "Departing Employee", "type": "DEPARTING_EMPLOYEE",
           "isSignificant": True}]),
        ("b2d4f6a8-1c3e-4a5b-9d7f-2e4a6c8e0b32", "c93e5a17-2b4d-4c6e-8a0f-3d5b7e9f1a72", PRIYA,
         cloud, "Personal cloud sync of large binaries", 3, "HIGH",
         "1 file (4.4 GB) synced to a personal Google Drive account",
         "Actor is on the High Impact Employee watchlist",
         [{"id": HIGH_IMPACT_LIST, "name": "High Impact Employee",
           "type": "HIGH_IMPACT_EMPLOYEE", "isSignificant": False}]),
        ("f3a5c7e9-2d4f-4b6a-8c0e-4f6b8d0a2c43", "d04f6b28-3c5e-4d7f-9b1a-4e6c8f0a2b83", MARCO,
         genai, "Uploads to generative AI tools", 2, "MODERATE",
         "1 file (167.8 MB) uploaded to ChatGPT", "First use of this destination", []),
    ]
    sessions: dict[str, dict[str, Any]] = {}
    session_events: dict[str, list[str]] = {}
    alerts: dict[str, dict[str, Any]] = {}
    for sid, aid, actor_id, event, rule, sev, risk_sev, summary, context, refs in specs:
        indicators = [{"id": f"ri-{i['name'].lower().replace(' ', '-')}", "name": i["name"],
                       "weight": i["weight"]} for i in event["risk"]["indicators"]]
        sessions[sid] = _session(sid, people[actor_id], event, aid, rule, sev, indicators,
                                 summary, context)
        session_events[sid] = [event["event"]["id"]]
        alerts[aid] = _alert(aid, sessions[sid], event, rule, risk_sev, refs)
    return sessions, session_events, alerts
