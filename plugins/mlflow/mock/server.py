"""MlflowMock: the MLflow tracking server the plugin talks to, assembled from its route groups."""

from __future__ import annotations

from .artifacts import ArtifactRoutes
from .auth import AuthAppRoutes
from .registry import RegistryRoutes


class MlflowMock(RegistryRoutes, ArtifactRoutes, AuthAppRoutes):
    """MLflow tracking server: registry, artifact proxy, optional auth app and OAuth.

    `MlflowMock(auth="none"|"basic"|"token"|"oauth", auth_api="v3"|"legacy")`. Test helpers:
    `add_version` (with `pending_polls` for asynchronous registration), `version`, `aliases`,
    `add_user`, `expire_tokens`; `grants` and `default_permission` set what users may do.
    """
