"""Which versions a running server holds in memory besides its champions: what the flag files name, nothing else.

Every ``interval_s`` a daemon thread reads each release's applied flags (the router's, never a refused file) and
loads, and so verifies, the canary and shadow versions they name before the router's users reach them (the app
serves the champion for a version that is not loaded yet, so this is what makes the first canary request fast,
not what makes it safe). Versions no flag names any more and that are not a champion (a canary rolled back or
promoted, a shadow switched off, a champion replaced) are dropped from every cache, so their models are freed;
asked for again, they load again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (release, version)


class VersionKeeper:
    def __init__(
        self,
        champions: dict[str, Any],
        routing_of: Callable[[str], Any],
        preload: Callable[[str, str], Any],
        retire: Callable[[set[Key]], Iterable[Key]],
        interval_s: float = 1.0,
    ) -> None:
        """``champions``: release -> loaded champion (None: not loaded), the dict the app reads; ``routing_of``:
        release -> the flags applied now (``FlagRouting``, or None); ``preload(release, version)``: load and keep
        it (None when it failed, logged by it); ``retire(keep)``: drop every other loaded version, returning them."""
        self.champions, self._routing_of, self._preload, self._retire = champions, routing_of, preload, retire
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="version-keeper", daemon=True)

    def wanted(self) -> set[Key]:
        """The champions, and every version the applied flags name (canary, shadow), whatever its share now."""
        keep = {(release, loaded.version) for release, loaded in self.champions.items() if loaded is not None}
        for release in list(self.champions):
            try:
                routing = self._routing_of(release)
            except Exception:  # the router never raises on a request; here too, keep what is loaded
                log.exception("%s: reading the applied flags failed; keeping its loaded versions", release)
                raise
            if routing is not None:
                keep |= {(release, v) for v in (routing.canary, routing.shadow) if v is not None}
        return keep

    def check(self) -> tuple[list[Key], list[Key]]:
        """One pass: ``(preloaded, retired)``."""
        try:
            keep = self.wanted()
        except Exception:
            return [], []
        champions = {(release, loaded.version) for release, loaded in self.champions.items() if loaded is not None}
        preloaded = [key for key in sorted(keep - champions) if self._preload(*key) is not None]
        retired = sorted(self._retire(keep))
        for release, version in retired:
            log.info("%s %s: no flag names it and it is not the champion: unloaded", release, version)
        return preloaded, retired

    def start(self) -> VersionKeeper:
        self._thread.start()
        return self

    def _run(self) -> None:
        self.check()
        while not self._stop.wait(self.interval_s):
            self.check()

    def close(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
