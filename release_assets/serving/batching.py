"""Requests for the same model that arrive while it is busy are answered together, in its next batch.

A model step costs far less per request in a batch than one request at a time (the helpdesk intent model: about a
third per request in a batch of 16). Nothing waits for a batch to fill: a request that finds its model idle runs at
once, alone; the requests that arrive while a batch runs form the next one (at most ``max_batch``). So an idle
server answers as before, and a busy one answers more, each batch in the threadpool, one at a time per model.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable, Hashable
from typing import Any

from starlette.concurrency import run_in_threadpool

MAX_BATCH = 32  # past this, the batch's own latency (~0.4 ms a helpdesk request) outweighs what batching saves


class Batcher:
    """One queue per key (a loaded version). ``submit`` answers one item through ``run(items) -> results``, which
    gets the items waiting together, runs in the threadpool, and gives one result per item, in order: a value, or
    an exception, raised to that item's caller alone. Used on the event loop only."""

    def __init__(self, max_batch: int = MAX_BATCH, on_batch: Callable[[Any, int], None] | None = None) -> None:
        """``on_batch(key, size)``: told of each batch as it starts (the server's batch-size histogram)."""
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1 (got {max_batch})")
        self.max_batch, self.on_batch = max_batch, on_batch
        self._waiting: dict[Hashable, list[tuple[Any, asyncio.Future[Any]]]] = {}
        self._draining: dict[Hashable, asyncio.Task[None]] = {}
        self.batches = self.items = 0  # how many of each ran: items / batches is the mean batch size

    async def submit(self, key: Hashable, item: Any, run: Callable[[list[Any]], list[Any]]) -> Any:
        loop = asyncio.get_running_loop()
        answered: asyncio.Future[Any] = loop.create_future()
        self._waiting.setdefault(key, []).append((item, answered))
        if key not in self._draining:
            self._draining[key] = loop.create_task(self._drain(key, run))
        result = await answered
        if isinstance(result, BaseException):
            raise result
        return result

    async def _drain(self, key: Hashable, run: Callable[[list[Any]], list[Any]]) -> None:
        batch: list[tuple[Any, asyncio.Future[Any]]] = []
        try:
            while self._waiting.get(key):
                queue = self._waiting[key]
                batch, self._waiting[key] = queue[: self.max_batch], queue[self.max_batch :]
                batch = [(item, answered) for item, answered in batch if not answered.done()]  # caller gone
                if not batch:
                    continue
                try:
                    if self.on_batch is not None:
                        self.on_batch(key, len(batch))
                    results = await run_in_threadpool(run, [item for item, _ in batch])
                    if len(results) != len(batch):
                        raise RuntimeError(f"a batch of {len(batch)} gave {len(results)} results")
                except Exception as exc:  # the whole batch failed: each of its callers gets the error
                    results = [_own_copy(exc) for _ in batch]
                self.batches, self.items = self.batches + 1, self.items + len(batch)
                for (_, answered), result in zip(batch, results, strict=True):
                    if not answered.done():
                        answered.set_result(result)
                batch = []
        finally:
            del self._draining[key]
            # Empty unless this task was cancelled (the server is stopping), mid-batch or between batches: nobody
            # is left to answer those callers, and each holds an admission slot until told.
            for _, answered in [*batch, *self._waiting.pop(key, [])]:
                if not answered.done():
                    answered.cancel()


def _own_copy(exc: Exception) -> Exception:
    """The exception for one caller of a failed batch: raising one shared object from every caller would pile
    each caller's frames onto the same traceback."""
    try:
        copied = copy.copy(exc)
    except Exception:  # an exception that cannot be copied is shared, as it is
        return exc
    return copied.with_traceback(exc.__traceback__)
