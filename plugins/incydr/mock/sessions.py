"""Sessions (`/v1/sessions`, page_number/page_size paging) and the older alerts API.

A parameter Incydr would not take (`has_alerts` not "true"/"false", an unknown `order_by`,
`sort_direction`, `state` or `severity`, a page size past 50) is a 400 with Incydr's error
body; a 429 with Retry-After is an injected fault (`inject("status", status=429, ...)`).
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

from werkzeug import Request, Response

from crownguard.engine import route

from .base import IncydrMockBase, iso_ms
from .search import parse_time

SESSION_STATES = ("OPEN", "IN_PROGRESS", "CLOSED", "CLOSED_TP", "CLOSED_TP_BENIGN",
                  "CLOSED_FP", "OPEN_NEW_DATA")
MAX_SESSION_PAGE_SIZE = 50
MAX_NOTE_LENGTH = 2000
MAX_IDS = 100
SORT_KEYS = ("end_time", "score")
SORT_DIRECTIONS = ("asc", "desc")
SEVERITIES = ("0", "1", "2", "3", "4")
_SEVERITY_KEYS = {4: "criticalEvents", 3: "highEvents", 2: "moderateEvents", 1: "lowEvents",
                  0: "noRiskEvents"}
# The deprecated coarse `state` kept beside the precise `stateV2`, and what alerts show.
COARSE_STATE = {"OPEN": "OPEN", "OPEN_NEW_DATA": "OPEN", "IN_PROGRESS": "IN_PROGRESS"}
ALERT_STATE = {"OPEN": "OPEN", "OPEN_NEW_DATA": "OPEN", "IN_PROGRESS": "IN_PROGRESS"}


def current_state(session: dict[str, Any]) -> str:
    states = session.get("states") or []
    return str(states[-1].get("stateV2") or states[-1].get("state")) if states else "OPEN"


def current_severity(session: dict[str, Any]) -> int:
    scores = session.get("scores") or []
    return int(scores[-1].get("severity") or 0) if scores else 0


def _int_arg(request: Request, name: str, default: int | None) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    return int(float(raw))  # the SDK sends epoch ms as floats ("1795211232381.0")


class SessionRoutes(IncydrMockBase):
    """Sessions, their events, state changes and notes; alert details."""

    @route("GET", "/v1/sessions")
    def list_sessions(self, request: Request) -> Any:
        caller = self.caller(request, "sessions:read")
        if isinstance(caller, Response):
            return caller
        try:
            number = _int_arg(request, "page_number", 0) or 0
            size = _int_arg(request, "page_size", MAX_SESSION_PAGE_SIZE) or 0
            after = _int_arg(request, "on_or_after", None)
            before = _int_arg(request, "before", None)
        except ValueError:
            return self.error(400, "page_number, page_size, on_or_after and before must be "
                                   "integers")
        if not 1 <= size <= MAX_SESSION_PAGE_SIZE or number < 0:
            return self.error(400, f"page_size must be between 1 and {MAX_SESSION_PAGE_SIZE} "
                                   "and page_number at least 0")
        refused = _bad_parameter(request)
        if refused:
            return self.error(400, refused)
        found = [s for s in self.sessions.values()
                 if self._session_matches(s, request, after, before)]
        order = request.args.get("order_by") or "end_time"
        descending = (request.args.get("sort_direction") or "desc").lower() == "desc"
        key = ((lambda s: (s["scores"][-1]["score"] if s["scores"] else 0, s["sessionId"]))
               if order == "score" else (lambda s: (s["endTime"], s["sessionId"])))
        found.sort(key=key, reverse=descending)
        page = found[number * size:(number + 1) * size]
        return {"items": copy.deepcopy(page), "totalCount": len(found)}

    def _session_matches(self, session: dict[str, Any], request: Request, after: int | None,
                         before: int | None) -> bool:
        args = request.args
        if args.get("actor_id") and session["actorId"] != args["actor_id"]:
            return False
        if after is not None and session["beginTime"] < after:
            return False
        if before is not None and session["beginTime"] >= before:
            return False
        if args.get("type") and session["type"] != args["type"]:
            return False
        has_alerts = args.get("has_alerts")
        if has_alerts in ("true", "false") and bool(session["triggeredAlerts"]) != (
                has_alerts == "true"):
            return False
        states = args.getlist("state")
        if states and current_state(session) not in states:
            return False
        severities = args.getlist("severity")
        if severities and str(current_severity(session)) not in severities:
            return False
        rules = args.getlist("rule_id")
        if rules and not {a["ruleId"] for a in session["triggeredAlerts"]} & set(rules):
            return False
        watchlists = args.getlist("watchlist_id")
        return not watchlists or any(session["actorId"] in self.members_of(w)
                                     for w in watchlists)

    @route("GET", "/v1/sessions/{session_id}")
    def get_session(self, request: Request, session_id: str) -> Any:
        caller = self.caller(request, "sessions:read")
        if isinstance(caller, Response):
            return caller
        session = self.sessions.get(session_id)
        if session is None:
            return self.error(404, f"session {session_id} not found")
        return copy.deepcopy(session)

    @route("GET", "/v1/sessions/{session_id}/events")
    def session_file_events(self, request: Request, session_id: str) -> Any:
        caller = self.caller(request, "sessions:read")
        if isinstance(caller, Response):
            return caller
        if session_id not in self.sessions:
            return self.error(404, f"session {session_id} not found")
        ids = set(self.session_events.get(session_id, []))
        events = [copy.deepcopy(e) for e in self.file_events if e["event"]["id"] in ids]
        return {"queryResult": {"fileEvents": events, "nextPgToken": None, "problems": None,
                                "totalCount": len(events)}}

    @route("POST", "/v1/sessions/change-state")
    def change_state(self, request: Request) -> Any:
        caller = self.caller(request, "sessions:write")
        if isinstance(caller, Response):
            return caller
        body = self.json_body(request)
        if isinstance(body, Response):
            return body
        ids, new_state = body.get("ids"), body.get("newState")
        if not isinstance(ids, list) or not ids or len(ids) > MAX_IDS:
            return self.error(400, f"ids must list 1 to {MAX_IDS} session ids")
        if new_state not in SESSION_STATES:
            return self.error(400, f"newState must be one of {', '.join(SESSION_STATES)}")
        missing = [i for i in ids if i not in self.sessions]
        if missing:
            return self.error(404, f"session {missing[0]} not found")
        for session_id in ids:
            self.sessions[session_id]["states"].append({
                "state": COARSE_STATE.get(new_state, "CLOSED"), "stateV2": new_state,
                "sourceTimestamp": self.now_ms(), "userId": caller.client_id})
            self.sessions[session_id]["lastUpdated"] = self.now_ms()
            for alert in self.sessions[session_id]["triggeredAlerts"]:
                if alert["alertId"] in self.alerts:
                    self.alerts[alert["alertId"]].update(
                        state=ALERT_STATE.get(new_state, "RESOLVED"),
                        stateLastModifiedAt=iso_ms(self.now_ms()),
                        stateLastModifiedBy=caller.client_id)
        return {}

    @route("POST", "/v1/sessions/{session_id}/add-note")
    def add_note(self, request: Request, session_id: str) -> Any:
        caller = self.caller(request, "sessions:write")
        if isinstance(caller, Response):
            return caller
        body = self.json_body(request)
        if isinstance(body, Response):
            return body
        if session_id not in self.sessions:
            return self.error(404, f"session {session_id} not found")
        content = body.get("noteContent")
        if not isinstance(content, str) or not content.strip():
            return self.error(400, "noteContent is required")
        if len(content) > MAX_NOTE_LENGTH:
            return self.error(400, f"noteContent may hold at most {MAX_NOTE_LENGTH} characters")
        self.sessions[session_id]["notes"].append({
            "id": str(uuid.uuid4()), "content": content, "sourceTimestamp": self.now_ms(),
            "userId": caller.client_id})
        return {}

    @route("POST", "/v1/alerts/query-details")
    def alert_details(self, request: Request) -> Any:
        caller = self.caller(request, "alerts:read")
        if isinstance(caller, Response):
            return caller
        body = self.json_body(request)
        if isinstance(body, Response):
            return body
        ids = body.get("alertIds")
        if not isinstance(ids, list) or not ids or len(ids) > MAX_IDS:
            return self.error(400, f"alertIds must list 1 to {MAX_IDS} alert ids")
        return {"alerts": [copy.deepcopy(self.alerts[i]) for i in ids if i in self.alerts]}

    # helpers for tests and the demo ---------------------------------------------------------

    def add_session(self, actor_id: str, events: list[dict[str, Any]], *, rule: str,
                    severity: int = 3, session_id: str | None = None) -> str:
        """A new session of `actor_id` over these file events (stored in Forensic Search
        too) with one alert of `rule`, observed now; returns its session id."""
        session_id = session_id or str(uuid.uuid4())
        alert_id = str(uuid.uuid4())
        actor = self.actors.get(actor_id, {"name": actor_id})
        now = self.now_ms()
        with self.state_lock:
            self.sessions[session_id] = {
                "sessionId": session_id, "tenantId": self.tenant_id, "actorId": actor_id,
                "actorName": actor["name"], "userId": None, "type": "STANDARD",
                "beginTime": now, "endTime": now, "firstObserved": now, "lastUpdated": now,
                "exfiltrationSummary": f"{len(events)} file(s) moved", "contextSummary": None,
                **{key: 0 for key in _SEVERITY_KEYS.values()}, "riskIndicators": [],
                "triggeredAlerts": [{"alertId": alert_id, "ruleId": f"rule-{alert_id[:8]}",
                                     "ruleName": rule, "lessonId": None}],
                "scores": [{"score": 20 * severity, "severity": severity,
                            "sourceTimestamp": now}],
                "states": [{"state": "OPEN", "stateV2": "OPEN", "sourceTimestamp": now,
                            "userId": None}],
                "notes": [], "contentInspectionResults": {"detectedOnAlerts": []}}
            self.session_events[session_id] = []
        self.add_session_events(session_id, events, severity=severity)
        return session_id

    def add_session_events(self, session_id: str, events: list[dict[str, Any]], *,
                           severity: int = 3) -> None:
        """The session gains these file events: its times and counts move, its lastUpdated
        is now, and a closed session is OPEN_NEW_DATA again."""
        with self.state_lock:
            session = self.sessions[session_id]
            for event in events:
                self.file_events.append(copy.deepcopy(event))
                self.session_events[session_id].append(str(event["event"]["id"]))
                at = int(parse_time(event["@timestamp"]).timestamp() * 1000)
                if not self.session_events[session_id][:-1]:
                    session["beginTime"] = session["endTime"] = at
                session["beginTime"] = min(session["beginTime"], at)
                session["endTime"] = max(session["endTime"], at)
                session[_SEVERITY_KEYS.get(severity, "noRiskEvents")] += 1
            session["lastUpdated"] = self.now_ms()
            if current_state(session).startswith("CLOSED"):
                session["states"].append({"state": "OPEN", "stateV2": "OPEN_NEW_DATA",
                                          "sourceTimestamp": self.now_ms(), "userId": None})

    def session_state(self, session_id: str) -> str:
        return current_state(self.sessions[session_id])

    def add_sessions(self, count: int, *, actor_id: str, like: str | None = None) -> list[str]:
        """Add `count` copies of a seeded session for `actor_id` (for paging), newest last."""
        template = self.sessions[like or next(iter(self.sessions))]
        made = []
        with self.state_lock:
            for index in range(count):
                session = copy.deepcopy(template)
                session["sessionId"] = str(uuid.UUID(int=index + 1))
                session["actorId"] = actor_id
                session["actorName"] = self.actors[actor_id]["name"] if actor_id in self.actors \
                    else actor_id
                session["beginTime"] += (index + 1) * 60_000
                session["endTime"] += (index + 1) * 60_000
                self.sessions[session["sessionId"]] = session
                made.append(session["sessionId"])
        return made


def _bad_parameter(request: Request) -> str | None:
    """Why Incydr would refuse this listing's parameters, or None."""
    args = request.args
    if args.get("has_alerts") not in (None, "", "true", "false"):
        return "has_alerts must be true or false"
    if args.get("order_by") not in (None, "", *SORT_KEYS):
        return f"order_by must be one of {', '.join(SORT_KEYS)}"
    if (args.get("sort_direction") or "desc").lower() not in SORT_DIRECTIONS:
        return "sort_direction must be asc or desc"
    bad_state = [s for s in args.getlist("state") if s not in SESSION_STATES]
    if bad_state:
        return f"state must be one of {', '.join(SESSION_STATES)}, not {bad_state[0]}"
    bad_severity = [s for s in args.getlist("severity") if s not in SEVERITIES]
    if bad_severity:
        return f"severity must be 0 to 4, not {bad_severity[0]}"
    return None
