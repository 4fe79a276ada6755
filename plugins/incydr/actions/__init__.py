"""The Incydr actions, grouped by the part of the API they use."""

from __future__ import annotations

from crownguard.engine import Action

from .file_events import search_file_events
from .sessions import get_alert, get_session, search_sessions, update_session_state
from .watchlists import (
    add_to_watchlist,
    get_watchlists_for_user,
    list_watchlist_members,
    remove_from_watchlist,
)

ACTIONS: tuple[Action, ...] = (
    search_file_events,
    get_session,
    search_sessions,
    get_alert,
    update_session_state,
    get_watchlists_for_user,
    add_to_watchlist,
    remove_from_watchlist,
    list_watchlist_members,
)

__all__ = ["ACTIONS"]
