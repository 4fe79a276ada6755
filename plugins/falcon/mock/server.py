"""FalconMock: the CrowdStrike Falcon API the plugin talks to, assembled from its route groups."""

from __future__ import annotations

from .hosts import HostRoutes
from .rtr import RtrRoutes


class FalconMock(HostRoutes, RtrRoutes):
    """Falcon API imitation; tune `containment_polls`, `rtr_polls`, `token_max_uses`.

    Test helpers: `add_host`, `add_file`, `add_folder`, `file_on`, `add_client`,
    `expire_tokens`, `expire_tokens_after`, `set_status`.
    """
