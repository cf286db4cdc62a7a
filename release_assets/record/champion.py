"""Read the champion release unit's members: from the ledger and the release store, never from the candidate.

A known failure of peer tools is a regression gate that compares the candidate with itself. Here the champion's
files are located through its own published manifest (member fingerprints) and, when the local build cache lacks
them, extracted from its verified bundle.
"""

from __future__ import annotations

import tempfile
from functools import cached_property
from pathlib import Path
from typing import Any

from release_assets.artifacts import LocalArtifactStore
from release_assets.core.hashing import sha256_file
from release_assets.record.ledger import replay
from release_assets.release.bundle import extract_bundle, is_referenced
from release_assets.release.store import ReleaseStore


class ChampionView:
    def __init__(self, releases: ReleaseStore, cache_root: Path, release: str) -> None:
        self.releases, self.cache_root, self.release = releases, Path(cache_root), release
        self._extracted: Path | None = None

    @cached_property
    def version(self) -> str | None:
        return replay(self.releases.events(self.release)).champion

    @cached_property
    def manifest(self) -> dict[str, Any] | None:
        return self.releases.manifest(self.release, self.version) if self.version else None

    def member(self, name: str) -> dict[str, Any] | None:
        return (self.manifest or {}).get("members", {}).get(name)

    def member_dir(self, name: str, data: bool = False) -> Path | None:
        """A folder holding the champion's files of bundle member ``name`` (cache hit or verified extraction);
        ``data``: with the files its bundle holds by reference too, fetched from the store by their sha256."""
        entry, manifest = self.member(name), self.manifest
        if entry is None or manifest is None or self.version is None:
            return None  # (an entry comes from a manifest, which exists only with a version)
        fingerprint = manifest["lineage"]["fingerprints"].get(name)
        cached = LocalArtifactStore(self.cache_root).artifact_dir(self.release, name, str(fingerprint))
        # The cache is trusted only file by file against the champion's recorded digests: a rebuilt cache entry
        # (training is not always byte-reproducible) must never stand in for the champion.
        if fingerprint and all(_matches(cached / f["path"].split("/", 1)[1], f["sha256"]) for f in entry["files"]):
            return cached
        if self._extracted is None:
            # Removed with this view (it lives for one check or one release decision).
            self._tmp = tempfile.TemporaryDirectory(prefix=f"champion-{self.release}-")
            self._extracted = Path(self._tmp.name)
            bundle = self.releases.fetch_bundle(self.release, self.version, self._extracted / "bundle.tar.gz")
            extract_bundle(bundle, self._extracted / "files")
        if data:
            for f in entry["files"]:
                dest = self._extracted / "files" / f["path"]
                if is_referenced(f) and not dest.exists():
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    self.releases.fetch_data(f["sha256"], dest)  # checked against its sha256 on the way
        return self._extracted / "files" / name


def _matches(path: Path, sha256: str) -> bool:
    return path.exists() and sha256_file(path) == sha256
