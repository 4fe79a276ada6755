"""What this process already delivered, per connection: idempotency where the peer has none.

Slack can be asked whether a message is already there (the plugin searches the conversation
for its own metadata). An SMTP server or a Teams webhook cannot: nothing can be read back. So
those plugins remember each delivery under the step's idempotency key, and a repeat of the same
step in this process reports `changed: false` instead of sending twice.

The memory lives as long as the Connection it belongs to (weakly keyed, so a new Config starts
empty and nothing needs resetting). It does not survive a restart: a run resumed in another
process may deliver once more. E-mail adds a Message-ID derived from the same key so that
receiving systems that de-duplicate on it drop such a repeat.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from crownguard.engine import Connection


class DeliveryLedger:
    """Deliveries by (connection, key); thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_connection: weakref.WeakKeyDictionary[Connection, dict[str, dict[str, Any]]] = (
            weakref.WeakKeyDictionary())

    def get(self, connection: Connection, key: str) -> dict[str, Any] | None:
        with self._lock:
            found = self._by_connection.get(connection, {}).get(key)
            return dict(found) if found is not None else None

    def record(self, connection: Connection, key: str, result: dict[str, Any]) -> None:
        with self._lock:
            self._by_connection.setdefault(connection, {})[key] = dict(result)


# One per plugin process; entries belong to (and die with) their Connection.
DELIVERIES = DeliveryLedger()
