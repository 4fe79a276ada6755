"""DefenderMock: the Defender for Endpoint API and its Entra token endpoint, assembled from its
route groups."""

from __future__ import annotations

from .files import FileRoutes
from .machines import MachineRoutes


class DefenderMock(MachineRoutes, FileRoutes):
    """Defender for Endpoint imitation; tune `action_polls`, `page_size`, `fail_next()`.

    Test helpers: `add_machine`, `add_file`, `add_app`, `expire_tokens`,
    `expire_tokens_after`, `fail_next`, `start_action`, `isolate_now`.
    """
