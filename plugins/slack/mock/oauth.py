"""oauth.v2.access: token rotation's refresh grant, with single-use refresh tokens."""

from __future__ import annotations

from werkzeug import Request, Response

from crownguard.engine import route

from .base import ALL_SCOPES, SlackMockBase


class OAuthRoutes(SlackMockBase):
    """`oauth.v2.access` (grant_type=refresh_token)."""

    @route("POST", "/api/oauth.v2.access")
    def oauth_v2_access(self, request: Request) -> Response:
        form = request.form.to_dict()
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        if request.authorization and request.authorization.type == "basic":
            client_id = request.authorization.username
            client_secret = request.authorization.password
        if client_id != self.CLIENT_ID:
            return self._error("invalid_client_id")
        if client_secret != self.client_secret:
            return self._error("bad_client_secret")
        if form.get("grant_type") != "refresh_token":
            return self._error("invalid_grant_type")
        refresh = form.get("refresh_token", "")
        if refresh not in self.refresh_tokens:
            return self._error("invalid_refresh_token")
        self.refresh_tokens.discard(refresh)  # single use, as Slack does
        access, new_refresh = self._issue_tokens(set(ALL_SCOPES))
        return self._reply({
            "ok": True, "app_id": self.APP_ID, "authed_user": {"id": "U0ADMIN001"},
            "scope": ",".join(sorted(ALL_SCOPES)), "token_type": "bot",
            "access_token": access, "bot_user_id": self.BOT_USER_ID,
            "refresh_token": new_refresh, "expires_in": 43200,
            "team": {"id": self.TEAM_ID, "name": "Crownguard demo"}, "enterprise": None,
            "is_enterprise_install": False})
