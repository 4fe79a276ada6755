"""The fingerprint index kept fresh while the service runs (the policy's
`routing.fingerprints_refresh`).

Every `interval` the refresher brings the index up to date from each registry plugin, as
`crownguard fingerprints refresh` does (incremental: only versions new or changed since the last
refresh have their files listed). It writes through a connection of its own; the triage's
index sees the commit at its next lookup. A registry that fails is logged and counted, and
tried again at the next interval; it never stops the service or the other registries.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path

from ..config import Config
from ..errors import CrownguardError, TriageInputError
from ..plugins import PluginHost
from ..triage import FingerprintIndex
from ..triage.scenarios import REGISTRY_ACTIONS, refresh_registry
from .metrics import ServiceMetrics

log = logging.getLogger("crownguard.service")


def registries_for(host: PluginHost, config: Config, named: Sequence[str]) -> list[str]:
    """The registries to refresh from: `named` (each checked), else every plugin with the
    registry actions whose connection the connections file has."""
    plugins = sorted({name.split(".", 1)[0] for name in host.actions
                      if name.endswith(f".{REGISTRY_ACTIONS[0]}")})
    registries = [p for p in plugins
                  if all(f"{p}.{action}" in host.actions for action in REGISTRY_ACTIONS)]
    if named:
        unknown = [name for name in named if name not in registries]
        if unknown:
            raise TriageInputError(
                f"routing.fingerprints_refresh.registries: {', '.join(unknown)} "
                f"{'is' if len(unknown) == 1 else 'are'} not a model registry plugin here "
                f"(installed: {', '.join(registries) or 'none'})")
        return list(named)
    return [name for name in registries if name in config.connections]


class Refresher:
    def __init__(self, index_path: Path, host: PluginHost, config: Config,
                 registries: Sequence[str], interval: float, metrics: ServiceMetrics):
        self.index_path, self.host, self.config = index_path, host, config
        self.registries, self.interval, self.metrics = list(registries), interval, metrics
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if not self.registries:
            log.warning("routing.fingerprints_refresh: no registry connection in the "
                        "connections file: the fingerprint index is not refreshed")
            return
        self._thread = threading.Thread(target=self._loop, name="crownguard-fingerprints",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.refresh_once()
            self._stop.wait(self.interval)

    def refresh_once(self) -> None:
        """One round over every registry; failures are logged and counted, never raised."""
        try:
            index = FingerprintIndex(self.index_path)
        except CrownguardError as exc:
            log.error("fingerprint refresh: cannot open the index: %s", exc)
            self.metrics.fingerprint_refreshes.labels(registry="*", result="failed").inc()
            return
        try:
            for registry in self.registries:
                if self._stop.is_set():
                    return
                try:
                    report = refresh_registry(index, self.host, self.config, registry)
                except CrownguardError as exc:
                    log.error("fingerprint refresh from %s failed: %s", registry, exc)
                    self.metrics.fingerprint_refreshes.labels(registry=registry,
                                                              result="failed").inc()
                    continue
                result = "partial" if report.errors else "ok"
                self.metrics.fingerprint_refreshes.labels(registry=registry, result=result).inc()
                log.info("fingerprint refresh from %s: %d versions listed, %d added, %d "
                         "changed, %d files stored%s", registry, len(report.listed),
                         len(report.added), len(report.changed), report.files,
                         f", {len(report.errors)} failed" if report.errors else "")
        finally:
            index.close()
