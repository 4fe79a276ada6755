"""The workflow: To Do / In Progress / Done with transition ids, resolutions and comments added
on the way."""

from __future__ import annotations

from typing import Any

from werkzeug import Request, Response

from crownguard.engine import route

from .adf import adf_problems
from .base import JiraMockBase
from .model import RESOLUTIONS, STATUSES, TRANSITIONS, errors, now


class WorkflowRoutes(JiraMockBase):
    """`/rest/api/3/issue/{key}/transitions` (GET and POST)."""

    def _available(self, issue: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"id": tid, "name": name, "to": self._status(target), "hasScreen": False,
                 "isGlobal": True, "isInitial": False, "isAvailable": True,
                 "isConditional": False, "isLooped": False}
                for tid, name, target in TRANSITIONS if target != issue["status"]]

    @route("GET", "/rest/api/3/issue/{key}/transitions")
    def list_transitions(self, request: Request, key: str) -> Response:
        issue = self._issue(request, key)
        if issue is None:
            return self.json_response(self.error_body(404), 404)
        return self.json_response({"expand": "transitions",
                                   "transitions": self._available(issue)})

    @route("POST", "/rest/api/3/issue/{key}/transitions")
    def do_transition(self, request: Request, key: str) -> Response:
        issue = self._issue(request, key)
        if issue is None:
            return self.json_response(self.error_body(404), 404)
        if not self._may(request, issue["project"], "TRANSITION_ISSUES"):
            return self.json_response(errors(["You do not have permission to transition this "
                                               "issue."]), 403)
        body = request.get_json(silent=True) or {}
        wanted = str((body.get("transition") or {}).get("id", ""))
        transition = next((t for t in self._available(issue) if t["id"] == wanted), None)
        if transition is None:
            return self.json_response(errors([f"Transition id '{wanted}' is not valid for "
                                               "this issue."]), 400)
        resolution = ((body.get("fields") or {}).get("resolution") or {}).get("name")
        if resolution is not None and resolution not in RESOLUTIONS:
            return self.json_response(errors(resolution=f"Resolution '{resolution}' is not "
                                              "valid."), 400)
        comments = [c.get("add", {}).get("body")
                    for c in (body.get("update") or {}).get("comment") or []]
        if any(adf_problems(c) for c in comments):
            return self.json_response(errors(comment="Comment body is not valid ADF."), 400)
        issue["status"] = transition["to"]["name"]
        done = STATUSES[issue["status"]][1] == "done"
        name = resolution or "Done"
        issue["fields"]["resolution"] = {"name": name, "id": RESOLUTIONS[name]} if done else None
        issue["fields"]["updated"] = now()
        for adf in comments:
            self._add_comment(request, issue, adf)
        return Response(status=204)
