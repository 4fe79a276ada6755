"""Comments: paged with startAt/maxResults/total, and read by id with their properties."""

from __future__ import annotations

from werkzeug import Request, Response

from crownguard.engine import route

from .adf import adf_problems
from .base import JiraMockBase
from .model import errors


class CommentRoutes(JiraMockBase):
    """`/rest/api/3/issue/{key}/comment` and `/rest/api/3/comment/list`."""

    @route("GET", "/rest/api/3/issue/{key}/comment")
    def list_comments(self, request: Request, key: str) -> Response:
        issue = self._issue(request, key)
        if issue is None:
            return self.json_response(self.error_body(404), 404)
        order = request.args.get("orderBy", "created")
        if order not in ("created", "-created", "+created"):
            return self.json_response(errors(["orderBy must be 'created'."]), 400)
        try:
            start = max(0, int(request.args.get("startAt", 0)))
            limit = max(0, min(int(request.args.get("maxResults", 5000)), 5000))
        except ValueError:
            return self.json_response(errors(["startAt and maxResults must be numbers."]), 400)
        comments = list(issue["comments"])
        if order == "-created":
            comments.reverse()
        page = comments[start:start + limit]
        return self.json_response({"startAt": start, "maxResults": limit,
                                   "total": len(comments),
                                   "comments": [self._comment(c, False) for c in page]})

    @route("POST", "/rest/api/3/issue/{key}/comment")
    def add_comment(self, request: Request, key: str) -> Response:
        issue = self._issue(request, key)
        if issue is None:
            return self.json_response(self.error_body(404), 404)
        if not self._may(request, issue["project"], "ADD_COMMENTS"):
            return self.json_response(errors(["You do not have the permission to comment on "
                                               "this issue."]), 403)
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or adf_problems(body.get("body")):
            return self.json_response(errors(comment="Comment body is not valid ADF."), 400)
        comment = self._add_comment(request, issue, body["body"], body.get("properties"))
        return self.json_response(self._comment(comment, False), 201)

    @route("POST", "/rest/api/3/comment/list")
    def comments_by_id(self, request: Request) -> Response:
        body = request.get_json(silent=True)
        ids = body.get("ids") if isinstance(body, dict) else None
        if not isinstance(ids, list) or len(ids) > 1000:
            return self.json_response(errors(["Provide between 1 and 1000 comment ids."]), 400)
        wanted = {str(i) for i in ids}
        expand = request.args.get("expand", "").split(",")
        found = [self._comment(c, "properties" in expand)
                 for issue in self.store.values()
                 if self._may(request, issue["project"], "BROWSE_PROJECTS")
                 for c in issue["comments"] if c["id"] in wanted]
        return self.json_response({"maxResults": 1000, "startAt": 0, "total": len(found),
                                   "isLast": True, "values": found})
