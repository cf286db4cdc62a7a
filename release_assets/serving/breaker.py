"""Circuit breakers for ``serve``: stop routing users to a version whose recent answers keep failing.

One breaker per (release, version). It keeps the last ``window`` outcomes (a failure is a 5xx answer or an answer
with schema failures; a 4xx never reached the model and is no outcome). Once at least ``min_requests`` outcomes are
in the window and the failure share is >= ``failure_rate``, it opens; after ``cooldown_s`` it half-opens and lets
one request through: a success closes it (window cleared), a failure opens it again for another cooldown.

The app asks :meth:`Breakers.route` after the flag router picked a canary, and tells :meth:`Breakers.record` the
outcome of every answer. Only a canary can be routed away from: the champion's breaker is recorded and exported,
but nothing safer is loaded, so it only warns (once a minute per release). Pure Python, thread-safe: requests run
in the threadpool. With several workers (``serve --workers N``) a :class:`~release_assets.serving.breaker_board.
BreakerBoard` shares the opening: a canary any worker's breaker opened is routed around by all of them for the
cooldown.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from release_assets.serving.throttle import Throttle

if TYPE_CHECKING:
    from release_assets.serving.breaker_board import BreakerBoard

log = logging.getLogger(__name__)

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
CHAMPION = "champion"
WARN_EVERY_S = 60.0


@dataclass(frozen=True)
class BreakerPolicy:
    """When a release's breakers open: ``failure_rate`` (0 < r <= 1) of the last ``window`` outcomes, once at least
    ``min_requests`` (1..window) are in it; open for ``cooldown_s`` before one request probes it."""

    failure_rate: float
    window: int
    min_requests: int
    cooldown_s: float = 30.0

    def __post_init__(self) -> None:
        def number(value: object) -> bool:
            return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)

        if not number(self.failure_rate) or not 0 < self.failure_rate <= 1:
            raise ValueError(f"circuit_breaker.failure_rate: {self.failure_rate!r} is not a share in (0, 1]")
        if isinstance(self.window, bool) or not isinstance(self.window, int) or self.window < 1:
            raise ValueError(f"circuit_breaker.window: {self.window!r} is not a whole number >= 1")
        if isinstance(self.min_requests, bool) or not isinstance(self.min_requests, int):
            raise ValueError(f"circuit_breaker.min_requests: {self.min_requests!r} is not a whole number")
        if not 1 <= self.min_requests <= self.window:
            # More than the window can hold would mean a breaker that can never open.
            raise ValueError(f"circuit_breaker.min_requests: {self.min_requests} is not in 1..window ({self.window})")
        if not number(self.cooldown_s) or self.cooldown_s < 0:
            raise ValueError(f"circuit_breaker.cooldown_s: {self.cooldown_s!r} is not a duration >= 0")


class CircuitBreaker:
    """One version's breaker. ``clock`` (seconds, monotonic) is injectable for tests."""

    def __init__(self, policy: BreakerPolicy, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy, self._clock = policy, clock
        self._outcomes: deque[bool] = deque(maxlen=policy.window)  # True = failed
        self._opened_at: float | None = None  # None: closed
        self._probe_at: float | None = None  # when the half-open probe was let through
        self._lock = threading.Lock()

    def _state(self, now: float) -> str:
        if self._opened_at is None:
            return CLOSED
        return OPEN if now - self._opened_at < self.policy.cooldown_s else HALF_OPEN

    @property
    def state(self) -> str:
        with self._lock:
            return self._state(self._clock())

    @property
    def is_open(self) -> bool:
        """Open or half-open: not trusted until a probe succeeded."""
        return self.state != CLOSED

    def failure_share(self) -> tuple[int, int]:
        """(failures, outcomes) in the window now."""
        with self._lock:
            return sum(self._outcomes), len(self._outcomes)

    def allow(self) -> bool:
        """May a request go to this version now? Half-open lets one probe through; a probe whose outcome never
        came (it ended in a 4xx, or its version failed to load) gives way to another after ``cooldown_s``."""
        with self._lock:
            now = self._clock()
            state = self._state(now)
            if state == CLOSED:
                return True
            if state == OPEN:
                return False
            if self._probe_at is not None and now - self._probe_at < self.policy.cooldown_s:
                return False
            self._probe_at = now
            return True

    def record(self, failed: bool) -> bool:
        """One answer's outcome; True when it opened or closed the breaker."""
        with self._lock:
            now = self._clock()
            state = self._state(now)
            if state == OPEN:
                return False  # answers already in flight when it opened: the cooldown decides, not they
            if state == HALF_OPEN:
                self._probe_at = None
                if failed:
                    self._opened_at = now  # stays open: a new cooldown
                    return False
                self._opened_at = None
                self._outcomes.clear()
                return True
            self._outcomes.append(bool(failed))
            failures, total = sum(self._outcomes), len(self._outcomes)
            if total >= self.policy.min_requests and failures / total >= self.policy.failure_rate:
                self._opened_at, self._probe_at = now, None
                self._outcomes.clear()
                return True
            return False


class Breakers:
    """The breakers of every release with a policy, made on first use; a release without a policy has none."""

    def __init__(
        self,
        policies: dict[str, BreakerPolicy],
        clock: Callable[[], float] = time.monotonic,
        board: BreakerBoard | None = None,
    ) -> None:
        """``board``: where the workers of one server share which breakers are open (None: this process alone)."""
        self.policies, self._clock, self.board = dict(policies), clock, board
        self._breakers: dict[tuple[str, str], CircuitBreaker] = {}
        self._warned = Throttle(WARN_EVERY_S, clock)
        self._reported: set[tuple[str, str]] = set()  # breakers whose state the caller has been told
        self._lock = threading.Lock()

    def get(self, release: str, version: str) -> CircuitBreaker | None:
        policy = self.policies.get(release)
        if policy is None:
            return None
        with self._lock:
            key = (release, version)
            if key not in self._breakers:
                self._breakers[key] = CircuitBreaker(policy, self._clock)
            return self._breakers[key]

    def route(self, release: str, variant: str, version: str | None) -> tuple[str, str | None]:
        """The router's ``(variant, version)``, or the champion's ``("champion", None)`` when that canary's breaker
        is open (or half-open with its probe already out)."""
        if version is None or variant == CHAMPION:
            return variant, version
        breaker = self.get(release, version)
        if breaker is None:
            return variant, version
        if self.board is not None:  # another worker opened it: route around it here too, for its cooldown
            opened_at = self.board.open_since(release, version)
            if opened_at is not None and self.board.age(opened_at) < breaker.policy.cooldown_s:
                return CHAMPION, None
        return (variant, version) if breaker.allow() else (CHAMPION, None)

    def record(self, release: str, version: str, variant: str, failed: bool) -> bool | None:
        """The outcome of an answer ``version`` gave; the breaker's new open/closed state when it changed (or the
        breaker is new, so its gauge appears), else None."""
        if release not in self.policies:
            return None
        key = (release, version)
        with self._lock:
            new = key not in self._reported
            self._reported.add(key)
        breaker = self.get(release, version)
        assert breaker is not None, "the release has a policy (checked above)"
        changed = breaker.record(failed)
        is_open = breaker.is_open
        if changed and self.board is not None:
            (self.board.opened if is_open else self.board.closed)(release, version)
        if changed:
            if is_open:
                policy = breaker.policy
                log.warning(
                    "circuit breaker OPEN for %s %s (%s): failure share >= %s of the last %s answers; %s",
                    release,
                    version,
                    variant,
                    policy.failure_rate,
                    policy.window,
                    "serving the champion instead" if variant != CHAMPION else "it is the champion: still serving it",
                )
            else:
                log.warning("circuit breaker closed for %s %s (%s): a probe succeeded", release, version, variant)
        # The champion keeps serving while open: say so once a minute, not on every answer.
        if is_open and variant == CHAMPION and self._warned.allow(release) and not changed:
            log.warning("circuit breaker open for champion %s %s: nothing safer is loaded, still serving it", *key)
        return is_open if changed or new else None
