"""Outcomes users report for answers the server gave: which version and variant answered each recent request id,
and each id's feedback taken once.

``POST /v1/{release}/feedback`` names an answer by the ``request_id`` the answer carried. The worker that answered
remembers ``request_id -> (release, version, variant)`` for its last ``capacity`` answers (an LRU: a bounded map,
whatever the traffic); feedback for an id no longer (or never) remembered is refused, never guessed onto a version.
An id's first feedback counts; a second one is refused as a duplicate (409), so a client's retry cannot count twice.

Several workers (``serve --workers N``): the feedback may reach another worker than the answer. Every answer is
therefore also appended, one short line written with ``O_APPEND`` (atomic for lines this short), to a journal in a
folder the workers share; a worker that does not remember an id reads the journal. The journal is rotated when it
passes ``capacity`` lines' worth of bytes (one previous generation kept), so it stays bounded too. Feedback taken is
journalled the same way, so a duplicate is refused whichever worker it reaches.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

# What a feedback reports, as the outcome label of the serving feedback counter and the canary's counters: a fixed
# set, so a client can never mint time series.
FEEDBACK_OUTCOMES = (
    "resolved",
    "unresolved",
    "thumbs_up",
    "thumbs_down",
    "escalation_needed",
    "escalation_not_needed",
)
DEFAULT_CAPACITY = 100_000  # answers remembered per worker: ~100 bytes each
LINE_BYTES = 160  # a journal line's upper bound (ids are at most 64 chars; labels are short tokens)


@dataclass(frozen=True)
class Answered:
    release: str
    version: str
    variant: str


class UnknownRequest(KeyError):
    """No answer with this id is remembered (never given, or older than the last ``capacity`` answers)."""


class DuplicateFeedback(ValueError):
    """Feedback for this id was already taken."""


class _Journal:
    """Lines ``kind\\trequest_id\\trelease\\tversion\\tvariant`` shared by the workers of one server."""

    def __init__(self, folder: Path, capacity: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path, self.previous = folder / "answers.tsv", folder / "answers.tsv.1"
        self.limit = capacity * LINE_BYTES

    def append(self, kind: str, rid: str, answered: Answered) -> None:
        line = f"{kind}\t{rid}\t{answered.release}\t{answered.version}\t{answered.variant}\n".encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
            size = os.fstat(fd).st_size
        finally:
            os.close(fd)
        if size > self.limit:
            # Two workers may both rotate: the later rename wins, the other's generation ages out early.
            with contextlib.suppress(FileNotFoundError):
                os.replace(self.path, self.previous)

    def find(self, rid: str) -> tuple[Answered | None, bool]:
        """The answer journalled under ``rid`` and whether feedback for it was already taken."""
        answered, taken = None, False
        for path in (self.previous, self.path):
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except FileNotFoundError:
                continue
            for line in text.splitlines():
                parts = line.split("\t")
                if len(parts) == 5 and parts[1] == rid:
                    if parts[0] == "answer":
                        answered = Answered(*parts[2:])
                    elif parts[0] == "feedback":
                        taken = True
        return answered, taken


class FeedbackBook:
    """What a worker knows of recent answers (see the module docstring); thread-safe."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY, shared: Path | None = None) -> None:
        if capacity < 1:
            raise ValueError(f"feedback capacity: {capacity} must be at least 1")
        self.capacity = capacity
        self._answers: OrderedDict[str, Answered] = OrderedDict()
        self._taken: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()
        self._journal = _Journal(shared, capacity) if shared is not None else None

    def answered(self, rid: str, release: str, version: str, variant: str) -> None:
        answered = Answered(release, version, variant)
        with self._lock:
            self._answers[rid] = answered
            self._answers.move_to_end(rid)
            while len(self._answers) > self.capacity:
                self._answers.popitem(last=False)
        if self._journal is not None:
            self._journal.append("answer", rid, answered)

    def take(self, rid: str, release: str) -> Answered:
        """The answer ``rid`` names in ``release``, marking its feedback taken; UnknownRequest or
        DuplicateFeedback otherwise."""
        with self._lock:
            found, taken = self._answers.get(rid), rid in self._taken
        if self._journal is not None and (found is None or not taken):
            journalled, taken_elsewhere = self._journal.find(rid)
            found, taken = found or journalled, taken or taken_elsewhere
        if found is None or found.release != release:
            raise UnknownRequest(rid)
        with self._lock:
            if taken or rid in self._taken:
                raise DuplicateFeedback(rid)
            self._taken[rid] = None
            while len(self._taken) > self.capacity:
                self._taken.popitem(last=False)
        if self._journal is not None:
            self._journal.append("feedback", rid, found)
        return found
