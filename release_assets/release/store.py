"""Where published release units and the promotion ledger live: a local folder or an S3 bucket.

Both implementations keep one layout (``releases/<name>/<version>/{bundle.tar.gz,manifest.json}`` and the
ledger under ``ledger/``) and one publish order: bundle, then manifest, then the ``latest`` pointer. A version is
visible only once its manifest exists, so a publish interrupted between steps leaves nothing a reader would take
for a release, and retrying it completes the same version.

The ledger is a hash chain (:mod:`release_assets.release.ledger_chain`): the store gives each event ``seq`` and
``prev`` as it appends, keeps a head record beside it, and verifies both on every read. The S3 implementation is
in :mod:`release_assets.release.s3_store`.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import tempfile
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from release_assets.core.atomic import copy_atomic, folder_locked, write_atomic
from release_assets.core.hashing import sha256_file
from release_assets.manifest import release_name_problem
from release_assets.release.ledger_chain import (
    GENESIS,
    LedgerError,
    VerifiedLedger,
    event_hash,
    parse_event,
    parse_head,
    verify_chain,
)

__all__ = ["GENESIS", "LedgerError", "VerifiedLedger", "event_hash", "verify_chain"]  # re-exported for callers

BUNDLE = "bundle.tar.gz"
MANIFEST = "manifest.json"
# Files kept beside a version's bundle (its signature, its attestations): named by the writer, never part of the
# bundle, so never of the version. A plain lower-case file name, so it cannot leave the version's folder.
_BESIDE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")


class StoreError(RuntimeError):
    """A store operation that cannot complete; names the location."""


_VERSION = re.compile(r"^[0-9a-f]{16}$")


def check_release_name(name: str) -> str:
    """Release names and versions become paths and keys: refuse anything that could leave the store."""
    problem = release_name_problem(name)
    if problem:
        raise StoreError(problem)
    return name


def check_version(version: str) -> str:
    if not isinstance(version, str) or not _VERSION.match(version):
        raise StoreError(f"{version!r} is not a release version (16 hex digits, as `release-assets list` shows)")
    return version


def manifest_json(where: str, raw: bytes) -> dict[str, Any]:
    """A published manifest that does not parse (truncated by a full disk, edited by hand) is named, not dumped."""
    try:
        manifest = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise StoreError(
            f"{where}: not a readable release manifest ({exc}); `release-assets verify` the bundle"
        ) from None
    if not isinstance(manifest, dict):
        raise StoreError(f"{where}: not a readable release manifest (expected a JSON object)")
    return manifest


def check_writable_folder(root: Path, what: str) -> None:
    """Preflight of a local folder: ``root`` can be created and a file written in it (a temp file, removed again)."""
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"{what} at {root} cannot be created: {exc.strerror or exc}") from None
    try:
        fd, tmp = tempfile.mkstemp(dir=root, prefix=".preflight-")
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise StoreError(f"{what} at {root} is not writable: {exc.strerror or exc}") from None


def check_beside_name(filename: str) -> str:
    if not isinstance(filename, str) or not _BESIDE.match(filename) or filename in (BUNDLE, MANIFEST):
        raise StoreError(
            f"{filename!r} cannot be kept beside a bundle (a lower-case file name, not {BUNDLE} or {MANIFEST})"
        )
    return filename


_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def check_sha256(digest: str) -> str:
    if not isinstance(digest, str) or not _SHA256.match(digest):
        raise StoreError(f"{digest!r} is not a sha256 digest (64 lower-case hex digits)")
    return digest


class ReleaseStore(ABC):
    """Published release units, the data they hold by reference, and the append-only promotion ledger."""

    # -- releases --------------------------------------------------------------------------------------------
    def publish(
        self,
        name: str,
        version: str,
        bundle: Path,
        manifest: dict[str, Any],
        data: dict[str, Path] | None = None,
        beside: dict[str, bytes] | None = None,
    ) -> bool:
        """Publish ``bundle`` and ``manifest`` as ``name``/``version``; False if that version already exists.

        ``data``: the files the bundle holds by reference (sha256 -> file), stored first, content-addressed, so
        a visible version never names data that is not there; one already stored (an earlier version's) is kept.
        ``beside``: files kept beside the bundle (file name -> bytes: its signature, its attestations), written
        before the manifest, so a signed version is never visible unsigned.
        """
        with self._publishing(name, version):
            if self.is_published(name, version):
                return False
            for digest, path in sorted((data or {}).items()):
                if not self.has_data(digest):
                    self._put_data(digest, path)
            self._put_bundle(name, version, bundle)
            for filename, body in sorted((beside or {}).items()):
                self.put_beside(name, version, filename, body)
            self._put_manifest(name, version, manifest)  # from here on the version is visible
            self._put_pointer(name, {"version": version})
            return True

    def _publishing(self, name: str, version: str) -> AbstractContextManager[None]:
        """Held from the check to the manifest: two runs that built the same content at once (same version) would
        otherwise both find it unpublished, both publish, and both report it as theirs. The local store locks the
        version's folder, so one publishes and the other is told the version exists. The S3 store has no lock yet
        (a conditional PUT of the manifest would be its equivalent)."""
        return nullcontext()

    def is_published(self, name: str, version: str) -> bool:
        return self.manifest(name, version) is not None

    @abstractmethod
    def _put_bundle(self, name: str, version: str, bundle: Path) -> None: ...

    @abstractmethod
    def _put_manifest(self, name: str, version: str, manifest: dict[str, Any]) -> None: ...

    @abstractmethod
    def _put_pointer(self, name: str, pointer: dict[str, Any]) -> None: ...

    @abstractmethod
    def manifest(self, name: str, version: str) -> dict[str, Any] | None: ...

    @abstractmethod
    def versions(self, name: str) -> list[str]:
        """Published versions (those with a manifest), in no particular order."""

    @abstractmethod
    def fetch_bundle(self, name: str, version: str, dest: Path) -> Path: ...

    @abstractmethod
    def bundle_uri(self, name: str, version: str) -> str:
        """Where a person finds the bundle: a local path or an ``s3://`` URI."""

    @abstractmethod
    def latest(self, name: str) -> str | None: ...

    # -- files beside a version's bundle (signature, attestations: outside the bundle and the version) -----------
    def put_beside(self, name: str, version: str, filename: str, body: bytes) -> None:
        self._put_beside(name, version, check_beside_name(filename), body)

    @abstractmethod
    def _put_beside(self, name: str, version: str, filename: str, body: bytes) -> None: ...

    @abstractmethod
    def beside(self, name: str, version: str, filename: str) -> bytes | None:
        """The bytes of ``filename`` beside ``name``/``version``'s bundle; None when there is no such file."""

    @abstractmethod
    def names_beside(self, name: str, version: str) -> list[str]:
        """The file names kept beside ``name``/``version``'s bundle, sorted."""

    # -- data held by reference (content-addressed: data/sha256/<digest>) --------------------------------------
    @abstractmethod
    def has_data(self, digest: str) -> bool: ...

    @abstractmethod
    def _put_data(self, digest: str, path: Path) -> None: ...

    @abstractmethod
    def _get_data(self, digest: str, dest: Path) -> None:
        """Copy the stored bytes to ``dest``; :class:`StoreError` when they are not there."""

    @abstractmethod
    def data_uri(self, digest: str) -> str:
        """Where the bytes of ``digest`` are kept: a local path or an ``s3://`` URI."""

    def fetch_data(self, digest: str, dest: Path) -> Path:
        """The stored bytes of ``digest`` at ``dest``, checked against it (a changed object is refused, removed)."""
        self._get_data(check_sha256(digest), dest)
        found = sha256_file(dest)
        if found != digest:
            dest.unlink(missing_ok=True)
            raise StoreError(f"{self.data_uri(digest)}: sha256 {found[:16]}... does not match {digest[:16]}...")
        return dest

    # -- ledger ----------------------------------------------------------------------------------------------
    @abstractmethod
    def append_event(self, name: str, event: dict[str, Any]) -> dict[str, Any]:
        """Append one event chained to the last one and return it.

        Sets ``seq`` and ``prev`` on ``event`` itself, so what a caller returns is what was stored. Concurrent
        writers never lose each other's events and never fork the chain.
        """

    @abstractmethod
    def read_ledger(self, name: str) -> VerifiedLedger:
        """``name``'s ledger in append order, verified; :class:`LedgerError` if it was tampered with."""

    def events(self, name: str) -> list[dict[str, Any]]:
        """Every event of ``name``'s ledger, in append order, after verifying the chain and the head record."""
        return self.read_ledger(name).events

    # -- preflight -------------------------------------------------------------------------------------------
    @abstractmethod
    def preflight(self) -> None:
        """Raise :class:`StoreError` (one line: the location and what failed) unless the store can be used.

        Called before a run does any work, so an unusable store fails in seconds instead of after training.
        """


class LocalReleaseStore(ReleaseStore):
    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    def _release_dir(self, name: str) -> Path:
        return self.root / "releases" / check_release_name(name)

    def _dir(self, name: str, version: str) -> Path:
        return self._release_dir(name) / check_version(version)

    def _publishing(self, name: str, version: str) -> AbstractContextManager[None]:
        return folder_locked(self._dir(name, version))  # across processes, on the version's folder

    def _put_bundle(self, name: str, version: str, bundle: Path) -> None:
        copy_atomic(bundle, self._dir(name, version) / BUNDLE)  # durable before the manifest that makes it visible

    def _put_manifest(self, name: str, version: str, manifest: dict[str, Any]) -> None:
        write_atomic(self._dir(name, version) / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True).encode())

    def _put_pointer(self, name: str, pointer: dict[str, Any]) -> None:
        write_atomic(self._release_dir(name) / "latest.json", json.dumps(pointer).encode())

    def manifest(self, name: str, version: str) -> dict[str, Any] | None:
        path = self._dir(name, version) / MANIFEST
        return manifest_json(str(path), path.read_bytes()) if path.exists() else None

    def versions(self, name: str) -> list[str]:
        base = self._release_dir(name)
        return sorted(p.name for p in base.iterdir() if (p / MANIFEST).exists()) if base.exists() else []

    def fetch_bundle(self, name: str, version: str, dest: Path) -> Path:
        source = self._dir(name, version) / BUNDLE
        if not source.exists():
            raise StoreError(f"{source}: no such bundle")
        shutil.copyfile(source, dest)
        return dest

    def bundle_uri(self, name: str, version: str) -> str:
        return str(self._dir(name, version) / BUNDLE)

    def latest(self, name: str) -> str | None:
        path = self._release_dir(name) / "latest.json"
        return json.loads(path.read_text())["version"] if path.exists() else None

    def _put_beside(self, name: str, version: str, filename: str, body: bytes) -> None:
        write_atomic(self._dir(name, version) / filename, body)

    def beside(self, name: str, version: str, filename: str) -> bytes | None:
        path = self._dir(name, version) / check_beside_name(filename)
        return path.read_bytes() if path.is_file() else None

    def names_beside(self, name: str, version: str) -> list[str]:
        folder = self._dir(name, version)
        if not folder.is_dir():
            return []
        return sorted(
            p.name
            for p in folder.iterdir()
            if p.is_file() and _BESIDE.match(p.name) and p.name not in (BUNDLE, MANIFEST)
        )

    def _data_path(self, digest: str) -> Path:
        digest = check_sha256(digest)
        return self.root / "data" / "sha256" / digest[:2] / digest

    def has_data(self, digest: str) -> bool:
        return self._data_path(digest).is_file()

    def _put_data(self, digest: str, path: Path) -> None:
        copy_atomic(path, self._data_path(digest))

    def _get_data(self, digest: str, dest: Path) -> None:
        source = self._data_path(digest)
        if not source.is_file():
            raise StoreError(f"{source}: no such data in the release store")
        shutil.copyfile(source, dest)

    def data_uri(self, digest: str) -> str:
        return str(self._data_path(digest))

    def _ledger(self, name: str) -> Path:
        return self.root / "ledger" / f"{check_release_name(name)}.jsonl"

    def _head(self, name: str) -> Path:
        return self.root / "ledger" / f"{check_release_name(name)}.head.json"

    def _lines(self, text: str) -> list[tuple[int, str]]:
        return [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]

    def append_event(self, name: str, event: dict[str, Any]) -> dict[str, Any]:
        path = self._ledger(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            # One exclusive lock from reading the tail to writing the head: writers queue, so each one chains
            # from the event before it, and O_APPEND keeps every line whole.
            fcntl.flock(fd, fcntl.LOCK_EX)
            lines = self._lines(os.pread(fd, os.fstat(fd).st_size, 0).decode())
            seq, prev = 1, GENESIS
            if lines:
                n, text = lines[-1]
                last = parse_event(f"{path} line {n}", text)
                # A legacy tail has no seq: its position is its seq, as verification counts it.
                seq, prev = (last["seq"] if type(last.get("seq")) is int else len(lines)) + 1, event_hash(last)
            event.update(seq=seq, prev=prev)
            os.write(fd, (json.dumps(event, sort_keys=True) + "\n").encode())
            os.fsync(fd)
            write_atomic(self._head(name), json.dumps({"seq": seq, "hash": event_hash(event)}).encode())
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        return event

    def read_ledger(self, name: str) -> VerifiedLedger:
        path, head_path = self._ledger(name), self._head(name)
        text, raw_head = "", None
        if path.exists():
            with open(path, "rb") as fh:
                fcntl.flock(fh, fcntl.LOCK_SH)  # no torn last line, and a head that matches the lines read
                text = fh.read().decode()
                raw_head = head_path.read_bytes() if head_path.exists() else None
        elif head_path.exists():
            raw_head = head_path.read_bytes()
        lines = self._lines(text)
        entries = [(f"{path} line {n}", f"line {n}", parse_event(f"{path} line {n}", line)) for n, line in lines]
        head = parse_head(str(head_path), raw_head)
        legacy = verify_chain(
            entries, head, head_at=str(head_path), missing_at=lambda i: f"{path} line {lines[i - 1][0] + 1 if i else 1}"
        )
        return VerifiedLedger([e for _, _, e in entries], legacy, head)

    def preflight(self) -> None:
        check_writable_folder(self.root, "local store")
