"""crownguard engine: the public API that plugins and integrations import.

Plugins import only the names listed in `__all__` (a test keeps them to it).
"""

from .actions import Action, ActionContext, RetryPolicy, Waiting, action
from .config import HTTP_CONNECTION_SCHEMA, Config, Connection, Connections, ConnectionType
from .errors import (
    ActionError,
    AuthError,
    BadResponse,
    ConfigError,
    ConflictError,
    CrownguardError,
    HostNotAllowed,
    InputError,
    NotFoundError,
    PluginError,
    RateLimited,
    ServerError,
    SpecError,
    StepTimeout,
    TransportError,
    VendorError,
)
from .expressions import evaluate, render
from .hookspecs import hookimpl
from .http import (
    Auth,
    BasicAuth,
    HeaderAuth,
    NoAuth,
    OAuth2ClientCredentials,
    VendorClient,
    parse_retry_after,
)
from .mocks import MockServer, MockServerSpec, RecordedCall, route
from .secrets import Secret
from .sources import EventSource

__version__ = "0.1.0.dev0"

__all__ = [
    "HTTP_CONNECTION_SCHEMA",
    "Action",
    "ActionContext",
    "ActionError",
    "Auth",
    "AuthError",
    "BadResponse",
    "BasicAuth",
    "Config",
    "ConfigError",
    "ConflictError",
    "Connection",
    "ConnectionType",
    "Connections",
    "CrownguardError",
    "EventSource",
    "HeaderAuth",
    "HostNotAllowed",
    "InputError",
    "MockServer",
    "MockServerSpec",
    "NoAuth",
    "NotFoundError",
    "OAuth2ClientCredentials",
    "PluginError",
    "RateLimited",
    "RecordedCall",
    "RetryPolicy",
    "Secret",
    "ServerError",
    "SpecError",
    "StepTimeout",
    "TransportError",
    "VendorClient",
    "VendorError",
    "Waiting",
    "action",
    "evaluate",
    "hookimpl",
    "parse_retry_after",
    "render",
    "route",
]
