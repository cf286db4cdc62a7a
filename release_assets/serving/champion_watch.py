"""Follow the ledger's champion in a running server: a promotion or rollback takes effect without a restart.

The flag file never names the champion the server answers with (a stale file must not route users back to a
rolled-back version); the ledger does. A daemon thread replays each served release's ledger every ``interval_s``
and, when the champion moved, loads (and verifies) the new one off the request path, then swaps it into the
dict the app reads on every request. A version that fails to load is logged and retried on the next poll; the
previous champion keeps answering meanwhile.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class ChampionWatch:
    def __init__(
        self,
        champion_of: Callable[[str], str | None],
        load: Callable[[str, str], Any],
        served: dict[str, Any],
        interval_s: float = 2.0,
    ) -> None:
        """``champion_of(release)``: the ledger's champion; ``load(release, version)``: a loaded release;
        ``served``: release -> loaded champion, the very dict the app reads (entries are replaced, never mutated)."""
        self._champion_of, self._load, self.served, self.interval_s = champion_of, load, served, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="champion-watch", daemon=True)

    def start(self) -> ChampionWatch:
        self._thread.start()
        return self

    def check(self) -> dict[str, str]:
        """One pass: swap in every champion that moved; returns release -> new version for those swapped."""
        swapped = {}
        for release, current in list(self.served.items()):
            try:
                version = self._champion_of(release)
                if version is None or (current is not None and current.version == version):
                    continue
                self.served[release] = self._load(release, version)
                swapped[release] = version
                log.info("%s: now serving champion %s", release, version)
            except Exception:  # an unreadable ledger or a bundle that does not verify: keep the current champion
                log.exception("%s: could not follow the ledger's champion; still serving the previous one", release)
        return swapped

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.check()

    def close(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
