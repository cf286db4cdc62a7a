"""At most one pass per key per interval: for warnings about a state that lasts (a broken flag file polled many
times a second, a champion whose circuit breaker stays open) rather than one per request."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any


class Throttle(logging.Filter):
    """``allow(key)`` is True at most once per ``every_s`` for each key; as a logging filter, keyed by message."""

    def __init__(self, every_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._every, self._clock = every_s, clock
        self._last: dict[Any, float] = {}
        self._lock = threading.Lock()

    def allow(self, key: Any) -> bool:
        now = self._clock()
        with self._lock:
            if key in self._last and now - self._last[key] < self._every:
                return False
            self._last[key] = now
            return True

    def filter(self, record: logging.LogRecord) -> bool:
        return self.allow(record.msg)
