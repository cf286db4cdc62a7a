"""Where published release units and the promotion ledger live: a local folder or an S3 bucket.

Both implementations keep one layout (``releases/<name>/<version>/{bundle.tar.gz,manifest.json}`` and the
ledger under ``ledger/``) and one publish order: bundle, then manifest, then the ``latest`` pointer. A version is
visible only once its manifest exists, so a publish interrupted between steps leaves nothing a reader would take
for a release, and retrying it completes the same version.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
import uuid
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

BUNDLE = "bundle.tar.gz"
MANIFEST = "manifest.json"


class StoreError(RuntimeError):
    """A store operation that cannot complete; names the location."""


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
    def append_event(self, name: str, event: dict[str, Any]) -> None:
        """Append one event; concurrent writers never lose each other's events."""

    @abstractmethod
    def events(self, name: str) -> list[dict[str, Any]]:
        """Every event of ``name``'s ledger, in append order."""


class LocalReleaseStore(ReleaseStore):
    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    def _dir(self, name: str, version: str) -> Path:
        return self.root / "releases" / name / version

    def _atomic_write(self, target: Path, data: bytes) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _put_bundle(self, name: str, version: str, bundle: Path) -> None:
        target = self._dir(name, version) / BUNDLE
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{BUNDLE}.")
        os.close(fd)
        try:
            shutil.copyfile(bundle, tmp)
            with open(tmp, "rb+") as fh:  # durable before the manifest that makes it visible
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _put_manifest(self, name: str, version: str, manifest: dict[str, Any]) -> None:
        self._atomic_write(self._dir(name, version) / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True).encode())

    def _put_pointer(self, name: str, pointer: dict[str, Any]) -> None:
        self._atomic_write(self.root / "releases" / name / "latest.json", json.dumps(pointer).encode())

    def manifest(self, name: str, version: str) -> dict[str, Any] | None:
        path = self._dir(name, version) / MANIFEST
        return json.loads(path.read_text()) if path.exists() else None

    def versions(self, name: str) -> list[str]:
        base = self.root / "releases" / name
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
        path = self.root / "releases" / name / "latest.json"
        return json.loads(path.read_text())["version"] if path.exists() else None

    def _ledger(self, name: str) -> Path:
        return self.root / "ledger" / f"{name}.jsonl"

    def append_event(self, name: str, event: dict[str, Any]) -> None:
        path = self._ledger(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        line = (json.dumps(event, sort_keys=True) + "\n").encode()
        # O_APPEND plus an exclusive lock: one whole line per writer, whatever the interleaving of processes.
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, line)
            os.fsync(fd)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def events(self, name: str) -> list[dict[str, Any]]:
        path = self._ledger(name)
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class S3ReleaseStore(ReleaseStore):
    """The same layout in a bucket, through any S3-compatible endpoint (AWS, MinIO, LocalStack).

    S3 has no append, so the ledger is one object per event under ``ledger/<name>/``, named by the writer's
    clock and a random suffix: concurrent writers create distinct objects and never overwrite each other.
    """

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self.client, self.bucket, self.prefix = client, bucket, prefix.strip("/")

    def _key(self, *parts: str) -> str:
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
        body = self._get(self._key("releases", name, version, MANIFEST))
        return json.loads(body) if body is not None else None

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

    def append_event(self, name: str, event: dict[str, Any]) -> None:
        stamp = event.get("time", "").replace(":", "").replace("-", "")
        key = self._key("ledger", name, f"{stamp}-{uuid.uuid4().hex}.json")
        self.client.put_object(Bucket=self.bucket, Key=key, Body=json.dumps(event, sort_keys=True).encode())

    def events(self, name: str) -> list[dict[str, Any]]:
        keys = sorted(self._list(self._key("ledger", name) + "/"))
        events = [json.loads(self._get(k)) for k in keys]
        return sorted(events, key=lambda e: (e.get("time", ""), e.get("seq", 0)))
