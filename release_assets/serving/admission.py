"""Admission control for ``serve``: never an unbounded queue.

A worker holds at most ``max_in_flight`` predictions at once (reading the body, waiting for a thread, predicting,
encoding); one more is answered ``503`` with ``Retry-After`` at once, instead of waiting behind the others and making
every answer slower (requests queued without bound are what turned 64 clients into p99 430 ms). With a
``rate_per_s``, each client credential (the bearer token when the server has one, else the client's address) also
has a token bucket of ``burst`` requests refilled at that rate: past it, ``429`` with the seconds until the next
token. Both are decided on the event loop before the body is read, so a refusal costs no thread and no parse.

Shed requests never reached a model: the app counts them under variant ``none`` and in ``shed_total`` by reason, so
the canary monitor and the alert rules read them as shed load, not as errors of the version that would have
answered.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

OVERLOADED, RATE_LIMITED = "overloaded", "rate_limited"
MAX_CLIENTS = 4096  # token buckets kept; the least recently seen client is forgotten first (starts full again)


@dataclass(frozen=True)
class AdmissionPolicy:
    """``max_in_flight``: predictions one worker holds at once. An admitted request waits behind at most that many
    others, so pick about (latency you accept) / (one prediction's time): a model that holds the GIL runs no faster
    with more, each just takes longer. ``retry_after_s``: what a 503 tells the client to wait;
    ``rate_per_s``/``burst``: each client credential's token bucket (None: no rate limit)."""

    max_in_flight: int = 8
    retry_after_s: int = 1
    rate_per_s: float | None = None
    burst: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.max_in_flight, bool) or not isinstance(self.max_in_flight, int) or self.max_in_flight < 1:
            raise ValueError(f"max_in_flight: {self.max_in_flight!r} is not a whole number >= 1")
        if isinstance(self.retry_after_s, bool) or not isinstance(self.retry_after_s, int) or self.retry_after_s < 1:
            raise ValueError(f"retry_after_s: {self.retry_after_s!r} is not a whole number of seconds >= 1")
        if self.rate_per_s is not None and not (math.isfinite(self.rate_per_s) and self.rate_per_s > 0):
            raise ValueError(f"rate_per_s: {self.rate_per_s!r} is not a rate > 0 (None: no rate limit)")
        if self.burst is not None and (self.rate_per_s is None or isinstance(self.burst, bool) or self.burst < 1):
            raise ValueError(f"burst: {self.burst!r} needs a rate_per_s and is a whole number >= 1")

    @property
    def bucket_size(self) -> float:
        """A bucket's capacity: ``burst``, by default one second's worth (at least one request)."""
        assert self.rate_per_s is not None
        return float(self.burst) if self.burst is not None else max(1.0, self.rate_per_s)


@dataclass(frozen=True)
class Shed:
    """A refused request: its status (503 or 429), why (``overloaded``/``rate_limited``) and the whole seconds the
    client should wait (``Retry-After``)."""

    status: int
    reason: str
    retry_after_s: int

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class Admission:
    """One worker's gate. Not thread-safe on purpose: it is only used from the event loop, which runs one callback
    at a time, so a plain counter is exact and costs nothing."""

    def __init__(self, policy: AdmissionPolicy, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy, self._clock = policy, clock
        self.in_flight = 0
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (tokens, when)

    def enter(self, client: str) -> Shed | None:
        """None: admitted, and the caller must :meth:`leave` once answered; else why it is refused. The rate limit
        is asked first, so a client over its rate does not take a slot from the others."""
        if self.policy.rate_per_s is not None:
            wait_s = self._take(client, self.policy.rate_per_s)
            if wait_s is not None:
                return Shed(429, RATE_LIMITED, max(1, math.ceil(wait_s)))
        if self.in_flight >= self.policy.max_in_flight:
            return Shed(503, OVERLOADED, self.policy.retry_after_s)
        self.in_flight += 1
        return None

    def leave(self) -> None:
        self.in_flight -= 1

    def _take(self, client: str, rate: float) -> float | None:
        """Take a token from ``client``'s bucket: None when there was one, else the seconds until there is."""
        now, size = self._clock(), self.policy.bucket_size
        tokens, when = self._buckets.pop(client, (size, now))
        tokens = min(size, tokens + (now - when) * rate)
        if tokens >= 1:
            self._buckets[client] = (tokens - 1, now)
            wait = None
        else:
            self._buckets[client] = (tokens, now)
            wait = (1 - tokens) / rate
        if len(self._buckets) > MAX_CLIENTS:
            self._buckets.popitem(last=False)
        return wait
