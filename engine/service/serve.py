"""`crownguard serve`: check everything, then run the API, the intake worker and the timer.

    crownguard serve [--config FILE] [--policy FILE] [--journal PATH_OR_URL] [--listen HOST:PORT]
                     [--broker redis://...] [--log-format text|json]

On SIGTERM (or Ctrl-C) it answers 503 to new requests, lets intake items in progress finish
within the grace period (CROWNGUARD_GRACE_SECONDS, default 30; those that do not are handed
back to the next process), then stops and exits 0.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import threading
from typing import Any

from ..errors import UsageError

DEFAULT_LISTEN = "127.0.0.1:8760"
ENV_LISTEN = "CROWNGUARD_LISTEN"
ENV_LOG_FORMAT = "CROWNGUARD_LOG_FORMAT"
LOG_FORMATS = ("text", "json")
log = logging.getLogger("crownguard.service")


def parse_listen(text: str) -> tuple[str, int]:
    """HOST:PORT (an IPv6 host in brackets: [::1]:8760)."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"--listen takes HOST:PORT (such as {DEFAULT_LISTEN}), not '{text}'")
    return host.strip("[]"), int(port)


def _number(name: str, default: float, *, minimum: float, whole: bool = False) -> float:
    text = os.environ.get(name)
    if text is None or not text.strip():
        return default
    try:
        value = int(text) if whole else float(text)
    except ValueError:
        raise UsageError(f"${name} must be a{' whole' if whole else ''} number, not "
                         f"'{text}'") from None
    if value < minimum:
        raise UsageError(f"${name} must be at least {minimum:g}, not {value:g}")
    return value


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named explicitly: asyncio sets TCP_NODELAY on accepted connections only for
    # a socket that says it is TCP; with proto 0, every keep-alive answer waited ~40 ms for
    # the client's delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(256)
    sock.set_inheritable(True)
    return sock


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from ..plugins import PluginHost
    from .access_hub import hub_poller
    from .access_routes import desk_for
    from .access_timer import start_access_timer
    from .app import build_app
    from .logs import RunBinder, configure
    from .service import Options, Service
    from .worker.broker import refuse_journal_password

    verbose = getattr(args, "verbose", 0) + getattr(args, "verbose_after", 0)
    log_format = args.log_format or os.environ.get(ENV_LOG_FORMAT) or "text"
    if log_format not in LOG_FORMATS:
        raise UsageError(f"${ENV_LOG_FORMAT} must be one of {', '.join(LOG_FORMATS)}, not "
                         f"'{log_format}'")

    refuse_journal_password(args.journal)
    host_name, port = parse_listen(args.listen or os.environ.get(ENV_LISTEN) or DEFAULT_LISTEN)
    options = Options(config=args.config, policy=args.policy, journal=args.journal,
                      workers=int(_number("CROWNGUARD_INTAKE_WORKERS", 4, minimum=0,
                                          whole=True)),
                      tick=_number("CROWNGUARD_TIMER_SECONDS", 1.0, minimum=0.05),
                      grace=_number("CROWNGUARD_GRACE_SECONDS", 30.0, minimum=0))
    host = PluginHost.from_entry_points()
    host.pm.register(RunBinder(), name="crownguard-service-logs")
    service = Service.start(host, options)
    try:
        from .worker.serving import hand_runs_to_workers

        unbroker = hand_runs_to_workers(service, args.broker)  # --broker: runs go to workers
        sock = _bind(host_name, port)
    except UsageError:
        service.close()
        raise
    # Only once every check passed: a start that fails leaves the caller's logging alone.
    configure(log_format, logging.DEBUG if verbose else logging.INFO)
    if service.settings.incydr_poll_seconds is not None:
        from .poller import incydr_poller
        from .replicas import exclusive_poller

        try:
            service.background.poller = exclusive_poller(incydr_poller(
                service.host, service.config, service.store, service.policy, service.metrics,
                service.settings.incydr_poll_seconds), service.journal)  # one replica polls
        except BaseException:
            service.close()
            sock.close()
            raise
    try:  # the policy's access.huggingface_poll: the Hub's gated-repo requests
        hub_access = hub_poller(service, desk_for)
    except BaseException:
        service.close()
        sock.close()
        raise
    server = _DrainingServer(uvicorn.Config(build_app(service), log_config=None,
                                            access_log=True, lifespan="off",
                                            timeout_graceful_shutdown=int(options.grace) or 1),
                             service)
    service.background.start()
    access_timer = start_access_timer(service)
    if hub_access is not None:
        hub_access.start()
    if service.refresher is not None:
        service.refresher.start()
    sources = ", ".join(sorted(service.settings.sources or {})) or "none"
    say = _announcer(log_format)
    say(f"crownguard serve: listening on http://{args_host(host_name)}:{sock.getsockname()[1]} "
        f"(journal {service.journal_name}; {len(service.settings.tokens)} token(s); event "
        f"sources: {sources})")
    try:
        server.run(sockets=[sock])
    finally:
        clean = server.drained
        access_timer.stop()
        if hub_access is not None:
            hub_access.stop()
        service.close()
        if unbroker is not None:
            unbroker()
        sock.close()
    say("crownguard serve: stopped")
    if not clean:  # steps still running in worker threads were handed back: do not wait
        sys.stderr.flush()
        os._exit(0)
    return 0


def _announcer(log_format: str) -> Any:
    """The start and stop lines: printed (text), or log records (json: every line of stderr
    is then one JSON object)."""
    def say(text: str) -> None:
        if log_format == "json":
            log.info(text)
        else:
            print(text, file=sys.stderr, flush=True)
    return say


def args_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class _DrainingServer:
    """uvicorn's Server, with a drain before it stops: 503 to new requests while the intake
    work in progress finishes (or is handed back)."""

    def __init__(self, config: Any, service: Any):
        import uvicorn

        outer = self

        class Server(uvicorn.Server):
            def handle_exit(self, sig: int, frame: Any) -> None:
                outer.stop(self, sig, frame)

        self.server = Server(config)
        self.service = service
        self.drained = True
        self._draining: threading.Thread | None = None

    def stop(self, server: Any, sig: int, frame: Any) -> None:
        if self._draining is not None:  # a second signal: stop now
            server.force_exit = True
            server.should_exit = True
            return
        self.service.draining.set()
        log.warning("signal %s: draining (grace %.0f s)", sig, self.service.options.grace)

        def drain() -> None:
            try:
                self.drained = self.service.background.stop(self.service.options.grace)
            finally:
                server.should_exit = True

        self._draining = threading.Thread(target=drain, name="crownguard-drain", daemon=True)
        self._draining.start()

    def run(self, sockets: list[socket.socket]) -> None:
        self.server.run(sockets=sockets)


def add_command(sub: Any) -> None:
    """Register `serve` on the `crownguard` subparsers."""
    p = sub.add_parser("serve", help="run the service: signed events in, runs over HTTP")
    p.add_argument("--config", metavar="FILE", help="the connections file, with its "
                                                    "`service` section")
    p.add_argument("--policy", metavar="FILE", help="risk and routing policy (merged over "
                                                    "the shipped defaults)")
    p.add_argument("--journal", metavar="PATH_OR_URL",
                   help="the run journal: a SQLite file or a postgresql:// database (default: "
                        "$CROWNGUARD_JOURNAL, else the XDG state default); the intake table "
                        "lives in it. Prefer $CROWNGUARD_JOURNAL or a password file "
                        "(PGPASSFILE) for a DSN's password: process arguments are visible to "
                        "other users")
    p.add_argument("--listen", metavar="HOST:PORT", help=f"where to listen (default: "
                                                         f"${ENV_LISTEN}, else {DEFAULT_LISTEN})")
    p.add_argument("--broker", metavar="URL", help="redis://...: enqueue runs for "
                   "`crownguard worker` instead of performing them here (default: "
                   "$CROWNGUARD_BROKER; the password from $CROWNGUARD_BROKER_PASSWORD)")
    p.add_argument("--log-format", choices=LOG_FORMATS, default=None,
                   help=f"text or json: one JSON object a line (ts, level, logger, message, "
                        f"run_id...), the access log's too (default: ${ENV_LOG_FORMAT}, else "
                        f"text)")
    p.set_defaults(func=cmd_serve)
