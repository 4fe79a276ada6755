"""users.* methods: finding a workspace member by e-mail, and by id (users.info)."""

from __future__ import annotations

from werkzeug import Request, Response

from crownguard.engine import route

from .base import SlackMockBase


class UserRoutes(SlackMockBase):
    """`users.lookupByEmail` and `users.info`."""

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

    @route("GET", "/api/users.info")
    @route("POST", "/api/users.info")
    def users_info(self, request: Request) -> Response:
        # Slack: the method needs users:read; the profile's e-mail is left out unless the
        # token also has users:read.email. `locale` only with include_locale=true.
        args = self._begin(request, "users:read")
        if isinstance(args, Response):
            return args
        user = self.users.get(str(args.get("user") or "").strip())
        if user is None:
            return self._error("user_not_found")
        public = {k: v for k, v in user.items() if k != "locale"}
        if str(args.get("include_locale") or "").lower() in ("true", "1") and user["locale"]:
            public["locale"] = user["locale"]
        if "users:read.email" not in self._scopes(request, args):
            public["profile"] = {k: v for k, v in user["profile"].items() if k != "email"}
        return self._ok(user=public)
