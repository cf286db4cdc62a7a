"""Where live shadow pairs are kept: where the release store is, so the pairs of every ``serve`` replica are judged
together, not one pod's local files.

A local store keeps :class:`~release_assets.serving.shadow_log.ShadowLog`'s file per shadowed version,
``<store>/shadow/<release>/<version>.jsonl``. An S3 store has no append, and replicas on several machines must never
write the same object, so each ``serve`` process uploads its pairs as immutable segments::

    s3://<bucket>/<prefix>/shadow/<release>/<version>/<replica>-<start>-<seq:06d>.jsonl

``replica`` is the host name and process id (a pod's name in Kubernetes; each worker of ``serve --workers N`` is a
replica of its own), ``start`` the process's start time, ``seq`` counts its segments. A segment is uploaded once
``segment_bytes`` of pairs are waiting, every ``flush_s`` seconds otherwise, and at shutdown. Uploading runs on a
thread of its own: a request never waits for S3, and a failed upload is logged and counted (``stats``), never
raised. What waits is bounded (``max_buffer_bytes``; beyond it pairs are counted as ``dropped``), and each replica
stops at ``max_bytes`` per shadowed version, as the local file does: a forgotten shadow flag must not fill the
store. The reader lists every replica's segments of a version, in key order.

:class:`ShadowPairs` is the one interface the shadow_report asset and ``serve`` use over both places.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from release_assets.release.s3_store import S3ReleaseStore
from release_assets.release.store import LocalReleaseStore, ReleaseStore, StoreError
from release_assets.serving.shadow_log import (
    MAX_BYTES,
    NotKept,
    ShadowLog,
    pair_line,
    pair_names,
    pairs_path,
    parse_pairs,
    read_pairs,
)

log = logging.getLogger(__name__)

SEGMENT_BYTES = 1024 * 1024
FLUSH_S = 10.0
MAX_BUFFER_BYTES = 8 * 1024 * 1024
_NOT_IN_KEY = re.compile(r"[^A-Za-z0-9._-]")


class PairWriter(Protocol):
    """What ``serve`` hands every shadow pair to."""

    @property
    def stats(self) -> dict[str, int]: ...

    def append(self, pair: dict[str, Any]) -> bool: ...

    def close(self) -> None: ...


class ShadowPairs(Protocol):
    def where(self, release: str, version: str) -> str:
        """Where ``release``'s pairs for shadow ``version`` are, for messages and metadata."""
        ...

    def read(self, release: str, version: str) -> list[dict[str, Any]]:
        """Every pair of ``release``'s shadow ``version``, from every replica; none when nothing was logged."""
        ...

    def writer(self, redact: Callable[[str], str] | None, on_not_kept: NotKept | None = None) -> PairWriter:
        """This process's writer; ``redact`` cleans the free-text fields of every pair before it is kept;
        ``on_not_kept(reason, pairs)`` hears of every pair not kept (the reasons ``stats`` counts)."""
        ...


@dataclass(frozen=True)
class LocalShadowPairs:
    """One append-only file per shadowed version under ``root`` (every writer on this machine appends to it)."""

    root: Path

    def where(self, release: str, version: str) -> str:
        return str(pairs_path(self.root, release, version))

    def read(self, release: str, version: str) -> list[dict[str, Any]]:
        return read_pairs(self.root, release, version)

    def writer(self, redact: Callable[[str], str] | None, on_not_kept: NotKept | None = None) -> PairWriter:
        return ShadowLog(self.root, redact=redact, on_not_kept=on_not_kept)


def replica_id() -> str:
    """This process among the store's writers: host name (a pod's name) and process id, safe in an object key."""
    return _NOT_IN_KEY.sub("_", f"{socket.gethostname()}-{os.getpid()}")


@dataclass(frozen=True)
class S3ShadowPairs:
    """Segments under ``<prefix>/shadow/`` in the release store's bucket, through the store's bounded client."""

    client: Any
    bucket: str
    prefix: str = ""
    segment_bytes: int = SEGMENT_BYTES
    flush_s: float = FLUSH_S
    max_bytes: int = MAX_BYTES
    max_buffer_bytes: int = MAX_BUFFER_BYTES

    def folder(self, release: object, version: object) -> str:
        """The key prefix (no trailing slash) of a version's segments; ``ValueError`` for a name that is not one."""
        release, version = pair_names(release, version)
        return "/".join(p for p in (self.prefix.strip("/"), "shadow", release, version) if p)

    def where(self, release: str, version: str) -> str:
        return f"s3://{self.bucket}/{self.folder(release, version)}/"

    def segment_keys(self, release: str, version: str) -> list[str]:
        """Every replica's segments of ``release``'s shadow ``version``, in key order (replica, start, seq)."""
        base, keys, token = self.folder(release, version) + "/", [], None
        try:
            while True:
                page = self.client.list_objects_v2(
                    Bucket=self.bucket, Prefix=base, **({"ContinuationToken": token} if token else {})
                )
                keys += [o["Key"] for o in page.get("Contents", []) if o["Key"].endswith(".jsonl")]
                if not page.get("IsTruncated"):
                    return sorted(keys)
                token = page["NextContinuationToken"]
        except Exception as exc:  # botocore's ClientError and connection errors
            raise StoreError(f"{self.where(release, version)}: cannot list the shadow segments ({exc})") from None

    def read(self, release: str, version: str) -> list[dict[str, Any]]:
        pairs: list[dict[str, Any]] = []
        for key in self.segment_keys(release, version):
            uri = f"s3://{self.bucket}/{key}"
            try:
                body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            except Exception as exc:
                raise StoreError(f"{uri}: cannot read ({exc})") from None
            # A segment is uploaded whole, so any broken line is an error, the last one too.
            pairs += parse_pairs(uri, body, torn_tail=False)
        return pairs

    def writer(self, redact: Callable[[str], str] | None, on_not_kept: NotKept | None = None) -> PairWriter:
        return SegmentWriter(self, redact, replica_id(), on_not_kept)


class SegmentWriter:
    """One replica's pairs, buffered per shadowed version and uploaded as segments by a background thread."""

    def __init__(
        self,
        place: S3ShadowPairs,
        redact: Callable[[str], str] | None,
        replica: str,
        on_not_kept: NotKept | None = None,
    ) -> None:
        self.place, self._redact, self._on_not_kept = place, redact, on_not_kept
        self._name = f"{_NOT_IN_KEY.sub('_', replica)}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
        self._lock = threading.Lock()  # buffers and counts: held briefly, never during an upload
        self._flushing = threading.Lock()  # one flush at a time, so a version's segments keep their order
        self._buffers: dict[str, list[str]] = {}
        self._waiting: Counter[str] = Counter()  # bytes waiting per version folder
        self._buffered = 0  # bytes waiting in every buffer
        self._kept: Counter[str] = Counter()  # bytes this replica took per version folder, against max_bytes
        self._seq: Counter[str] = Counter()
        self._counts: Counter[str] = Counter()
        self._wake, self._closed = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._run, name="shadow-segments", daemon=True)
        self._thread.start()

    @property
    def stats(self) -> dict[str, int]:
        """written (pairs uploaded), full (not kept: this replica reached max_bytes for the version), invalid (no
        release/version), dropped (not kept: max_buffer_bytes waiting), upload_failed (pairs in failed uploads),
        segments (uploaded)."""
        with self._lock:
            names = ("written", "full", "invalid", "dropped", "upload_failed", "segments")
            return {k: self._counts[k] for k in names}

    def append(self, pair: dict[str, Any]) -> bool:
        """Queue one pair for upload; False when it will not be kept (see ``stats``). Never touches the network."""
        try:
            folder = self.place.folder(pair.get("release"), pair.get("shadow_version"))
        except ValueError:
            return self._not_kept("invalid", 1)
        line = pair_line(pair, self._redact)
        size = len(line.encode())
        with self._lock:
            if self._kept[folder] + size > self.place.max_bytes:
                refused = "full"
            elif self._buffered + size > self.place.max_buffer_bytes:
                refused = "dropped"
            else:
                refused = None
                self._buffers.setdefault(folder, []).append(line)
                self._kept[folder] += size
                self._waiting[folder] += size
                self._buffered += size
                full_segment = self._waiting[folder] >= self.place.segment_bytes
        if refused == "full":
            where = f"s3://{self.place.bucket}/{folder}/"
            warning = (
                f"{where}: this replica reached {self.place.max_bytes} bytes: further pairs are counted, not written"
            )
            return self._not_kept(refused, 1, warning)
        if refused == "dropped":
            warning = f"{self.place.max_buffer_bytes} bytes of shadow pairs wait for upload: further pairs are dropped"
            return self._not_kept(refused, 1, warning)
        if full_segment:
            self._wake.set()
        return True

    def _not_kept(self, reason: str, pairs: int, first_warning: str | None = None) -> bool:
        """Count ``pairs`` not kept for ``reason`` (warning once per reason); False, what ``append`` answers."""
        with self._lock:
            first = self._counts[reason] == 0
            self._counts[reason] += pairs
        if first and first_warning:
            log.warning("%s", first_warning)
        if self._on_not_kept is not None:
            self._on_not_kept(reason, pairs)
        return False

    def _run(self) -> None:
        while not self._closed.is_set():
            self._wake.wait(self.place.flush_s)
            self._wake.clear()
            if not self._closed.is_set():
                self.flush()

    def flush(self) -> None:
        """Upload what waits, one segment per version."""
        with self._flushing:
            with self._lock:
                taken, self._buffers, self._buffered = self._buffers, {}, 0
                self._waiting.clear()
            for folder, lines in taken.items():
                self._upload(folder, lines)

    def _upload(self, folder: str, lines: list[str]) -> None:
        with self._lock:
            self._seq[folder] += 1
            key = f"{folder}/{self._name}-{self._seq[folder]:06d}.jsonl"
        try:
            self.place.client.put_object(
                Bucket=self.place.bucket, Key=key, Body="".join(lines).encode(), ContentType="application/x-ndjson"
            )
        except Exception as exc:  # never raised: shadowing is evidence, and the store may be down for a while
            log.warning("s3://%s/%s: %d shadow pairs not uploaded (%s)", self.place.bucket, key, len(lines), exc)
            self._not_kept("upload_failed", len(lines))
            return
        with self._lock:
            self._counts["written"] += len(lines)
            self._counts["segments"] += 1

    def close(self, timeout_s: float = 30.0) -> None:
        """Stop the uploader and upload what is left (each call bounded by the client's timeouts)."""
        self._closed.set()
        self._wake.set()
        self._thread.join(timeout_s)
        self.flush()


def store_shadow_pairs(store: ReleaseStore, local_root: Path) -> ShadowPairs:
    """Where ``store``'s live shadow pairs are: files under ``local_root`` beside a local store, segments beside an
    S3 store's releases."""
    if isinstance(store, LocalReleaseStore):
        return LocalShadowPairs(Path(local_root))
    if isinstance(store, S3ReleaseStore):
        return S3ShadowPairs(store.client, store.bucket, store.prefix)
    raise StoreError(f"live shadow pairs need a local or an S3 release store, not {store!r}")


def as_shadow_pairs(place: Path | ShadowPairs) -> ShadowPairs:
    """A folder of pair files, or a place as it is."""
    return LocalShadowPairs(Path(place)) if isinstance(place, (str, os.PathLike)) else place
