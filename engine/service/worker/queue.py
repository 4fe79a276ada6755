"""The run queue: run ids handed to workers through Celery over Redis.

A message is a run id and nothing else: the run (its playbook, event, answers) is in the
journal. Beside each message a marker key (`crownguard:queued:<run_id>`, with a time to live)
says that the run is queued, so that the sweeper, which finds every run with nobody on it,
sends a run once rather than at every tick; a worker deletes the marker once it holds the
run's lease, and a marker that outlives a lost message expires.
"""

from __future__ import annotations

import logging
from typing import Any

from ...errors import CrownguardError
from .broker import Broker

log = logging.getLogger("crownguard.worker")

TASK = "crownguard.perform_run"
QUEUE = "crownguard.runs"
MARK_PREFIX = "crownguard:queued:"
DEFAULT_MARK_SECONDS = 60.0
# Redis that does not answer within this long is taken to be down (intake keeps the run in
# the journal, the sweeper sends it later).
SOCKET_SECONDS = 3.0


class BrokerUnavailable(CrownguardError):
    """The broker could not be reached: the run stays in the journal for the sweeper."""


def celery_app(broker: Broker, *, name: str = "crownguard") -> Any:
    """The Celery app of the broker: JSON messages, no result backend (the journal is the
    result), one message at a time per worker slot, no retry loop inside a publish."""
    from celery import Celery

    app = Celery(name, broker=broker.url.reveal(), set_as_current=False)
    app.conf.update(
        task_serializer="json", accept_content=["json"], result_backend=None,
        task_ignore_result=True, task_default_queue=QUEUE,
        # A message is acknowledged when a worker takes it: should the worker die, its run's
        # lease lapses and the sweeper sends the run again (the journal knows, not the broker).
        task_acks_late=False, worker_prefetch_multiplier=1,
        # Nor does a worker reserve messages beyond its free slots: a reserved message dies
        # with its worker, and its run would wait for the marker to expire.
        worker_disable_prefetch=True,
        # Cancels only late-acknowledged tasks (none here); said explicitly, Celery does not
        # log its many-line deprecation warning at every lost connection.
        worker_cancel_long_running_tasks_on_connection_loss=True,
        broker_connection_retry_on_startup=True, broker_connection_timeout=SOCKET_SECONDS,
        broker_transport_options={"socket_timeout": SOCKET_SECONDS,
                                  "socket_connect_timeout": SOCKET_SECONDS},
        worker_hijack_root_logger=False, worker_redirect_stdouts=False,
        worker_enable_remote_control=False, worker_send_task_events=False)
    return app


def redis_client(url: str) -> Any:
    """A Redis client that says soon when the server is away: one quick retry (a dropped
    connection), not redis-py's ten with backoff."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis.from_url(url, socket_timeout=SOCKET_SECONDS,
                                socket_connect_timeout=SOCKET_SECONDS,
                                retry=Retry(NoBackoff(), 1))


class RunQueue:
    """Sends run ids (`enqueue`); tells whether a run is queued (`marked`)."""

    def __init__(self, broker: Broker, *, mark_seconds: float = DEFAULT_MARK_SECONDS,
                 app: Any = None):
        self.broker = broker
        self.mark_seconds = mark_seconds
        self.app = app if app is not None else celery_app(broker)
        self.redis = redis_client(broker.url.reveal())

    def enqueue(self, run_id: str, *, again: bool = False) -> bool:
        """Send the run id unless it is queued already (True when sent). `again` sends it
        whatever the marker says (a run found without its worker). BrokerUnavailable when
        Redis cannot be reached: nothing is lost, the run is in the journal."""
        import redis
        from kombu.exceptions import OperationalError

        key = MARK_PREFIX + run_id
        try:
            if again:
                self.redis.set(key, b"1", px=int(self.mark_seconds * 1000))
            elif not self.redis.set(key, b"1", nx=True, px=int(self.mark_seconds * 1000)):
                return False
            self.app.send_task(TASK, args=[run_id], queue=QUEUE, retry=False)
        except (redis.RedisError, OperationalError, OSError) as exc:
            self._unmark(key)
            raise BrokerUnavailable(f"the broker {self.broker.shown} cannot be reached "
                                    f"({type(exc).__name__}): run {run_id} stays in the "
                                    "journal and is sent when it is back") from None
        return True

    def _unmark(self, key: str) -> None:
        try:
            self.redis.delete(key)
        except Exception:  # noqa: S110 - down: the marker expires on its own
            pass

    def taken(self, run_id: str) -> None:
        """A worker holds the run now: it is no longer queued."""
        self._unmark(MARK_PREFIX + run_id)

    def reachable(self) -> bool:
        try:
            return bool(self.redis.ping())
        except Exception:
            return False

    def close(self) -> None:
        try:
            self.redis.close()
        finally:
            self.app.close()
