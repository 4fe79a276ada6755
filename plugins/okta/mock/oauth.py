"""The Okta mock's org authorization server for service apps: `POST /oauth2/v1/token` with the
client-credentials grant and a private-key JWT client assertion (the app's public keys are
JWKs, named by `kid`), answering access tokens that carry the granted `okta.*` scopes and are
sent as `Authorization: Bearer`. DPoP-bound tokens are not imitated: a service app that
requires DPoP is refused with `invalid_dpop_proof`, as Okta does without a DPoP header.
"""

from __future__ import annotations

import secrets
import time

from werkzeug import Request, Response

from crownguard.engine import (
    ASSERTION_TYPE,
    AssertionRefused,
    PublicKey,
    public_key_of,
    route,
    verify_assertion,
)

from .base import ALL_PERMISSIONS, OktaMockBase

SERVICE_TOKEN_LIFETIME = 3600
ASSERTION_ERRORS = {
    "unknown_key": "The client_assertion JWT kid is invalid.",
    "bad_signature": "The client_assertion signature is invalid.",
    "issuer": "The issuer and subject claims in client_assertion must match the client_id.",
    "audience": "The audience claim for client_assertion must be the endpoint invoked for the "
                "request.",
    "expired": "The client_assertion token is expired.",
    "not_yet_valid": "The client_assertion token is not yet valid.",
}


class OAuthRoutes(OktaMockBase):
    """Service apps and their token endpoint."""

    def add_service_app(self, client_id: str, public_key_pem: str, *, key_id: str = "",
                        scopes: frozenset[str] = ALL_PERMISSIONS, dpop: bool = False) -> None:
        """Register (or re-register) an API service app with one public key (a PEM key or
        certificate), the Okta API scopes granted to it, and whether it requires DPoP."""
        with self.state_lock:
            self.service_apps[client_id] = {"keys": {key_id or "key0": public_key_of(
                public_key_pem)}, "scopes": scopes, "dpop": dpop}

    def oauth_error(self, status: int, error: str, description: str) -> Response:
        return self.json_response({"error": error, "error_description": description}, status)

    @route("POST", "/oauth2/v1/token")
    def service_token(self, request: Request) -> Response:
        form = request.form
        if form.get("grant_type") != "client_credentials":
            return self.oauth_error(400, "unsupported_grant_type", "The authorization grant "
                                    "type is not supported by the authorization server.")
        app = self.service_apps.get(form.get("client_id", ""))
        if app is None:
            return self.oauth_error(401, "invalid_client", "Invalid value for 'client_id' "
                                                           "parameter.")
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            return self.oauth_error(401, "invalid_client", "The client_assertion_type is "
                                                           "invalid.")
        keys: dict[str, PublicKey] = app["keys"]
        try:
            verify_assertion(form.get("client_assertion", ""), keys=keys, key_headers=("kid",),
                             audience=request.base_url, client_id=form["client_id"])
        except AssertionRefused as exc:
            return self.oauth_error(401, "invalid_client", ASSERTION_ERRORS.get(
                exc.reason, "The client_assertion token is invalid."))
        if app["dpop"] and not request.headers.get("DPoP"):
            return self.oauth_error(400, "invalid_dpop_proof", "The DPoP proof JWT header is "
                                                               "missing.")
        requested = set(form.get("scope", "").split())
        if not requested:
            return self.oauth_error(400, "invalid_scope", "The authorization server resource "
                                    "does not have any configured default scopes, 'scope' "
                                    "must be provided.")
        if not requested <= app["scopes"]:
            return self.oauth_error(400, "invalid_scope", "One or more scopes are not "
                                    "configured for the authorization server resource.")
        token = secrets.token_urlsafe(48)
        with self.state_lock:
            self.access_tokens[token] = (frozenset(requested),
                                         time.monotonic() + SERVICE_TOKEN_LIFETIME)
        return self.json_response({"token_type": "Bearer", "expires_in": SERVICE_TOKEN_LIFETIME,
                                   "access_token": token, "scope": " ".join(sorted(requested))})
