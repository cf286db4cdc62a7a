"""What one asset hands to the next, and the content-addressed cache those references point into.

Assets never pass models or datasets through Dagster's IO layer (that would pickle them); they pass this small
JSON-able reference, and the files live in the cache under a folder named by the builder's input fingerprint.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from release_assets.core.hashing import member_digest, sha256_file, sha256_json

REF_FILE = "_artifact.json"


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
        return member_digest({name: entry.sha256 for name, entry in self.files.items()})

    @property
    def metrics(self) -> dict[str, float]:
        return dict(self.summary.get("metrics", {}))

    def path(self, store_root: Path, name: str = "") -> Path:
        return store_root / self.location / name if name else store_root / self.location


def fingerprint(code_version: str, inputs: dict[str, str], params: Any = None) -> str:
    """Identity of a build: same code, same input content and same params give the same artifact."""
    return sha256_json({"code": code_version, "inputs": inputs, "params": params})[:24]


class LocalArtifactStore:
    """The content-addressed build cache: ``artifacts/<release>/<member>/<fingerprint>/`` under ``root``.

    Every write goes to a private temporary folder first and becomes visible with one ``rename``, so a reader (or a
    crashed run) sees a whole artifact or none, and a rebuild of the same fingerprint reuses what is there.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    def artifact_dir(self, release: str, member: str, fingerprint: str) -> Path:
        return self.root / "artifacts" / release / member / fingerprint

    def cached(self, release: str, member: str, fingerprint: str) -> ArtifactRef | None:
        ref_path = self.artifact_dir(release, member, fingerprint) / REF_FILE
        if not ref_path.exists():
            return None
        return ArtifactRef.model_validate_json(ref_path.read_text())

    def find(self, release: str, member: str, digest: str) -> ArtifactRef | None:
        """A built artifact of ``member`` whose content digest is ``digest`` (any fingerprint), if the cache has it:
        how an artifact is reused by what it contains, e.g. the members a held evaluation was built from."""
        for ref_path in sorted((self.root / "artifacts" / release / member).glob(f"*/{REF_FILE}")):
            ref = ArtifactRef.model_validate_json(ref_path.read_text())
            if ref.digest == digest:
                return ref
        return None

    def build(
        self,
        *,
        release: str,
        member: str,
        kind: str,
        fingerprint: str,
        builder: Callable[[Path], dict[str, Any]],
        upstream: dict[str, str] | None = None,
    ) -> tuple[ArtifactRef, bool]:
        """Return the artifact for ``fingerprint``, building it only if the store lacks it.

        ``builder`` writes files into the folder it is given and returns the summary. The second value tells
        whether the artifact was reused.
        """
        existing = self.cached(release, member, fingerprint)
        if existing is not None:
            return existing, True
        final = self.artifact_dir(release, member, fingerprint)
        work = self._scratch()
        try:
            summary = builder(work)
            files = {
                p.relative_to(work).as_posix(): FileEntry(sha256=sha256_file(p), size=p.stat().st_size)
                for p in sorted(work.rglob("*"))
                if p.is_file()
            }
            ref = ArtifactRef(
                release=release,
                member=member,
                kind=kind,
                fingerprint=fingerprint,
                location=final.relative_to(self.root).as_posix(),
                files=files,
                summary=summary,
                upstream=upstream or {},
            )
            (work / REF_FILE).write_text(ref.model_dump_json(indent=2))
            final.parent.mkdir(parents=True, exist_ok=True)
            try:
                work.rename(final)
            except OSError:
                # Another run built the same fingerprint first; its content is identical by construction.
                if not (final / REF_FILE).exists():
                    raise
                return ArtifactRef.model_validate_json((final / REF_FILE).read_text()), True
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return ref, False

    def _scratch(self) -> Path:
        tmp = self.root / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(dir=tmp))
