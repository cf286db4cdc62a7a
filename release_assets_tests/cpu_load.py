"""Busy processes that keep every core loaded while a test runs: how a shared CI machine looks to a release."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator

# Each child spins for at most this long even if the test dies without stopping it.
SPIN_LIMIT_S = 600


@contextlib.contextmanager
def busy_cores(per_core: int = 1, extra: int = 1) -> Iterator[int]:
    """``per_core`` spinning processes per core, plus ``extra``; all killed on exit. Yields how many started."""
    n = (os.cpu_count() or 2) * per_core + extra
    code = f"import time\nend = time.monotonic() + {SPIN_LIMIT_S}\nwhile time.monotonic() < end: pass\n"
    procs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(n)]
    try:
        yield n
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait(timeout=10)
