"""OktaMock: the Okta Management API the plugin talks to, assembled from its route groups."""

from __future__ import annotations

from .groups import GroupRoutes
from .oauth import OAuthRoutes
from .users import UserRoutes


class OktaMock(UserRoutes, GroupRoutes, OAuthRoutes):
    """Okta org at `base_url`; `connection_settings()` gives the okta connection entry.

    Test helpers: `add_user`, `add_group`, `add_member`, `user_id`, `status_of`,
    `add_api_token`, `revoke_api_token`, `add_service_app` (OAuth service apps with a
    private-key JWT), `expire_access_tokens`.
    """
