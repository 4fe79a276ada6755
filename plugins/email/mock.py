"""A real SMTP server on loopback that keeps what it receives (aiosmtpd), for tests and demos.

    with SmtpSink(security="starttls", tls_context=server_ctx, users={"soc": "pw"}) as sink:
        settings = {**sink.connection_settings(), "ca_file": ca_path}
        ...
        [received] = sink.messages

`security` is "starttls" (STARTTLS required before MAIL and AUTH), "tls" (implicit TLS) or
"none". Recipients in `refuse` get `550 5.1.1 ... User unknown`; `defer()` makes the next
messages fail at DATA. The sink is the `email` plugin's mock server (a MockServer, so the
demo, the scenario runner and the `mock_server` fixture start and reset it like the HTTP
mocks); registered, it runs without TLS or AUTH, which needs no certificate.

aiosmtpd is a runtime dependency. The sink runs aiosmtpd's SMTP protocol on an asyncio loop of
its own in a daemon thread, through aiosmtpd's public API only (its Controller cannot listen on
an OS-chosen port without overriding a private method). aiosmtpd counts only STARTTLS as TLS
when deciding whether AUTH may be offered, so with implicit TLS the sink sets
`auth_require_tls=False` (the session is TLS all the same) and aiosmtpd warns about it; it also
warns about its own deprecated `Session.login_data`.
"""

from __future__ import annotations

import asyncio
import email.policy
import ssl
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from aiosmtpd.smtp import SMTP as SmtpServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from crownguard.engine import MockServer


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


class SmtpSink(MockServer):
    """A loopback SMTP server with optional TLS and AUTH, recording messages."""

    vendor = "email"

    def __init__(self, *, security: str = "starttls", tls_context: ssl.SSLContext | None = None,
                 users: dict[str, str] | None = None, refuse: set[str] | None = None,
                 hostname: str = "127.0.0.1", from_address: str = "soc@crownguard.example"):
        if security in ("starttls", "tls") and tls_context is None:
            raise ValueError(f"security '{security}' needs a server tls_context")
        self.security = security
        self.tls_context = tls_context
        self.users = dict(users or {})
        self.refuse = {a.lower() for a in (refuse or set())}
        self.hostname = hostname
        self.from_address = from_address
        self._loop: asyncio.AbstractEventLoop | None = None
        super().__init__(hostname, 0)

    def reset_state(self) -> None:
        self.messages: list[ReceivedMessage] = []
        self.auth_attempts: list[tuple[str, bool]] = []
        self.deferrals: list[str] = []

    # life cycle: aiosmtpd's SMTP protocol on an asyncio loop in a daemon thread -------------

    def _protocol(self) -> SmtpServer:
        options: dict[str, Any] = {}
        if self.users:
            options.update(authenticator=self._authenticate, auth_required=True,
                           auth_require_tls=self.security != "tls")
        if self.security == "starttls":
            options.update(tls_context=self.tls_context, require_starttls=True)
        assert self._loop is not None
        return SmtpServer(_Handler(self), hostname="mx.crownguard.example",
                          enable_SMTPUTF8=True, loop=self._loop, **options)

    def start(self) -> None:
        """Listen (on an OS-chosen port) and serve in a daemon thread; returns once bound."""
        if self._loop is not None:
            raise RuntimeError("the SMTP sink is already running")
        loop = asyncio.new_event_loop()
        bound: list[BaseException | int] = []
        ready = threading.Event()
        thread = threading.Thread(target=self._serve, args=(loop, bound, ready),
                                  name="mock-email", daemon=True)
        self._loop = loop  # the SMTP protocol factory runs on it
        thread.start()
        ready.wait()
        if isinstance(bound[0], BaseException):
            thread.join()
            self._loop = None
            raise bound[0]
        self.port, self._thread = bound[0], thread

    def _serve(self, loop: asyncio.AbstractEventLoop, bound: list[BaseException | int],
               ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        try:
            server = loop.run_until_complete(loop.create_server(
                self._protocol, host=self.hostname, port=self.port,
                ssl=self.tls_context if self.security == "tls" else None))
        except BaseException as exc:  # the caller re-raises it
            bound.append(exc)
            loop.close()
            ready.set()
            return
        bound.append(int(server.sockets[0].getsockname()[1]))
        ready.set()
        loop.run_forever()
        # stop(): no new connections, end the sessions still open, then close the loop.
        server.close()
        tasks = asyncio.all_tasks(loop)
        for task in tasks:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.close()

    def stop(self) -> None:
        if self._loop is None:
            raise RuntimeError("the SMTP sink is not running")
        loop, thread = self._loop, self._thread
        self._loop = None
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join()

    def is_running(self) -> bool:
        return self._loop is not None

    @property
    def base_url(self) -> str:
        scheme = "smtps" if self.security == "tls" else "smtp"
        return f"{scheme}://{self.hostname}:{self.port}"

    def inject(self, kind: str, **kwargs: Any) -> Any:
        raise ValueError("the SMTP sink takes no HTTP faults: use defer(reply) or refuse=")

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
