"""The `huggingface` connection type: the Hub (or a private Hub endpoint) and its token."""

from __future__ import annotations

from typing import Any

from crownguard.engine import CONNECTION_SETTINGS, ConnectionType, connection_schema

DEFAULT_BASE_URL = "https://huggingface.co"

HUGGINGFACE_CONNECTION_SCHEMA: dict[str, Any] = connection_schema(
    {
        "base_url": {**CONNECTION_SETTINGS["base_url"],
                     "description": f"the Hub endpoint (default {DEFAULT_BASE_URL})"},
        "lfs_url": {**CONNECTION_SETTINGS["base_url"],
                    "description": "the host the Hub redirects LFS downloads to (e.g. "
                                   "https://cas-bridge.xethub.hf.co): the fingerprint index "
                                   "reads the first bytes of model files there"},
        "organization": {"type": "string", "minLength": 1,
                         "description": "the account whose model repos list_model_versions "
                                      "lists (default: its `author` input)"},
        "token": {"type": "string", "minLength": 1,
                  "description": "a user access token (hf_...) with write access to the repos"},
    },
    required=("token",))

CONNECTION_TYPE = ConnectionType(
    "huggingface", HUGGINGFACE_CONNECTION_SCHEMA,
    "Hugging Face Hub with a user access token. Restricting a repo needs write access to it "
    "(a write token, or a fine-grained token with 'write' on the repo or its organization).",
    secrets=("token",))
