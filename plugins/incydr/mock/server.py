"""IncydrMock: the Code42 Incydr API the plugin talks to, assembled from its route groups."""

from __future__ import annotations

from .file_events import FileEventRoutes
from .files import FileRoutes
from .sessions import SessionRoutes
from .watchlists import WatchlistRoutes


class IncydrMock(FileEventRoutes, FileRoutes, SessionRoutes, WatchlistRoutes):
    """Stateful Incydr: OAuth API clients, Forensic Search, sessions, alerts, actors,
    watchlists and file downloads by SHA-256, with Incydr's paths, field names, paging and
    (injectable) 429/5xx faults.

    Test helpers: `add_client`, `expire_tokens`, `add_actor`, `add_file_event(s)`,
    `add_sessions`, `add_session` (an alerting session over new file events),
    `add_session_events` (a session gains events), `session_state`, `add_file`,
    `bytes_sent`, `members_of`, `watchlist_id`, `remove_watchlist`; set `clock` to pin "now"
    for WITHIN_THE_LAST searches.
    """
