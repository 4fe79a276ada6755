"""One lock per run, so that two threads of the service never drive the same run at once (the
journal's lease tells processes apart, not threads) while operations on different runs go
on side by side: an answer does not wait behind the timer settling other runs' waits.

A run's lock exists while someone holds or waits for it: the table stays as small as the
number of runs being acted on, however many runs wait in the journal.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class RunLocks:
    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.RLock, list[int]]] = {}

    def __len__(self) -> int:
        with self._guard:
            return len(self._locks)

    @contextmanager
    def hold(self, run_id: str, *, blocking: bool = True) -> Iterator[bool]:
        """Hold the run's lock for the block; with `blocking=False` the block runs at once and
        is told (False) when another thread holds it."""
        with self._guard:
            lock, users = self._locks.setdefault(run_id, (threading.RLock(), [0]))
            users[0] += 1
        try:
            taken = lock.acquire(blocking=blocking)
            try:
                yield taken
            finally:
                if taken:
                    lock.release()
        finally:
            with self._guard:
                users[0] -= 1
                if users[0] == 0:
                    del self._locks[run_id]
