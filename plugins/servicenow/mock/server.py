"""ServiceNowMock: a ServiceNow instance's Table API and OAuth endpoint."""

from __future__ import annotations

from .tables import TableRoutes


class ServiceNowMock(TableRoutes):
    """A ServiceNow instance with incident, sn_hr_core_case and sys_user tables.

    Test helpers: `add_user`, `set_roles`, `expire_tokens`, `throttle`, `lose_response`,
    `refuse_state_changes`, `records`, `journal`.
    """
