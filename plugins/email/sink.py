"""A real SMTP server on loopback that keeps what it receives (aiosmtpd), for tests and demos.

    with SmtpSink(security="starttls", tls_context=server_ctx, users={"soc": "pw"}) as sink:
        settings = {**sink.connection_settings(), "ca_file": ca_path}
        ...
        [received] = sink.messages

`security` is "starttls" (STARTTLS required before MAIL and AUTH), "tls" (implicit TLS) or
"none". Recipients in `refuse` get `550 5.1.1 ... User unknown`. aiosmtpd is a test/demo
dependency only: import this module only where it is installed.

aiosmtpd only counts STARTTLS as TLS when deciding whether AUTH may be offered, so with
implicit TLS the sink must set `auth_require_tls=False` (the session is TLS all the same) and
aiosmtpd warns about it; it also warns about its own deprecated `Session.login_data`.
"""

from __future__ import annotations

import email.policy
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SmtpServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session


@dataclass
class ReceivedMessage:
    """One message as the server received it."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    tls: bool
    login: str | None
    message: EmailMessage = field(init=False)

    def __post_init__(self) -> None:
        parsed = BytesParser(policy=email.policy.default).parsebytes(self.data)
        assert isinstance(parsed, EmailMessage)
        self.message = parsed


class _Handler:
    def __init__(self, sink: SmtpSink):
        self.sink = sink

    async def handle_RCPT(self, server: SmtpServer, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if address.lower() in self.sink.refuse:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: SmtpServer, session: Session,
                          envelope: Envelope) -> str:
        if self.sink.deferrals:
            return self.sink.deferrals.pop(0)
        transport = server.transport
        tls = transport is not None and transport.get_extra_info("ssl_object") is not None
        login = session.auth_data.login.decode() if isinstance(session.auth_data,
                                                               LoginPassword) else None
        data = envelope.original_content or b""
        self.sink.messages.append(ReceivedMessage(str(envelope.mail_from),
                                                  list(envelope.rcpt_tos), data, tls, login))
        return f"250 2.0.0 Ok: queued as CG{len(self.sink.messages):06d}"


class _Controller(Controller):
    """aiosmtpd's Controller on an OS-chosen port (port=0), read back once it listens."""

    def _trigger_server(self) -> None:
        sockets = getattr(self.server, "sockets", None)  # an asyncio.Server once listening
        if sockets and self.port == 0:
            self.port = sockets[0].getsockname()[1]
        super()._trigger_server()


class SmtpSink:
    """A loopback SMTP server with optional TLS and AUTH, recording messages."""

    def __init__(self, *, security: str = "starttls", tls_context: ssl.SSLContext | None = None,
                 users: dict[str, str] | None = None, refuse: set[str] | None = None,
                 hostname: str = "127.0.0.1", from_address: str = "soc@crownguard.example"):
        if security in ("starttls", "tls") and tls_context is None:
            raise ValueError(f"security '{security}' needs a server tls_context")
        self.security = security
        self.users = dict(users or {})
        self.refuse = {a.lower() for a in (refuse or set())}
        self.hostname = hostname
        self.from_address = from_address
        self.messages: list[ReceivedMessage] = []
        self.auth_attempts: list[tuple[str, bool]] = []
        self.deferrals: list[str] = []
        options: dict[str, Any] = {}
        if self.users:
            options.update(authenticator=self._authenticate, auth_required=True,
                           auth_require_tls=security != "tls")
        if security == "starttls":
            options.update(tls_context=tls_context, require_starttls=True)
        elif security == "tls":
            options.update(ssl_context=tls_context)
        self._controller = _Controller(_Handler(self), hostname=hostname, port=0,
                                       server_hostname="mx.crownguard.example", **options)

    @property
    def port(self) -> int:
        return int(self._controller.port)

    def start(self) -> SmtpSink:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def defer(self, reply: str = "451 4.3.0 Temporary lookup failure, try again later",
              times: int = 1) -> None:
        """Answer the next `times` messages (at DATA) with a transient or permanent `reply`."""
        self.deferrals.extend([reply] * times)

    def connection_settings(self) -> dict[str, Any]:
        """The connections-file entry for this server (add ca_file/ca_cert for TLS)."""
        settings: dict[str, Any] = {"host": self.hostname, "port": self.port,
                                    "security": self.security,
                                    "from_address": self.from_address,
                                    "from_name": "Security team", "timeout_seconds": 10}
        if self.users:
            username, password = next(iter(self.users.items()))
            settings.update(username=username, password=password)
        return settings

    def _authenticate(self, server: SmtpServer, session: Session, envelope: Envelope,
                      mechanism: str, auth_data: Any) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and \
            self.users.get(auth_data.login.decode()) == auth_data.password.decode()
        login = auth_data.login.decode() if isinstance(auth_data, LoginPassword) else "?"
        self.auth_attempts.append((login, ok))
        # handled=False: aiosmtpd then answers the failure itself (535 5.7.8).
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)
