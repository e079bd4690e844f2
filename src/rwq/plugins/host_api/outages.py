"""Host calls that met a Redis outage: which plugins' calls failed because Redis was away, and
whether it answers again, so a plugin faulted by the outage is retried rather than blamed."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from rwq.outage import REDIS_FAILURES, Outage

log = logging.getLogger(__name__)


class HostOutages:
    """When each plugin's host calls last failed with a Redis outage (thread-safe).

    Args:
        probe: a read that succeeds when Redis answers (not a PING: on a cluster that goes to
            one node, maybe the one that is away).
        clock: monotonic seconds.
    """

    def __init__(
        self, probe: Callable[[], object], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.probe = probe
        self.clock = clock
        self._lock = threading.Lock()
        self._met: dict[str, float] = {}
        self._outage = Outage("plugin host calls", log)

    def failed(self, plugin: str, exc: BaseException) -> None:
        """A host call of ``plugin`` failed because Redis is away (logged once per outage)."""
        with self._lock:
            self._met[plugin] = self.clock()
            if not self._outage.down:
                self._outage.failed(exc)

    def met_since(self, plugin: str, since: float) -> bool:
        """Whether a host call of ``plugin`` met an outage at or after ``since``."""
        with self._lock:
            return self._met.get(plugin, float("-inf")) >= since

    def healthy(self) -> bool:
        """Whether Redis answers now (the probe)."""
        try:
            self.probe()
        except REDIS_FAILURES:
            return False
        with self._lock:
            self._outage.succeeded()
        return True
