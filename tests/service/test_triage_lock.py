"""The intake workers' triage lock (background._OnePerPerson): one person's events are triaged
one at a time (their risk history is read, then written), different people's side by side."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import Any

from crownguard.engine.service.background import _OnePerPerson


class SlowTriage:
    def __init__(self) -> None:
        self.inside: dict[str, int] = {}
        self.most: dict[str, int] = {}
        self.overlap = 0
        self._guard = threading.Lock()

    def triage_event(self, event: Any) -> str:
        person = event.actor.email
        with self._guard:
            self.inside[person] = self.inside.get(person, 0) + 1
            self.most[person] = max(self.most.get(person, 0), self.inside[person])
            self.overlap = max(self.overlap, sum(self.inside.values()))
        time.sleep(0.05)
        with self._guard:
            self.inside[person] -= 1
        return person


def _run(wrapped: Any, people: list[str]) -> None:
    threads = [threading.Thread(target=wrapped.triage_event,
                                args=(SimpleNamespace(actor=SimpleNamespace(email=p)),))
               for p in people]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_one_person_at_a_time_and_people_side_by_side() -> None:
    inner = SlowTriage()
    wrapped = _OnePerPerson(inner)
    _run(wrapped, ["a@x", "a@x", "a@x", "b@x", "c@x"])
    assert inner.most["a@x"] == 1  # never two of one person's events at once
    assert inner.overlap >= 2  # but another person's went on meanwhile
