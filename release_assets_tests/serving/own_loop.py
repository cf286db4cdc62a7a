"""``asyncio.run`` on a thread of its own, for tests that drive a server with an async client.

The browser tests' session-scoped Playwright (sync API) keeps an event loop running in the main thread until the
session ends, and ``asyncio.run`` refuses to start inside a running loop; a fresh thread has none.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()
