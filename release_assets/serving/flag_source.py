"""Where a release's flag document lives: a file in a folder, or an object in the S3 release store.

Flags live where the release store lives, so every ``serve`` replica reading that store routes by the same
document: ``<store>/flags/<release>.flagd.json`` on a local store, ``s3://<bucket>/<prefix>/flags/<release>.flagd.json``
next to the releases on an S3 one. A :class:`FlagSource` only moves bytes; what a document may say is checked by
:mod:`release_assets.serving.flags` before it is written and again before it routes.

Reading is a cheap "has it changed since ``tag``?": the file's (inode, size, mtime, ctime), or the object's ETag in a
conditional GET (``If-None-Match``; a 304 costs no body). Writing replaces the document whole: a renamed temp file,
or one PUT (S3 has no partial object: a reader gets the old body or the new one).
"""

from __future__ import annotations

import os
from collections.abc import Hashable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Protocol

from release_assets.core.atomic import replacing
from release_assets.manifest import release_name_problem
from release_assets.release.s3_store import S3ReleaseStore
from release_assets.release.store import LocalReleaseStore, ReleaseStore, StoreError

SUFFIX = ".flagd.json"
_NOT_MODIFIED = ("304", "NotModified")
_MISSING = ("404", "NoSuchKey", "NotFound")


class Unchanged(Enum):
    """The document is the one read with the tag given."""

    UNCHANGED = "unchanged"


UNCHANGED = Unchanged.UNCHANGED


@dataclass(frozen=True)
class FlagBytes:
    """A document as read: its bytes and the tag that says, next time, whether it changed."""

    tag: Hashable
    raw: bytes


class FlagSourceUnavailable(Exception):
    """The source could not be asked (an S3 endpoint down): nothing is known about the document."""


class FlagSource(Protocol):
    def where(self, release: str) -> str:
        """The document's location, for messages."""
        ...

    def read(self, release: str, tag: Hashable | None) -> FlagBytes | Unchanged | None:
        """The document, :data:`UNCHANGED` when it is still the one read with ``tag``, None when there is none.
        ``OSError``: a local file that cannot be read; :class:`FlagSourceUnavailable`: the store cannot be asked."""
        ...

    def write(self, release: str, text: str) -> None:
        """Replace the document whole with ``text`` (already validated by the caller)."""
        ...


def flags_path(flags_dir: Path, release: str) -> Path:
    return Path(flags_dir) / f"{release}{SUFFIX}"


def _file_name(release: str) -> str:
    problem = release_name_problem(release)
    if problem:  # a name never becomes a path or key outside the flags folder
        raise ValueError(f"release: {problem}")
    return f"{release}{SUFFIX}"


@dataclass(frozen=True)
class LocalFlagSource:
    """Flag files in a folder (what flagd in a sidecar could watch too)."""

    folder: Path

    def where(self, release: str) -> str:
        return str(self.folder / _file_name(release))

    def read(self, release: str, tag: Hashable | None) -> FlagBytes | Unchanged | None:
        path = self.folder / _file_name(release)
        try:
            info = path.stat()
            seen = (info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
            if seen == tag:
                return UNCHANGED
            return FlagBytes(seen, path.read_bytes())
        except FileNotFoundError:
            return None

    def write(self, release: str, text: str) -> None:
        path = self.folder / _file_name(release)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_file(path, text)


def write_file(path: Path, text: str) -> None:
    """``text`` to ``path`` whole (temp file + rename)."""
    try:
        before = path.stat().st_mtime_ns
    except FileNotFoundError:
        before = None
    with replacing(path) as tmp:
        tmp.write_text(text)
        # A file watcher (flagd's, in a sidecar) reloads only when the mtime grows: on a coarse clock two writes can
        # share one, so step past. 1 ms, not 1 ns, because flagd's watcher compares float seconds.
        if before is not None and tmp.stat().st_mtime_ns <= before:
            os.utime(tmp, ns=(before + 1_000_000, before + 1_000_000))


def _code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


@dataclass(frozen=True)
class S3FlagSource:
    """Flag documents as objects ``<prefix>/flags/<release>.flagd.json`` in the store's bucket, read with the
    store's bounded client (:func:`release_assets.core.s3_client.bounded_client`)."""

    client: Any
    bucket: str
    prefix: str = ""

    def _key(self, release: str) -> str:
        return "/".join(p for p in (self.prefix.strip("/"), "flags", _file_name(release)) if p)

    def where(self, release: str) -> str:
        return f"s3://{self.bucket}/{self._key(release)}"

    def read(self, release: str, tag: Hashable | None) -> FlagBytes | Unchanged | None:
        condition = {"IfNoneMatch": tag} if isinstance(tag, str) else {}
        try:
            got = self.client.get_object(Bucket=self.bucket, Key=self._key(release), **condition)
            return FlagBytes(got["ETag"], got["Body"].read())
        except Exception as exc:  # botocore's ClientError and connection errors
            code = _code(exc)
            if code in _NOT_MODIFIED:
                return UNCHANGED
            if code in _MISSING:
                return None
            raise FlagSourceUnavailable(f"{self.where(release)}: cannot read ({exc})") from None

    def write(self, release: str, text: str) -> None:
        try:
            self.client.put_object(
                Bucket=self.bucket, Key=self._key(release), Body=text.encode(), ContentType="application/json"
            )
        except Exception as exc:
            raise StoreError(f"{self.where(release)}: cannot write ({exc})") from None


def as_flag_source(flags: Path | FlagSource) -> FlagSource:
    """A folder of flag files, or a source as it is."""
    return LocalFlagSource(Path(flags)) if isinstance(flags, (str, os.PathLike)) else flags


def store_flags(store: ReleaseStore) -> Path | FlagSource:
    """Where ``store``'s flag documents live: the ``flags`` folder beside a local store's releases, the ``flags/``
    objects beside an S3 store's."""
    if isinstance(store, LocalReleaseStore):
        return store.root / "flags"
    if isinstance(store, S3ReleaseStore):
        return S3FlagSource(store.client, store.bucket, store.prefix)
    raise StoreError(f"flag documents need a local or an S3 release store, not {store!r}")
