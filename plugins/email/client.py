"""Sending over SMTP: connection settings, TLS, AUTH, and SMTP replies mapped to engine errors.

Security is STARTTLS on 587 (RFC 3207) by default, implicit TLS on 465 (RFC 8314) with
`security: tls` or an `smtps://` base_url, and plain SMTP only when asked for and never with
credentials. Certificates are verified against the system's CAs plus, optionally, a private CA
(`ca_file` path or `ca_cert` PEM text); `verify_tls: false` exists for lab servers only.

Errors carry the SMTP reply ("535 5.7.8 ...") in the message; VendorError's `status` is an HTTP
status, so it stays empty here.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import urlsplit

from crownguard.engine import (
    ActionContext,
    AuthError,
    ConfigError,
    ConflictError,
    Connection,
    NotFoundError,
    Secret,
    ServerError,
    TransportError,
    VendorError,
)

VENDOR = "email"
DEFAULT_PORTS = {"starttls": 587, "tls": 465, "none": 25}
DEFAULT_TIMEOUT = 30.0


@dataclass(frozen=True)
class SmtpSettings:
    """A connection's SMTP settings, resolved (defaults applied, base_url taken apart)."""

    host: str
    port: int
    security: str
    from_address: str
    username: str | None = None
    password: Secret | str | None = None
    from_name: str | None = None
    reply_to: str | None = None
    ca_file: str | None = None
    ca_cert: str | None = None
    verify_tls: bool = True
    timeout: float = DEFAULT_TIMEOUT
    local_hostname: str | None = None

    @classmethod
    def from_connection(cls, connection: Connection) -> SmtpSettings:
        values = connection.settings
        security = str(values.get("security") or "starttls")
        host = values.get("host")
        port = values.get("port")
        if values.get("base_url"):
            url = urlsplit(str(values["base_url"]))
            security = "tls" if url.scheme == "smtps" else security
            host, port = url.hostname, port or url.port
        if not host:
            raise ConfigError(f"connection '{connection.name}' names no SMTP host")
        if security == "none" and values.get("username"):
            raise ConfigError(f"connection '{connection.name}': refusing to send SMTP "
                              "credentials without TLS (security: none)")
        ca_cert = values.get("ca_cert")
        return cls(host=str(host), port=int(port or DEFAULT_PORTS[security]), security=security,
                   from_address=str(values["from_address"]), username=values.get("username"),
                   password=values.get("password"), from_name=values.get("from_name"),
                   reply_to=values.get("reply_to"), ca_file=values.get("ca_file"),
                   ca_cert=ca_cert.reveal() if isinstance(ca_cert, Secret) else ca_cert,
                   verify_tls=bool(values.get("verify_tls", True)),
                   timeout=float(values.get("timeout_seconds") or DEFAULT_TIMEOUT),
                   local_hostname=values.get("local_hostname"))

    @property
    def domain(self) -> str:
        return self.from_address.rsplit("@", 1)[-1]


def tls_context(settings: SmtpSettings) -> ssl.SSLContext:
    """Verifying TLS (1.2+) against the system CAs and the connection's own CA, if any."""
    context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if settings.ca_file or settings.ca_cert:
        try:
            context.load_verify_locations(cafile=settings.ca_file, cadata=settings.ca_cert)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load the CA to trust ({type(exc).__name__}: "
                              f"{getattr(exc, 'strerror', None) or exc})") from None
    if not settings.verify_tls:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class SmtpSender:
    """Sends one message per call over a fresh SMTP session (connect, TLS, AUTH, send, QUIT)."""

    def __init__(self, connection: Connection, ctx: ActionContext | None = None):
        self.connection = connection
        self.ctx = ctx
        self.settings = SmtpSettings.from_connection(connection)

    def send(self, message: EmailMessage, recipients: list[str]) -> dict[str, tuple[int, bytes]]:
        """Send; the recipients the server refused (the others were accepted)."""
        settings = self.settings
        timeout = settings.timeout
        if self.ctx is not None:
            self.ctx.check_deadline()
            remaining = self.ctx.remaining()
            timeout = min(timeout, remaining) if remaining is not None else timeout
        operation = "SMTP connect"
        try:
            smtp = self._open(timeout)
        except (smtplib.SMTPException, OSError) as exc:
            raise self._error(exc, operation) from None
        try:
            if settings.security == "starttls":
                operation = "SMTP STARTTLS"
                smtp.ehlo()
                if not smtp.has_extn("starttls"):
                    raise ConflictError("the server does not offer STARTTLS (use security: "
                                        "tls for implicit TLS)", vendor=VENDOR,
                                        operation=operation)
                smtp.starttls(context=tls_context(settings))
                smtp.ehlo()
            if settings.username:
                operation = "SMTP AUTH"
                password = settings.password
                smtp.login(settings.username,
                           password.reveal() if isinstance(password, Secret)
                           else str(password or ""))
            operation = "SMTP send"
            refused = smtp.send_message(message, from_addr=settings.from_address,
                                        to_addrs=recipients)
        except (smtplib.SMTPException, OSError) as exc:
            smtp.close()  # no QUIT: the session may be dead or hanging
            raise self._error(exc, operation) from None
        except BaseException:
            smtp.close()
            raise
        _quit(smtp)
        return refused

    def _open(self, timeout: float) -> smtplib.SMTP:
        settings = self.settings
        if settings.security == "tls":
            return smtplib.SMTP_SSL(settings.host, settings.port, timeout=timeout,
                                    local_hostname=settings.local_hostname,
                                    context=tls_context(settings))
        return smtplib.SMTP(settings.host, settings.port, timeout=timeout,
                            local_hostname=settings.local_hostname)

    def _error(self, exc: BaseException, operation: str) -> VendorError:
        error = classify(exc, operation, f"{self.settings.host}:{self.settings.port}")
        error.args = tuple(self.connection.redactor.redact(str(a)) for a in error.args)
        return error


def _quit(smtp: smtplib.SMTP) -> None:
    """QUIT politely after a delivery; a failing goodbye does not undo the delivery."""
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()


def _reply(code: int, message: bytes | str) -> str:
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)
    return f"{code} {' '.join(text.split())}"


def classify(exc: BaseException, operation: str, where: str) -> VendorError:
    """The engine error for an smtplib/ssl/socket failure: 4xx replies and transport trouble
    are retryable, 5xx replies and TLS verification failures are not."""
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        reply = _reply(exc.smtp_code, exc.smtp_error)
        return AuthError(f"the server rejected the credentials ({reply}); check username and "
                         "password", vendor=VENDOR, operation="SMTP AUTH")
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return ConflictError(f"the server does not support this here ({exc}); check security "
                             "and port", vendor=VENDOR, operation=operation)
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        replies = {addr: _reply(code, msg) for addr, (code, msg) in exc.recipients.items()}
        detail = "; ".join(f"{addr}: {reply}" for addr, reply in replies.items())
        temporary = any(code < 500 for code, _ in exc.recipients.values())
        cls: type[VendorError] = ServerError if temporary else NotFoundError
        return cls(f"every recipient was refused ({detail})", vendor=VENDOR, operation=operation)
    if isinstance(exc, smtplib.SMTPResponseException):
        reply = _reply(exc.smtp_code, exc.smtp_error)
        what = ("the sender address was refused" if isinstance(exc, smtplib.SMTPSenderRefused)
                else "the server refused the message"
                if isinstance(exc, smtplib.SMTPDataError) else "the server answered an error")
        cls = ServerError if exc.smtp_code < 500 else ConflictError
        return cls(f"{what} ({reply})", vendor=VENDOR, operation=operation)
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return TransportError(f"{where} closed the connection ({exc})", vendor=VENDOR,
                              operation=operation)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return TransportError(f"could not verify the TLS certificate of {where} "
                              f"({exc.verify_message}); trust a private CA with ca_file or "
                              "ca_cert", vendor=VENDOR, operation=operation, retryable=False)
    if isinstance(exc, ssl.SSLError):
        return TransportError(f"TLS with {where} failed ({exc.reason or exc}); check security "
                              "and port", vendor=VENDOR, operation=operation, retryable=False)
    if isinstance(exc, TimeoutError):
        return TransportError(f"timed out talking to {where}", vendor=VENDOR,
                              operation=operation)
    if isinstance(exc, OSError):
        reason = exc.strerror or type(exc).__name__
        return TransportError(f"could not reach {where} ({reason})", vendor=VENDOR,
                              operation=operation)
    return TransportError(f"SMTP failed ({type(exc).__name__})", vendor=VENDOR,
                          operation=operation)
