"""SlackMock: the Slack Web API the plugin talks to, assembled from its route groups."""

from __future__ import annotations

from .chat import ChatRoutes
from .conversations import ConversationRoutes
from .interactions import InteractionHelpers
from .oauth import OAuthRoutes
from .users import UserRoutes


class SlackMock(UserRoutes, ConversationRoutes, ChatRoutes, OAuthRoutes, InteractionHelpers):
    """Slack workspace T0CROWN01: a bot user with every scope, a #soc-alerts channel the app is
    in, and the users, channels, DMs and messages tests add.

    Test helpers: `add_user`, `add_channel`, `add_message`, `messages`, `dm_of`, `set_scopes`,
    `enable_token_rotation`, `expire_tokens`, and `click`/`submit_view` for signed
    interactivity requests.
    """
