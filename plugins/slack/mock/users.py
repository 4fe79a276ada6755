"""users.* methods: finding a workspace member by e-mail."""

from __future__ import annotations

from werkzeug import Request, Response

from crownguard.engine import route

from .base import SlackMockBase


class UserRoutes(SlackMockBase):
    """`users.lookupByEmail`."""

    @route("GET", "/api/users.lookupByEmail")
    @route("POST", "/api/users.lookupByEmail")
    def users_lookup_by_email(self, request: Request) -> Response:
        args = self._begin(request, "users:read.email")
        if isinstance(args, Response):
            return args
        email = str(args.get("email") or "").strip().lower()
        if not email:
            return self._error("invalid_arguments", response_metadata={
                "messages": ["[ERROR] missing required field: email"]})
        user = next((u for u in self.users.values()
                     if u["profile"]["email"].lower() == email), None)
        if user is None:
            return self._error("users_not_found")
        public = {k: v for k, v in user.items() if k != "locale" or v}
        return self._ok(user=public)
