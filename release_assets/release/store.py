"""Where published release units and the promotion ledger live: a local folder or an S3 bucket.

Both implementations keep one layout (``releases/<name>/<version>/{bundle.tar.gz,manifest.json}`` and the
ledger under ``ledger/``) and one publish order: bundle, then manifest, then the ``latest`` pointer. A version is
visible only once its manifest exists, so a publish interrupted between steps leaves nothing a reader would take
for a release, and retrying it completes the same version.

The ledger is a hash chain: the store gives each event ``seq`` (1-based) and ``prev`` (sha256 of the previous
event's canonical JSON, 64 zeros for the first) as it appends, and keeps a head record (last ``seq`` and its hash)
beside it. Every read verifies both, so an edited, deleted or reordered event is an error naming the line or key.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from release_assets.atomic import copy_atomic, write_atomic
from release_assets.manifest import NAME

BUNDLE = "bundle.tar.gz"
MANIFEST = "manifest.json"
_S3_HEAD = "head.json"
_S3_EVENT = re.compile(r"^\d{12}\.json$")
_S3_CONFLICTS = ("PreconditionFailed", "ConditionalRequestConflict")


class StoreError(RuntimeError):
    """A store operation that cannot complete; names the location."""


_RELEASE_NAME = re.compile(NAME)
_VERSION = re.compile(r"^[0-9a-f]{16}$")


def check_release_name(name: str) -> str:
    """Release names and versions become paths and keys: refuse anything that could leave the store."""
    if not isinstance(name, str) or not _RELEASE_NAME.match(name):
        raise StoreError(f"{name!r} is not a release name (lower-case letters, digits and underscores)")
    return name


def check_version(version: str) -> str:
    if not isinstance(version, str) or not _VERSION.match(version):
        raise StoreError(f"{version!r} is not a release version (16 hex digits, as `release-assets list` shows)")
    return version


class LedgerError(ValueError):
    """The promotion ledger was changed after it was written, or cannot be read; names the file and line (or key).

    The hash chain and the head record are tamper-evidence against a quiet edit, deletion or reordering of events,
    not security: whoever can write the store can rewrite every event and the head record consistently.
    """


GENESIS = "0" * 64  # the ``prev`` of a ledger's first event


def event_hash(event: dict[str, Any]) -> str:
    """sha256 of the event's canonical JSON, its own ``prev`` included: what the next event's ``prev`` holds."""
    return hashlib.sha256(json.dumps(event, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass(frozen=True)
class VerifiedLedger:
    events: list[dict[str, Any]]
    legacy: int  # events written before the chain existed (no seq/prev); allowed only as a prefix
    head: dict[str, Any] | None  # {"seq", "hash"} of the last event, as the last writer recorded it


def _parse(where: str, raw: bytes | str) -> dict[str, Any]:
    try:
        parsed = json.loads(raw)
    except ValueError as exc:
        raise LedgerError(f"{where}: not a JSON event ({exc})") from None
    if not isinstance(parsed, dict):
        raise LedgerError(f"{where}: not a JSON event")
    return parsed


def _parse_head(where: str, raw: bytes | None) -> dict[str, Any] | None:
    if raw is None:
        return None  # no append since the chain began, or a ledger older than it
    head = _parse(where, raw)
    if type(head.get("seq")) is not int or head["seq"] < 1 or not isinstance(head.get("hash"), str):
        raise LedgerError(f"{where}: not a head record ({head!r})")
    return head


def verify_chain(
    entries: list[tuple[str, str, dict[str, Any]]],
    head: dict[str, Any] | None,
    *,
    head_at: str,
    missing_at: Callable[[int], str],
) -> int:
    """Check ``entries`` (location, short label, event), in ledger order, against each other and the head record.

    Returns the number of legacy (unchained) events, which may only come first; the first chained event after them
    chains from the last of them. ``missing_at(i)`` names where the event at index ``i`` would be.
    """
    legacy, last_seq, last_hash = 0, 0, GENESIS
    for i, (where, label, e) in enumerate(entries):
        if "seq" not in e and "prev" not in e:
            if i > legacy:
                raise LedgerError(f"{where}: no seq/prev after chained events (an unchained event was inserted)")
            legacy += 1
        else:
            seq, prev = e.get("seq"), e.get("prev")
            if type(seq) is not int or not isinstance(prev, str):
                raise LedgerError(f"{where}: damaged chain fields (seq={seq!r}, prev={prev!r})")
            if seq != last_seq + 1:
                _out_of_sequence(entries, i, seq, last_seq, missing_at)
            if prev != last_hash and i == 0:
                raise LedgerError(f"{where}: edited (its `prev` is not the 64 zeros of a first event)")
            if prev != last_hash:
                raise LedgerError(f"{entries[i - 1][0]}: edited (its hash does not match the `prev` of {label})")
        last_seq, last_hash = i + 1, event_hash(e)  # seq == position, checked above
    if head is not None and head["seq"] > last_seq:
        lost = head["seq"] - last_seq
        what = "the last event was deleted" if lost == 1 else f"the last {lost} events were deleted"
        raise LedgerError(
            f"{missing_at(last_seq)} is missing: the head record says {head['seq']} events, "
            f"the ledger has {last_seq} ({what})"
        )
    # The chain cannot see an edit to its last event (nothing points at it); the head record can.
    if head is not None and event_hash(entries[head["seq"] - 1][2]) != head["hash"]:
        raise LedgerError(f"{entries[head['seq'] - 1][0]}: edited (its hash does not match the head record {head_at})")
    return legacy


def _out_of_sequence(entries: list, i: int, seq: int, last_seq: int, missing_at: Callable[[int], str]) -> None:
    where, expected = entries[i][0], last_seq + 1
    if any(e.get("seq") == expected for _, _, e in entries[i + 1 :]):
        raise LedgerError(f"{where}: reordered (seq {seq} before seq {expected})")
    if seq > expected:
        gap = "is missing" if seq == expected + 1 else f"and the {seq - expected - 1} after it are missing"
        raise LedgerError(f"{missing_at(i)} {gap} (seq jumps from {last_seq} to {seq})")
    raise LedgerError(f"{where}: out of order (seq {seq} after seq {last_seq})")


def _manifest_json(where: str, raw: bytes) -> dict[str, Any]:
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


class ReleaseStore(ABC):
    """Published release units and the append-only promotion ledger."""

    # -- releases --------------------------------------------------------------------------------------------
    def publish(self, name: str, version: str, bundle: Path, manifest: dict[str, Any]) -> bool:
        """Publish ``bundle`` and ``manifest`` as ``name``/``version``; False if that version already exists."""
        if self.is_published(name, version):
            return False
        self._put_bundle(name, version, bundle)
        self._put_manifest(name, version, manifest)  # from here on the version is visible
        self._put_pointer(name, {"version": version})
        return True

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

    def _put_bundle(self, name: str, version: str, bundle: Path) -> None:
        copy_atomic(bundle, self._dir(name, version) / BUNDLE)  # durable before the manifest that makes it visible

    def _put_manifest(self, name: str, version: str, manifest: dict[str, Any]) -> None:
        write_atomic(self._dir(name, version) / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True).encode())

    def _put_pointer(self, name: str, pointer: dict[str, Any]) -> None:
        write_atomic(self._release_dir(name) / "latest.json", json.dumps(pointer).encode())

    def manifest(self, name: str, version: str) -> dict[str, Any] | None:
        path = self._dir(name, version) / MANIFEST
        return _manifest_json(str(path), path.read_bytes()) if path.exists() else None

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
                last = _parse(f"{path} line {n}", text)
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
        entries = [(f"{path} line {n}", f"line {n}", _parse(f"{path} line {n}", line)) for n, line in lines]
        head = _parse_head(str(head_path), raw_head)
        legacy = verify_chain(
            entries, head, head_at=str(head_path), missing_at=lambda i: f"{path} line {lines[i - 1][0] + 1 if i else 1}"
        )
        return VerifiedLedger([e for _, _, e in entries], legacy, head)

    def preflight(self) -> None:
        from release_assets.release.preflight import check_writable_folder

        check_writable_folder(self.root, "local store")


class S3ReleaseStore(ReleaseStore):
    """The same layout in a bucket, through any S3-compatible endpoint (AWS, MinIO, LocalStack).

    S3 has no append or lock, so the ledger is one object per event, ``ledger/<name>/<seq:012d>.json``, created
    with a conditional put (``If-None-Match: *``): of two writers that read the same tail, one gets the seq and the
    other a 412 and chains on from the winner's event. Key order is seq order, a total order that no writer's clock
    decides. ``ledger/<name>/head.json`` holds the last seq and hash; it only moves forward (``If-Match``).
    Objects from before the chain (``<time>-<uuid>.json``) are read as a legacy prefix, ordered by their time.
    """

    APPEND_ATTEMPTS = 64  # each failed attempt means another writer appended, so this bounds contention, not time

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self.client, self.bucket, self.prefix = client, bucket, prefix.strip("/")

    def _key(self, *parts: str) -> str:
        if len(parts) > 1 and parts[0] in ("releases", "ledger"):
            check_release_name(parts[1])
            if parts[0] == "releases" and len(parts) > 3:
                check_version(parts[2])
        return "/".join([p for p in (self.prefix, *parts) if p])

    def _get(self, key: str) -> bytes | None:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except self.client.exceptions.NoSuchKey:
            return None

    def _put_bundle(self, name: str, version: str, bundle: Path) -> None:
        self.client.upload_file(str(bundle), self.bucket, self._key("releases", name, version, BUNDLE))

    def _put_manifest(self, name: str, version: str, manifest: dict[str, Any]) -> None:
        body = json.dumps(manifest, indent=1, sort_keys=True).encode()
        self.client.put_object(Bucket=self.bucket, Key=self._key("releases", name, version, MANIFEST), Body=body)

    def _put_pointer(self, name: str, pointer: dict[str, Any]) -> None:
        key = self._key("releases", name, "latest.json")
        self.client.put_object(Bucket=self.bucket, Key=key, Body=json.dumps(pointer).encode())

    def manifest(self, name: str, version: str) -> dict[str, Any] | None:
        key = self._key("releases", name, version, MANIFEST)
        body = self._get(key)
        return _manifest_json(f"s3://{self.bucket}/{key}", body) if body is not None else None

    def _list(self, prefix: str) -> list[str]:
        keys, token = [], None
        while True:
            kwargs = {"Bucket": self.bucket, "Prefix": prefix, **({"ContinuationToken": token} if token else {})}
            page = self.client.list_objects_v2(**kwargs)
            keys += [o["Key"] for o in page.get("Contents", [])]
            if not page.get("IsTruncated"):
                return keys
            token = page["NextContinuationToken"]

    def versions(self, name: str) -> list[str]:
        base = self._key("releases", name) + "/"
        return sorted({k[len(base) :].split("/")[0] for k in self._list(base) if k.endswith("/" + MANIFEST)})

    def fetch_bundle(self, name: str, version: str, dest: Path) -> Path:
        key = self._key("releases", name, version, BUNDLE)
        try:
            self.client.download_file(self.bucket, key, str(dest))
        except Exception as exc:
            raise StoreError(f"s3://{self.bucket}/{key}: cannot download ({exc})") from None
        return dest

    def bundle_uri(self, name: str, version: str) -> str:
        return f"s3://{self.bucket}/{self._key('releases', name, version, BUNDLE)}"

    def latest(self, name: str) -> str | None:
        body = self._get(self._key("releases", name, "latest.json"))
        return json.loads(body)["version"] if body else None

    def _uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def _event_key(self, name: str, seq: int) -> str:
        return self._key("ledger", name, f"{seq:012d}.json")

    def _load(self, key: str) -> dict[str, Any]:
        body = self._get(key)
        if body is None:  # listed a moment ago, and events are never deleted
            raise LedgerError(f"{self._uri(key)}: deleted while the ledger was read")
        return _parse(self._uri(key), body)

    def _scan(self, name: str) -> tuple[list[str], list[str]]:
        """Chained event keys in seq order (12 digits: name order is seq order), and legacy keys."""
        base = self._key("ledger", name) + "/"
        chained, legacy = [], []
        for key in self._list(base):
            rest = key[len(base) :]
            if rest != _S3_HEAD and "/" not in rest:
                (chained if _S3_EVENT.match(rest) else legacy).append(key)
        return sorted(chained), legacy

    def _legacy(self, keys: list[str]) -> list[tuple[str, dict[str, Any]]]:
        # The order the pre-chain reader used: the writers' clocks.
        return sorted(((k, self._load(k)) for k in keys), key=lambda ke: (ke[1].get("time", ""), ke[0]))

    def _tail(self, name: str) -> tuple[int, str]:
        chained, legacy = self._scan(name)
        if chained:
            return int(chained[-1].rsplit("/", 1)[-1][:12]), event_hash(self._load(chained[-1]))
        if legacy:
            return len(legacy), event_hash(self._legacy(legacy)[-1][1])
        return 0, GENESIS

    def _conflict(self, exc: Exception) -> bool:
        # 412: the key exists (or the head moved); 409: a concurrent conditional write to the key is in flight.
        return getattr(exc, "response", {}).get("Error", {}).get("Code") in _S3_CONFLICTS

    def append_event(self, name: str, event: dict[str, Any]) -> dict[str, Any]:
        last, prev = self._tail(name)
        for _ in range(self.APPEND_ATTEMPTS):
            event.update(seq=last + 1, prev=prev)
            key = self._event_key(name, last + 1)
            body = json.dumps(event, sort_keys=True).encode()
            try:
                self.client.put_object(Bucket=self.bucket, Key=key, Body=body, IfNoneMatch="*")
            except self.client.exceptions.ClientError as exc:
                if not self._conflict(exc):
                    raise
                taken = self._get(key)
                if taken is None:
                    time.sleep(0.05)  # 409: the other write is still in flight; try the same seq again
                else:  # another writer took this seq: chain from its event
                    last, prev = last + 1, event_hash(_parse(self._uri(key), taken))
                continue
            self._advance_head(name, last + 1, event_hash(event))
            return event
        where = self._uri(self._key("ledger", name))
        raise StoreError(f"{where}/: no free seq after {self.APPEND_ATTEMPTS} attempts (too many concurrent writers)")

    def _advance_head(self, name: str, seq: int, digest: str) -> None:
        """Move the head record to ``seq``, never back: concurrent writers finish out of order."""
        key = self._key("ledger", name, _S3_HEAD)
        body = json.dumps({"seq": seq, "hash": digest}).encode()
        for _ in range(self.APPEND_ATTEMPTS):
            try:
                current = self.client.get_object(Bucket=self.bucket, Key=key)
            except self.client.exceptions.NoSuchKey:
                condition = {"IfNoneMatch": "*"}
            else:
                if _parse_head(self._uri(key), current["Body"].read())["seq"] >= seq:
                    return
                condition = {"IfMatch": current["ETag"]}
            try:
                self.client.put_object(Bucket=self.bucket, Key=key, Body=body, **condition)
                return
            except self.client.exceptions.ClientError as exc:
                if not self._conflict(exc):
                    raise
        # Still racing after every attempt: the head lags behind the ledger, which reading accepts.

    def read_ledger(self, name: str) -> VerifiedLedger:
        head_key = self._key("ledger", name, _S3_HEAD)
        # The head before the listing: a writer moves the head only once its event exists, so every event the
        # head counts is in the listing that follows.
        head = _parse_head(self._uri(head_key), self._get(head_key))
        chained_keys, legacy_keys = self._scan(name)
        legacy, chained = self._legacy(legacy_keys), [(k, self._load(k)) for k in chained_keys]
        if legacy and chained and legacy[-1][1].get("time", "") > chained[0][1].get("time", ""):
            where = self._uri(legacy[-1][0])
            raise LedgerError(f"{where}: an unchained event written after the chain began (an old writer?)")
        loaded = legacy + chained
        entries = [(self._uri(k), k.rsplit("/", 1)[-1], e) for k, e in loaded]
        count = verify_chain(
            entries, head, head_at=self._uri(head_key), missing_at=lambda i: self._uri(self._event_key(name, i + 1))
        )
        for key, e in chained:  # a consistent chain under the wrong names would fork at the next append
            if int(key.rsplit("/", 1)[-1][:12]) != e["seq"]:
                raise LedgerError(f"{self._uri(key)}: holds seq {e['seq']} (the object was renamed)")
        return VerifiedLedger([e for _, e in loaded], count, head)

    def preflight(self) -> None:
        """``head_bucket`` and one listing of the prefix, with this store's client: its timeouts and retries bound
        how long this takes, so give it a short-fused client (``ArtifactStore.preflight`` does)."""
        from release_assets.release.preflight import probe_s3

        probe_s3(self.client, self.bucket, self.prefix)
