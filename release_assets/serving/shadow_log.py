"""Live shadow pairs on disk: what ``serve`` compared, for the ``shadow_report`` asset to judge later.

Append-only JSONL, one file per shadowed version: ``<root>/<release>/<shadow version>.jsonl``, one pair per line,
flushed as written so a reader (or a crash) sees whole lines, except at worst a torn last one, which
:func:`read_pairs` skips. A file stops growing at ``max_bytes``: shadowing is sampled evidence, not an archive,
and a forgotten shadow flag must not fill the disk; what was not written is counted (``stats``).
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from release_assets.manifest import release_name_problem

log = logging.getLogger(__name__)
MAX_BYTES = 50 * 1024 * 1024
_VERSION = re.compile(r"^[0-9a-f]{16}$")
REDACTED_FIELDS = ("message",)  # free text a user typed; replies are the chain's own words


def pair_names(release: object, version: object) -> tuple[str, str]:
    """Names reach a file system or an object key: only a release name and a version digest pass."""
    problem = release_name_problem(release)
    if problem or not isinstance(release, str):
        raise ValueError(f"release: {problem}")
    if not isinstance(version, str) or not _VERSION.match(version):
        raise ValueError(f"shadow_version: {version!r} is not a release version (16 lower-case hex digits)")
    return release, version


def pairs_path(root: Path, release: object, version: object) -> Path:
    release, version = pair_names(release, version)
    return Path(root) / release / f"{version}.jsonl"


def pair_line(pair: dict[str, Any], redact: Callable[[str], str] | None) -> str:
    """One pair as one JSON line, its free-text fields passed through ``redact`` first."""
    if redact is not None:
        pair = {k: redact(v) if k in REDACTED_FIELDS and isinstance(v, str) else v for k, v in pair.items()}
    return json.dumps(pair, sort_keys=True, default=str) + "\n"


NotKept = Callable[[str, int], None]  # (reason, pairs): told of every pair not kept, e.g. to count it on /metrics


class ShadowLog:
    """Thread-safe appender of pair records; ``redact`` (e.g. the traces' redactor) cleans free-text fields;
    ``on_not_kept`` is told of every pair not written, with the reason ``stats`` counts it under."""

    def __init__(
        self,
        root: Path,
        max_bytes: int = MAX_BYTES,
        redact: Callable[[str], str] | None = None,
        on_not_kept: NotKept | None = None,
    ) -> None:
        self.root, self.max_bytes, self._redact, self._on_not_kept = Path(root), max_bytes, redact, on_not_kept
        self._lock = threading.Lock()
        self._files: dict[Path, IO[str]] = {}
        self._counts: Counter[str] = Counter()

    @property
    def stats(self) -> dict[str, int]:
        """written (lines), full (pairs not written: the file reached max_bytes), invalid (no release/version)."""
        with self._lock:
            return {k: self._counts[k] for k in ("written", "full", "invalid")}

    def append(self, pair: dict[str, Any]) -> bool:
        """Write one pair as one line; False when it was not written (file full, or a pair naming no version)."""
        try:
            path = pairs_path(self.root, pair.get("release"), pair.get("shadow_version"))
        except ValueError:
            return self._not_kept("invalid")
        line = pair_line(pair, self._redact)
        with self._lock:
            fh = self._files.get(path)
            if fh is None:
                path.parent.mkdir(parents=True, exist_ok=True)
                fh = self._files[path] = path.open("a", encoding="utf-8")
            full = fh.tell() + len(line.encode()) > self.max_bytes
            if not full:
                fh.write(line)
                fh.flush()
                self._counts["written"] += 1
        return self._not_kept("full", path) if full else True

    def _not_kept(self, reason: str, path: Path | None = None) -> bool:
        """Count one pair not written for ``reason``; False, what ``append`` answers for it."""
        with self._lock:
            self._counts[reason] += 1
            first = self._counts[reason] == 1
        if first and path is not None:
            log.warning("%s reached %d bytes: further shadow pairs are counted, not written", path, self.max_bytes)
        if self._on_not_kept is not None:
            self._on_not_kept(reason, 1)
        return False

    def close(self) -> None:
        with self._lock:
            for fh in self._files.values():
                fh.close()
            self._files.clear()


def read_pairs(root: Path, release: str, version: str) -> list[dict[str, Any]]:
    """Every whole pair of ``release``'s shadow ``version``; none when nothing was logged. A torn last line (a
    crash mid-write) is skipped; a broken line elsewhere is an error naming the file and line."""
    path = pairs_path(root, release, version)
    if not path.exists():
        return []
    return parse_pairs(str(path), path.read_bytes(), torn_tail=True)


def parse_pairs(where: str, body: bytes, torn_tail: bool) -> list[dict[str, Any]]:
    """The pairs of one JSONL body read from ``where``; a broken line is an error naming ``where`` and the line,
    except, with ``torn_tail`` (a file still being appended to), a broken last line, skipped."""
    lines = body.split(b"\n")
    pairs = []
    for n, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            pair = json.loads(raw)
            if not isinstance(pair, dict):
                raise ValueError(f"expected a JSON object, got {type(pair).__name__}")
        except ValueError as exc:
            if torn_tail and n == len(lines):  # no newline after it: the writer stopped mid-line
                log.warning("%s:%d: torn last line skipped", where, n)
                continue
            raise ValueError(f"{where}:{n}: not a shadow pair ({exc})") from None
        pairs.append(pair)
    return pairs
