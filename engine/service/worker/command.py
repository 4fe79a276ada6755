"""`crownguard worker`: perform the runs the broker hands out.

    crownguard worker --config FILE [--journal postgresql://...] [--broker redis://...]
                      [--concurrency N] [--lease-seconds S] [--sweep-seconds S]
                      [--log-format text|json]

Celery's thread pool, `--concurrency` runs at a time (default $CROWNGUARD_WORKER_CONCURRENCY,
else 4). Each run's lease is `--lease-seconds` long (default 60) and renewed every third of
that: a worker on another machine that dies has its runs taken over that long after. Every
`--sweep-seconds` (default 10, 0: never) it also sweeps, as the service's timer does, so that
runs are found again while no service replica is up. On SIGTERM it takes no more runs and
finishes the ones it has (Celery's warm shutdown); a second signal stops it at once, and the
runs it had are taken over by another worker.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import threading
from typing import Any

from ...errors import UsageError
from ..serve import LOG_FORMATS

ENV_CONCURRENCY = "CROWNGUARD_WORKER_CONCURRENCY"
DEFAULT_LEASE_SECONDS = 60.0
log = logging.getLogger("crownguard.worker")


def _positive(text: str | None, name: str, default: float, *, whole: bool = False,
              zero: bool = False) -> float:
    if text is None or not str(text).strip():
        return default
    try:
        value = int(text) if whole else float(text)
    except ValueError:
        raise UsageError(f"{name} must be a{' whole' if whole else ''} number, not "
                         f"'{text}'") from None
    if value < 0 or (value == 0 and not zero):
        raise UsageError(f"{name} must be {'at least 0' if zero else 'more than 0'}, not "
                         f"{value:g}")
    return value


def cmd_worker(args: argparse.Namespace) -> int:
    from ...config import load_config
    from ...journal import SQLiteJournal, open_journal
    from ...plugins import PluginHost
    from ...secrets import install_log_redaction
    from ..logs import RunBinder, bound, configure
    from .broker import broker_from, refuse_journal_password
    from .limiter import RedisLimiter
    from .perform import Performer
    from .pool import WakingThreadPool
    from .queue import RunQueue, celery_app
    from .quiet import fold_exceptions
    from .sweeper import Sweeper

    concurrency = int(_positive(args.concurrency or os.environ.get(ENV_CONCURRENCY),
                                "--concurrency", 4, whole=True))
    lease = _positive(args.lease_seconds, "--lease-seconds", DEFAULT_LEASE_SECONDS)
    sweep_every = _positive(args.sweep_seconds, "--sweep-seconds", 10.0, zero=True)
    log_format = args.log_format or os.environ.get("CROWNGUARD_LOG_FORMAT") or "text"
    if log_format not in LOG_FORMATS:
        raise UsageError(f"$CROWNGUARD_LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, "
                         f"not '{log_format}'")
    if not args.config:
        raise UsageError("worker: --config FILE is required: the connections file the runs "
                         "call their vendors with")
    refuse_journal_password(args.journal)
    host = PluginHost.from_entry_points()
    host.pm.register(RunBinder(), name="crownguard-worker-logs")
    config = load_config(args.config, host.connection_types)
    broker = broker_from(args.broker, redactor=config.redactor)
    if broker is None:
        raise UsageError("worker: --broker redis://... (or $CROWNGUARD_BROKER) is required: "
                         "where the service enqueues runs")
    journal = open_journal(args.journal, lease_seconds=lease)
    if isinstance(journal, SQLiteJournal):
        log.warning("worker: the journal %s is a SQLite file: workers on this machine only "
                    "(use --journal postgresql://... for several)", journal.path)
    app = celery_app(broker)
    queue = RunQueue(broker, app=app)
    config.connections.use_limiter(RedisLimiter(queue.redis))
    performer = Performer(journal, host, config_path=config.source or None, config=config,
                          on_taken=queue.taken)

    @app.task(name="crownguard.perform_run", ignore_result=True)  # queue.TASK
    def perform_run(run_id: str) -> None:
        with bound(run_id=str(run_id), step_id=None):
            _perform_and_log(performer, str(run_id), config.redactor)

    fold_exceptions(configure(log_format,
                              logging.DEBUG if getattr(args, "verbose", 0) else logging.INFO))
    logging.captureWarnings(True)  # Celery's warnings (running as root...) as one-line records
    install_log_redaction()
    stop = threading.Event()
    if sweep_every:
        sweeper = Sweeper(queue, journal, host, tick=sweep_every)
        threading.Thread(target=_sweep, args=(sweeper, sweep_every, stop),
                         name="crownguard-sweeper", daemon=True).start()
    name = f"crownguard-{os.getpid()}@{socket.gethostname()}"
    log.info("crownguard worker %s: broker %s, journal %s, %d at a time", name, broker.shown,
             getattr(journal, "name", None) or getattr(journal, "path", "?"), concurrency)
    worker = app.Worker(hostname=name, pool_cls=WakingThreadPool, concurrency=concurrency,
                        queues=["crownguard.runs"], without_gossip=True, without_mingle=True,
                        without_heartbeat=True, quiet=True, loglevel="INFO")
    try:
        worker.start()
    finally:
        stop.set()
        queue.close()
        journal.close()
        config.connections.close()
    return int(getattr(worker, "exitcode", 0) or 0)


def _perform_and_log(performer: Any, run_id: str, redactor: Any) -> None:
    done = performer.perform(run_id)
    text = f"run {done.run_id}: {done.outcome}" + (f" ({done.status})" if done.status else "")
    if done.outcome == "failed":
        log.warning("%s: %s", text, redactor.redact(done.detail)[:500])
    else:
        log.info("%s", text)


def _sweep(sweeper: Any, every: float, stop: threading.Event) -> None:
    while not stop.wait(every):
        try:
            swept = sweeper.settle()
            if swept.enqueued:
                log.info("sweeper: %d run(s) sent again", len(swept.enqueued))
        except Exception as exc:
            log.error("sweeper: %s", exc)


def add_command(sub: Any) -> None:
    """Register `worker` on the `crownguard` subparsers."""
    p = sub.add_parser("worker", help="perform the runs a service enqueues (Celery, Redis)")
    p.add_argument("--config", metavar="FILE", help="the connections file")
    p.add_argument("--journal", metavar="PATH_OR_URL",
                   help="the journal the service writes: postgresql://... for workers on "
                        "several machines (default: $CROWNGUARD_JOURNAL)")
    p.add_argument("--broker", metavar="URL",
                   help="redis://[:${env:NAME}@]HOST:PORT/DB (default: $CROWNGUARD_BROKER; the "
                        "password from $CROWNGUARD_BROKER_PASSWORD, never on the command line)")
    p.add_argument("--concurrency", metavar="N",
                   help=f"runs at a time (default: ${ENV_CONCURRENCY}, else 4)")
    p.add_argument("--lease-seconds", metavar="S",
                   help=f"how long a run stays this worker's without a heartbeat (default "
                        f"{DEFAULT_LEASE_SECONDS:g})")
    p.add_argument("--sweep-seconds", metavar="S",
                   help="find and send again runs nobody holds, this often (default 10; 0: "
                        "leave it to the service)")
    p.add_argument("--log-format", choices=LOG_FORMATS, default=None)
    p.set_defaults(func=cmd_worker)
