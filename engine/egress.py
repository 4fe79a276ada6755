"""How a connection reaches its vendor from inside a company network: a forward proxy, a private
CA bundle, the OS trust store, a client certificate, and (only when asked) the environment's
HTTPS_PROXY / NO_PROXY / REQUESTS_CA_BUNDLE.

    connections:
      mlflow: {base_url: "https://mlflow.corp.example", ca_file: "certs/corp-root.pem",
               proxy: "http://${env:PROXY_USER}:${env:PROXY_PASSWORD}@proxy.corp.example:3128"}

The settings are checked when the connections file is loaded (`egress_problems`: a missing or
non-PEM `ca_file` is named there, not at the first call), and applied to the connection's one
session (`configure_session`). The egress rules do not change: the target of every request is
still checked against the connection's own hosts (http.py `check_target`); the proxy is only
the way there, and comes from configuration (the file, or the environment with `trust_env`).
Proxy credentials are secrets: the redactor learns the password and the `user:password` pair.
"""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
from requests.utils import DEFAULT_CA_BUNDLE_PATH, get_environ_proxies
from urllib3.util import parse_url

from .errors import ConfigError
from .secrets import reveal
from .transport import WatchedAdapter

if TYPE_CHECKING:
    from .secrets import Redactor

MAX_PEM_BYTES = 8 << 20  # a corporate bundle with every root in the world is ~300 KiB
ENV_CA_BUNDLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
REASONS = ("CERTIFICATE_VERIFY_FAILED", "Proxy Authentication Required",
           "certificate required", "Connection refused")
_TUNNEL = re.compile(r"Tunnel connection failed: (\d{3}(?: [A-Za-z]+){0,4})")

EGRESS_SETTINGS: dict[str, Any] = {
    "proxy": {"type": "string", "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://",
              "description": "a forward proxy every request of this connection goes through "
                             "(http://host:port or https://host:port; credentials by reference: "
                             "http://${env:USER}:${env:PASSWORD}@proxy:3128); HTTPS goes "
                             "through it with CONNECT"},
    "ca_file": {"type": "string", "minLength": 1,
                "description": "a PEM bundle of the CAs to trust instead of the bundled ones "
                               "(relative to the connections file); with trust_store: system "
                               "it is trusted in addition to the OS store"},
    "trust_env": {"type": "boolean", "default": False,
                  "description": "also use HTTPS_PROXY/HTTP_PROXY, NO_PROXY and "
                                 "REQUESTS_CA_BUNDLE from the environment (off by default: the "
                                 "environment must not decide where credentials go); a "
                                 "configured proxy or ca_file wins"},
    "trust_store": {"enum": ["bundled", "system"], "default": "bundled",
                    "description": "whose roots verify the vendor: `bundled` (certifi's, the "
                                   "default) or `system` (the operating system's store, where "
                                   "a company's internal root is usually deployed)"},
    "client_cert": {"type": "string", "minLength": 1,
                    "description": "PEM client certificate for mutual TLS (relative to the "
                                   "connections file; may also hold the key)"},
    "client_key": {"type": "string", "minLength": 1,
                   "description": "PEM private key of client_cert, unencrypted (relative to the "
                                  "connections file)"},
}


class _Encrypted(Exception):
    """Raised instead of OpenSSL's interactive pass-phrase prompt."""


def _no_pass_phrase() -> str:
    raise _Encrypted


def _path(value: Any, base: Path) -> Path:
    path = Path(str(reveal(value))).expanduser()
    return path if path.is_absolute() else base / path


def _read_pem(path: Path) -> str | None:
    """Why the file at `path` cannot serve as PEM (None when it can)."""
    try:
        with open(path, "rb") as stream:
            raw = stream.read(MAX_PEM_BYTES + 1)
    except OSError as exc:
        return f"cannot read {path} ({exc.strerror or type(exc).__name__})"
    if len(raw) > MAX_PEM_BYTES:
        return f"{path} is larger than {MAX_PEM_BYTES >> 20} MiB"
    if b"-----BEGIN " not in raw:
        return f"{path} is not PEM (no -----BEGIN line; a DER file must be converted first)"
    return None


def egress_problems(settings: dict[str, Any], base: Path,
                    redactor: Redactor | None = None) -> list[tuple[str, str]]:
    """(setting, problem) for each egress setting that cannot work. Paths are made absolute in
    `settings` (against `base`, the connections file's folder); the proxy's credentials are
    registered with `redactor`."""
    problems: list[tuple[str, str]] = []
    if settings.get("proxy") is not None:
        problem = _proxy_problem(str(reveal(settings["proxy"])), redactor)
        if problem:
            problems.append(("proxy", problem))
    if settings.get("ca_file") is not None:
        path = _path(settings["ca_file"], base)
        settings["ca_file"] = str(path)
        problem = _read_pem(path)
        if problem is None:
            try:
                ssl.create_default_context(cafile=str(path))
            except (ssl.SSLError, ValueError):
                problem = f"{path} holds no PEM certificate that can be read"
        if problem:
            problems.append(("ca_file", problem))
    if settings.get("client_key") is not None and settings.get("client_cert") is None:
        problems.append(("client_key", "client_key needs client_cert"))
    if settings.get("client_cert") is not None:
        cert = _path(settings["client_cert"], base)
        settings["client_cert"] = str(cert)
        key = None
        if settings.get("client_key") is not None:
            key = _path(settings["client_key"], base)
            settings["client_key"] = str(key)
        problem = _read_pem(cert) or (key is not None and _read_pem(key)) or None
        where = "client_cert"
        if problem is None:
            try:
                ssl.create_default_context().load_cert_chain(
                    str(cert), str(key) if key else None, password=_no_pass_phrase)
            except _Encrypted:
                problem, where = "the private key is encrypted; give an unencrypted key", \
                    "client_key" if key else "client_cert"
            except (ssl.SSLError, ValueError, OSError):
                problem = ("is not a PEM certificate with its matching private key (give "
                           "client_key when the key is in another file)")
        if problem:
            problems.append((where, problem))
    return problems


def _proxy_problem(url: str, redactor: Redactor | None) -> str | None:
    try:
        parsed = parse_url(url)
    except ValueError:
        return "is not a URL"
    if redactor is not None:
        learn_proxy_credentials(url, redactor)
    if (parsed.scheme or "").lower() not in ("http", "https"):
        return "must be an http:// or https:// URL"
    if not parsed.host:
        return "names no host"
    if (parsed.path or "/") != "/" or parsed.query or parsed.fragment:
        return "must be scheme://host:port only (no path or query)"
    return None


def learn_proxy_credentials(url: str, redactor: Redactor) -> None:
    """Tell the redactor the credentials in a proxy URL (its password, `user:password`)."""
    try:
        auth = parse_url(url).auth
    except ValueError:
        return
    if auth:
        redactor.add(auth)
        redactor.add(auth.partition(":")[2])


def proxy_shown(url: str) -> str:
    """A proxy for a message: host and port, never its credentials."""
    try:
        parsed = parse_url(url)
    except ValueError:
        return "the configured proxy"
    return f"{parsed.host}:{parsed.port or (443 if parsed.scheme == 'https' else 80)}"


def tls_context(settings: Mapping[str, Any]) -> ssl.SSLContext | None:
    """The TLS context of a connection's settings; None when requests' defaults serve."""
    ca_file = settings.get("ca_file")
    if ca_file is None and settings.get("trust_env"):
        ca_file = next((os.environ[n] for n in ENV_CA_BUNDLES if os.environ.get(n)), None)
    system = settings.get("trust_store") == "system"
    cert = settings.get("client_cert")
    if ca_file is None and not system and cert is None:
        return None
    context: ssl.SSLContext
    if system:
        import truststore

        context = truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if ca_file is not None:
            context.load_verify_locations(cafile=str(ca_file))
    else:
        context = ssl.create_default_context(cafile=str(ca_file or DEFAULT_CA_BUNDLE_PATH))
    if cert is not None:
        key = settings.get("client_key")
        context.load_cert_chain(str(cert), str(key) if key else None, password=_no_pass_phrase)
    return context


class EgressAdapter(WatchedAdapter):
    """The watched adapter with one TLS context for every pool, direct or through a proxy."""

    def __init__(self, context: ssl.SSLContext | None, **kwargs: Any):
        self.context = context
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        if self.context is not None:
            kwargs["ssl_context"] = self.context
        super().init_poolmanager(*args, **kwargs)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        if self.context is not None:
            proxy_kwargs.setdefault("ssl_context", self.context)
            if proxy.lower().startswith("https:"):  # a proxy spoken to over TLS: same roots
                proxy_kwargs.setdefault("proxy_ssl_context", self.context)
        return super().proxy_manager_for(proxy, **proxy_kwargs)

    def build_connection_pool_key_attributes(self, request: requests.PreparedRequest,
                                             verify: Any, cert: Any = None) -> Any:
        host, pool = super().build_connection_pool_key_attributes(request, verify, cert)
        if self.context is not None:
            # The context holds the roots and the client certificate: no file paths beside it.
            return host, {"ssl_context": self.context, "cert_reqs": "CERT_REQUIRED"}
        return host, pool

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        if self.context is None:
            super().cert_verify(conn, url, verify, cert)
            return
        # requests would add certifi's bundle to the context; the context already decides.
        conn.cert_reqs = "CERT_REQUIRED"
        conn.ca_certs = conn.ca_cert_dir = None


def configure_session(session: requests.Session, settings: Mapping[str, Any],
                      adapter_options: Mapping[str, Any], name: str = "") -> None:
    """Apply a connection's egress settings to its session (proxy, TLS context). A file that
    went missing or changed since the connections file was loaded is a ConfigError."""
    try:
        context = tls_context(settings)
    except (OSError, ValueError, _Encrypted) as exc:  # ssl.SSLError is an OSError
        reason = "an encrypted key" if isinstance(exc, _Encrypted) else type(exc).__name__
        raise ConfigError(f"connection '{name}': cannot use its ca_file, trust_store or "
                          f"client_cert ({reason})") from None
    adapter = EgressAdapter(context, **adapter_options)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    proxy = settings.get("proxy")
    if proxy is not None:
        plain = str(reveal(proxy))
        session.proxies = {"http": plain, "https": plain}


def request_proxies(settings: Mapping[str, Any], url: str) -> dict[str, str] | None:
    """The environment's proxies for one request (NO_PROXY honoured), when the connection has
    `trust_env: true` and no proxy of its own; else None."""
    if not settings.get("trust_env") or settings.get("proxy") is not None:
        return None
    return dict(get_environ_proxies(url, no_proxy=None))


def egress_failure(exc: BaseException, settings: Mapping[str, Any], url: str) -> str:
    """The message of a transport failure: which host, through which proxy, and for a
    certificate that does not verify, the settings that make it verify."""
    where = urlsplit(url).netloc
    if isinstance(exc, requests.exceptions.ProxyError):
        proxy = settings.get("proxy") or next(iter(
            (request_proxies(settings, url) or {"": ""}).values()))
        return (f"could not reach {where} through the proxy {proxy_shown(str(reveal(proxy)))} "
                f"({_cause(exc)})")
    if isinstance(exc, requests.exceptions.SSLError):
        return (f"could not verify the TLS certificate of {where} ({_cause(exc)}); if an "
                "internal CA or a TLS-inspecting proxy signs it, set the connection's ca_file "
                "or trust_store: system")
    return f"could not reach {where} ({type(exc).__name__})"


def _cause(exc: BaseException) -> str:
    """The innermost reason of a transport error that says what to fix (urllib3 wraps it two
    or three times): CERTIFICATE_VERIFY_FAILED, a proxy's 407, the status a proxy answered a
    CONNECT with. Only these fixed forms are quoted: a wrapped message may hold a proxy URL."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            break
        text = str(seen)
        for marker in REASONS:
            if marker in text:
                return marker
        tunnel = _TUNNEL.search(text)
        if tunnel:
            return f"the proxy answered CONNECT with {tunnel.group(1)}"
        inner = next((a for a in seen.args if isinstance(a, BaseException)), None)
        seen = inner or getattr(seen, "reason", None) or seen.__cause__ or seen.__context__
    return type(exc).__name__
