"""The `mlflow` plugin: quarantine a leaked model version in an MLflow model registry (and undo
it), read and search versions, and fingerprint a version's files. Hookimpls only."""

from __future__ import annotations

from collections.abc import Callable

from crownguard.engine import Action, ConnectionType, MockServerSpec, hookimpl

from .actions import ACTIONS
from .connection import CONNECTION_TYPE
from .mock import MlflowMock


@hookimpl
def crownguard_register_actions(register: Callable[[Action], None]) -> None:
    for item in ACTIONS:
        register(item)


@hookimpl
def crownguard_register_connection_types(register: Callable[[ConnectionType], None]) -> None:
    register(CONNECTION_TYPE)


@hookimpl
def crownguard_register_mock_servers(register: Callable[[MockServerSpec], None]) -> None:
    register(MockServerSpec("mlflow", MlflowMock,
                            "MLflow tracking server: model registry, artifact proxy, optional "
                            "basic-auth app (auth='basic') and OAuth (auth='oauth')."))
