"""EntraMock: the Entra token endpoint and Microsoft Graph, assembled from its route groups."""

from __future__ import annotations

from .groups import GroupRoutes
from .users import UserRoutes


class EntraMock(UserRoutes, GroupRoutes):
    """An Entra tenant and Graph on one local server; `connection_settings()` points the
    entra connection at both.

    Test helpers: `add_user`, `add_group`, `add_member`, `user_id`, `user`,
    `set_permissions`, `expire_tokens`.
    """
