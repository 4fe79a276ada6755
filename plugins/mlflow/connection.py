"""The `mlflow` connection type: where the tracking server is and how to authenticate to it."""

from __future__ import annotations

from typing import Any

from crownguard.engine import (
    CONNECTION_SETTINGS,
    POLLING_SETTINGS,
    TOKEN_URL_SETTING,
    ConnectionType,
    connection_schema,
)

TEXT = {"type": "string", "minLength": 1}

MLFLOW_CONNECTION_SCHEMA: dict[str, Any] = connection_schema(
    {
        "base_url": {**CONNECTION_SETTINGS["base_url"],
                     "description": "the tracking server, e.g. https://mlflow.example.com "
                                    "(REST paths are appended: /api/2.0/mlflow/...)"},
        "username": {**TEXT, "description": "HTTP Basic user (MLflow's basic-auth app)"},
        "password": TEXT,
        "token": {**TEXT, "description": "a static Bearer token (Databricks PAT, a proxy's token)"},
        "client_id": {**TEXT, "description": "OAuth2 client-credentials (Databricks M2M)"},
        "client_secret": TEXT,
        "token_url": {**TOKEN_URL_SETTING, "description": "OAuth2 token endpoint (default: "
                                                          "<base_url>/oidc/v1/token)"},
        "scope": {**TEXT, "description": "OAuth2 scope (default: all-apis)"},
        "page_size": {"type": "integer", "minimum": 1, "maximum": 1000,
                      "description": "max_results per page of searches (default 200)"},
        "poll_interval_seconds": {**POLLING_SETTINGS["poll_interval_seconds"],
                                  "description": "wait between checks of a version still "
                                                 "registering (default 1)"},
        "max_wait_seconds": {**POLLING_SETTINGS["max_wait_seconds"],
                             "description": "give up on a version still registering after "
                                            "this long (default 300)"},
    },
    required=("base_url",),
    dependentRequired={
        "username": ["password"],
        "password": ["username"],
        "client_id": ["client_secret"],
        "client_secret": ["client_id"],
    },
)

CONNECTION_TYPE = ConnectionType(
    "mlflow", MLFLOW_CONNECTION_SCHEMA,
    "MLflow tracking server with the model registry. Authenticate with username/password "
    "(MLflow's basic-auth app), a Bearer token, or OAuth2 client credentials; give at most one. "
    "Quarantine needs EDIT on the model, and taking a user's access away needs an admin.",
    secrets=("password", "token", "client_secret"))
