"""Circuit breakers shared by the workers of one server (``serve --workers N``): one opens, all route around.

Each worker keeps its own :class:`~release_assets.serving.breaker.CircuitBreaker` over the answers it gave; with N
workers each sees a share of the traffic, so alone they would open at different times, or never. The board is a
folder every worker of the server can write: a worker whose breaker opens leaves ``<release>/<version>`` there,
holding the wall-clock time it opened; a probe that closes it removes the file. Every worker treats a version with a
fresh file (younger than the policy's cooldown) as open, whatever its own breaker says. Files are written whole
(temp + rename) and read at most once per ``refresh_s`` per version, so a routed request costs a dict lookup.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from release_assets.core.atomic import replacing

log = logging.getLogger(__name__)


class BreakerBoard:
    def __init__(self, folder: Path, refresh_s: float = 0.2, clock: Callable[[], float] = time.time) -> None:
        self.folder, self.refresh_s, self._clock = Path(folder), refresh_s, clock
        self._seen: dict[tuple[str, str], tuple[float, float | None]] = {}  # key -> (read at, opened at or None)
        self._lock = threading.Lock()

    def _path(self, release: str, version: str) -> Path:
        return self.folder / release / version

    def opened(self, release: str, version: str) -> None:
        """This worker's breaker for ``version`` opened now: every worker routes around it for the cooldown."""
        now = self._clock()
        try:
            path = self._path(release, version)
            path.parent.mkdir(parents=True, exist_ok=True)
            with replacing(path) as tmp:
                tmp.write_text(repr(now))
        except OSError:  # the board is best effort: this worker's own breaker is open either way
            log.exception("could not share the open breaker of %s %s", release, version)
        with self._lock:
            self._seen[(release, version)] = (now, now)

    def closed(self, release: str, version: str) -> None:
        """A probe succeeded: the version is trusted again by every worker."""
        try:
            self._path(release, version).unlink(missing_ok=True)
        except OSError:
            log.exception("could not clear the shared breaker of %s %s", release, version)
        with self._lock:
            self._seen[(release, version)] = (self._clock(), None)

    def open_since(self, release: str, version: str) -> float | None:
        """When some worker opened ``version``'s breaker (wall clock), or None: no worker has it open."""
        key, now = (release, version), self._clock()
        with self._lock:
            seen = self._seen.get(key)
        if seen is not None and now - seen[0] < self.refresh_s:
            return seen[1]
        try:
            opened_at: float | None = float(self._path(release, version).read_text())
        except (OSError, ValueError):  # no file (closed), or one being replaced: closed until the next look
            opened_at = None
        with self._lock:
            self._seen[key] = (now, opened_at)
        return opened_at

    def age(self, opened_at: float) -> float:
        """Seconds since ``opened_at`` (a time :meth:`open_since` gave), on the board's clock."""
        return self._clock() - opened_at
