"""Issues: create (Jira's field validation, ADF-only rich text, issue properties) and read."""

from __future__ import annotations

from werkzeug import Request, Response

from crownguard.engine import route

from .base import JiraMockBase
from .model import create_problems, errors


class IssueRoutes(JiraMockBase):
    """`POST /rest/api/3/issue` and `GET /rest/api/3/issue/{key}`."""

    @route("POST", "/rest/api/3/issue")
    def create_issue(self, request: Request) -> Response:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return self.json_response(errors(["Unexpected character in the request body."]),
                                      400)
        fields = body.get("fields")
        problems = create_problems(fields, set(self.projects))
        project = ((fields or {}).get("project") or {}).get("key", "")
        if not problems and not self._may(request, project, "CREATE_ISSUES"):
            return self.json_response(errors(["You do not have permission to create issues "
                                               "in this project."]), 403)
        if problems:
            return self.json_response(errors(fields=problems), 400)
        assert isinstance(fields, dict)
        properties = {p["key"]: p.get("value") for p in body.get("properties") or []
                      if isinstance(p, dict) and p.get("key")}
        issue = self._create(project, fields, properties)
        return self.json_response({"id": issue["id"], "key": issue["key"],
                                   "self": f"{self.base_url}/rest/api/3/issue/{issue['id']}"},
                                  201)

    @route("GET", "/rest/api/3/issue/{key}")
    def get_issue(self, request: Request, key: str) -> Response:
        issue = self._issue(request, key)
        if issue is None:
            return self.json_response(self.error_body(404), 404)
        wanted = request.args.get("fields")
        return self.json_response(self._render(issue, wanted.split(",") if wanted else None))
