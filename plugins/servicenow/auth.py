"""OAuth for ServiceNow: the instance's own token endpoint (`/oauth_token.do`).

The engine's `OAuth2ClientCredentials` knows only the client-credentials grant, while most
ServiceNow instances issue tokens to an integration user through the `password` grant (the
client-credentials grant exists only on newer releases). Both are supported here; a 401 from
the token endpoint is an AuthError naming `get OAuth token`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from crownguard.engine import CachedTokenAuth, Secret, reveal

if TYPE_CHECKING:
    from crownguard.engine import VendorClient

TOKEN_OPERATION = "get OAuth token"  # noqa: S105 (an operation name, not a secret)


class ServiceNowOAuth(CachedTokenAuth):
    """A bearer token from `oauth_token.do`, cached per connection and fetched again after a 401.

    With `username`/`password` the `password` grant is used (the integration user acts), without
    them the `client_credentials` grant.
    """

    DEFAULT_LIFETIME = 1800.0
    operation = TOKEN_OPERATION

    def __init__(self, token_url: str, client_id: str, client_secret: Secret | str, *,
                 username: str | None = None, password: Secret | str | None = None):
        super().__init__(token_url)
        self.client_id = client_id
        self.client_secret = client_secret
        self.username = username
        self.password = password

    def token_request(self, client: VendorClient) -> tuple[dict[str, str], dict[str, str]]:
        form = {"client_id": self.client_id, "client_secret": reveal(self.client_secret)}
        if self.username and self.password is not None:
            form.update(grant_type="password", username=self.username,
                        password=reveal(self.password))
        else:
            form["grant_type"] = "client_credentials"
        return form, {}
