"""What one asset hands to the next: a reference to content-addressed files in the artifact store.

Assets never pass models or datasets through Dagster's IO layer (that would pickle them); they pass this small
JSON-able reference, and the files live in the store under a folder named by the builder's input fingerprint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from release_assets.hashing import sha256_json


class FileEntry(BaseModel):
    model_config = ConfigDict(frozen=True)
    sha256: str
    size: int


class ArtifactRef(BaseModel):
    """A built artifact: where its files are, what they hash to, and the summary gates are computed from."""

    model_config = ConfigDict(frozen=True)

    release: str
    member: str
    kind: str
    fingerprint: str
    location: str  # folder relative to the artifact store root
    files: dict[str, FileEntry]
    summary: dict[str, Any] = Field(default_factory=dict)
    # Content digests of the upstream assets this was built from, by asset key ("iris/classifier"): lets the
    # release unit refuse a model bundled with a report of another model.
    upstream: dict[str, str] = Field(default_factory=dict)

    @property
    def digest(self) -> str:
        """Content digest of the files alone: the data version downstream assets and releases key on."""
        from release_assets.release.bundle import member_digest

        return member_digest({name: entry.sha256 for name, entry in self.files.items()})

    @property
    def metrics(self) -> dict[str, float]:
        return dict(self.summary.get("metrics", {}))

    def path(self, store_root: Path, name: str = "") -> Path:
        return store_root / self.location / name if name else store_root / self.location


def fingerprint(code_version: str, inputs: dict[str, str], params: Any = None) -> str:
    """Identity of a build: same code, same input content and same params give the same artifact."""
    return sha256_json({"code": code_version, "inputs": inputs, "params": params})[:24]
