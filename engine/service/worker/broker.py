"""The broker's URL: where Redis is, with its password kept a secret.

`--broker URL` or `$CROWNGUARD_BROKER`. A password written into `--broker` would be visible to
every user of the machine (`ps`), so it is refused there: put it in the environment
(`$CROWNGUARD_BROKER` whole, or `$CROWNGUARD_BROKER_PASSWORD`), or write a reference in its
place, `redis://:${env:NAME}@host:6379/0` or `${file:/run/secrets/redis}`, resolved as in the
connections file. The resolved password is registered with the config's redactor: no log
line, error or record shows it; `Broker.shown` is the URL with `***` in its place.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from ...errors import UsageError
from ...secrets import MASK, Redactor, Secret

ENV_BROKER = "CROWNGUARD_BROKER"
ENV_BROKER_PASSWORD = "CROWNGUARD_BROKER_PASSWORD"  # noqa: S105 - its name
SCHEMES = ("redis", "rediss")
_REFERENCE = re.compile(r"\$\{(env|file):([^}]+)\}")
MAX_SECRET_FILE_BYTES = 64 << 10


@dataclass(frozen=True)
class Broker:
    """A broker URL: `url` with its password (a Secret), `shown` without."""

    url: Secret
    shown: str


def _resolve(text: str, env: Mapping[str, str], where: str) -> str:
    """References resolved; one in the URL's userinfo is quoted there (a password may hold
    `@`, `/` or `#`)."""
    scheme, sep, rest = text.partition("://")
    if sep and "@" in rest.split("/", 1)[0]:
        userinfo, _, tail = rest.partition("@")
        return (f"{scheme}://{_substitute(userinfo, env, where, quoted=True)}@"
                f"{_substitute(tail, env, where)}")
    return _substitute(text, env, where)


def _substitute(text: str, env: Mapping[str, str], where: str, quoted: bool = False) -> str:
    def substitute(match: re.Match[str]) -> str:
        value = lookup(match)
        return quote(value, safe="") if quoted else value

    def lookup(match: re.Match[str]) -> str:
        kind, ref = match.group(1), match.group(2)
        if kind == "env":
            if ref not in env:
                raise UsageError(f"{where}: ${{env:{ref}}} is not set")
            return env[ref]
        try:
            with Path(ref).expanduser().open("rb") as fp:
                return fp.read(MAX_SECRET_FILE_BYTES).decode().strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise UsageError(f"{where}: ${{file:{ref}}} cannot be read: {reason}") from None

    return _REFERENCE.sub(substitute, text)


def _with_password(text: str, password: str) -> str:
    parts = urlsplit(text)
    user = quote(unquote(parts.username or ""), safe="")
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    netloc = f"{user}:{quote(password, safe='')}@{host}" + (f":{parts.port}" if parts.port
                                                           else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _plain_password(text: str) -> bool:
    """Whether the URL's userinfo holds a password itself, not a reference to one."""
    rest = text.split("://", 1)[-1]
    userinfo = rest.split("/", 1)[0].rpartition("@")[0]
    password = userinfo.partition(":")[2]
    return bool(password) and not _REFERENCE.fullmatch(password)


def refuse_journal_password(given: str | None) -> None:
    """A UsageError when `--journal` is a postgresql:// DSN holding its password: a long-lived
    process's arguments are visible to every user of the machine (`ps`)."""
    if given and "://" in given and given.split("://", 1)[0].startswith("postgres") \
            and _plain_password(given):
        raise UsageError("--journal: a password on the command line is visible to every user "
                         "of the machine: give the whole DSN in $CROWNGUARD_JOURNAL, or the "
                         "password in $PGPASSWORD or a password file ($PGPASSFILE)")


def broker_from(given: str | None, env: Mapping[str, str] | None = None,
                redactor: Redactor | None = None) -> Broker | None:
    """The broker `--broker` (given) or $CROWNGUARD_BROKER names, or None for none; a
    UsageError naming the setting for a URL that is not redis:// or holds a plain password
    on the command line."""
    environ = os.environ if env is None else env
    where = "--broker" if given else f"${ENV_BROKER}"
    text = given or environ.get(ENV_BROKER) or ""
    if not text.strip():
        return None
    if given and _plain_password(given):
        raise UsageError("--broker: a password on the command line is visible to every user "
                         f"of the machine: set ${ENV_BROKER_PASSWORD} (or ${ENV_BROKER}), or "
                         "write ${env:NAME} or ${file:PATH} in its place")
    resolved = _resolve(text.strip(), environ, where)
    try:
        parts = urlsplit(resolved)
        parts.port  # noqa: B018 - a port that is not a number raises here
    except ValueError as exc:
        raise UsageError(f"{where}: not a URL ({exc})") from None
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise UsageError(f"{where}: the broker must be Redis, redis://[:PASSWORD@]HOST:PORT/DB "
                         f"(or rediss:// for TLS), not '{parts.scheme or text[:20]}://...'")
    password = unquote(parts.password) if parts.password is not None else None
    if password is None and environ.get(ENV_BROKER_PASSWORD):
        password = environ[ENV_BROKER_PASSWORD]
        resolved = _with_password(resolved, password)
    shown = _with_password(resolved, MASK) if password else resolved
    if password:
        for form in {password, quote(password, safe="")}:
            if redactor is not None:
                redactor.add(form)
    return Broker(Secret(resolved, source=where), shown.replace(quote(MASK, safe=""), MASK))
