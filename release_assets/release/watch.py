"""Change detection over watched files: cheap stat first, content hash only for what the stat says moved.

Pure logic for the code-change sensor: the previous scan (the sensor's cursor) maps each path to
``[mtime_ns, size, sha256]``; a path whose mtime and size are unchanged is trusted without reading it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from release_assets.core.hashing import sha256_file

Fingerprint = list  # [mtime_ns, size, sha256]


@dataclass
class Scan:
    files: dict[str, Fingerprint] = field(default_factory=dict)
    changed: set[str] = field(default_factory=set)  # content differs from the previous scan
    missing: set[str] = field(default_factory=set)  # watched but no longer on disk
    hashed: int = 0  # how many files had to be read


def scan(paths: Iterable[str], previous: dict[str, Fingerprint]) -> Scan:
    out = Scan()
    for path in paths:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            out.missing.add(path)
            if path in previous:
                out.files[path] = previous[path]  # keep the last known content; the deletion is reported
            continue
        before = previous.get(path)
        if before is not None and before[0] == st.st_mtime_ns and before[1] == st.st_size:
            out.files[path] = before
            continue
        digest = sha256_file(Path(path))
        out.hashed += 1
        out.files[path] = [st.st_mtime_ns, st.st_size, digest]
        if before is not None and before[2] != digest:
            out.changed.add(path)
    return out
