"""crownguard engine: the public API that plugins and integrations import.

Plugins import only the names listed in `__all__` (a test keeps them to it).
"""

from .actions import VENDOR_RETRY, Action, ActionContext, RetryPolicy, Waiting, action
from .assertion import (
    ASSERTION_TYPE,
    CLIENT_ASSERTION_SETTINGS,
    AssertionRefused,
    AssertionSigner,
    PublicKey,
    assertion_signer,
    public_key_of,
    thumbprints,
    verify_assertion,
)
from .auth import (
    Auth,
    BasicAuth,
    CachedTokenAuth,
    HeaderAuth,
    NoAuth,
    OAuth2ClientCredentials,
    PrivateKeyJWT,
    TokenClient,
)
from .config import (
    CONNECTION_SETTINGS,
    HTTP_CONNECTION_SCHEMA,
    POLLING_SETTINGS,
    TOKEN_URL_SETTING,
    Config,
    Connection,
    Connections,
    ConnectionType,
    connection_schema,
)
from .content_sources import ContentSource
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
from .hookspecs import CommandContext, hookimpl
from .http import BodyStream, VendorClient, parse_retry_after
from .markup import unquote, unquote_value
from .mocks import MockServer, MockServerSpec, RecordedCall, route
from .secrets import Secret, reveal
from .sources import EventSource
from .streams import read_head
from .urls import Origin, UnsafeURL, host_allowed, origin_of

__version__ = "0.1.0.dev0"

__all__ = [
    "ASSERTION_TYPE",
    "CLIENT_ASSERTION_SETTINGS",
    "CONNECTION_SETTINGS",
    "HTTP_CONNECTION_SCHEMA",
    "POLLING_SETTINGS",
    "TOKEN_URL_SETTING",
    "VENDOR_RETRY",
    "Action",
    "ActionContext",
    "ActionError",
    "AssertionRefused",
    "AssertionSigner",
    "Auth",
    "AuthError",
    "BadResponse",
    "BasicAuth",
    "BodyStream",
    "CachedTokenAuth",
    "CommandContext",
    "Config",
    "ConfigError",
    "ConflictError",
    "Connection",
    "ConnectionType",
    "Connections",
    "ContentSource",
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
    "Origin",
    "PluginError",
    "PrivateKeyJWT",
    "PublicKey",
    "RateLimited",
    "RecordedCall",
    "RetryPolicy",
    "Secret",
    "ServerError",
    "SpecError",
    "StepTimeout",
    "TokenClient",
    "TransportError",
    "UnsafeURL",
    "VendorClient",
    "VendorError",
    "Waiting",
    "action",
    "assertion_signer",
    "connection_schema",
    "evaluate",
    "hookimpl",
    "host_allowed",
    "origin_of",
    "parse_retry_after",
    "public_key_of",
    "read_head",
    "render",
    "reveal",
    "route",
    "thumbprints",
    "unquote",
    "unquote_value",
    "verify_assertion",
]
