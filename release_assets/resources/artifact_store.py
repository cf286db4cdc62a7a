"""The artifact store: content-addressed build outputs, published release units, and their atomic writes.

Every write goes to a private temporary folder first and becomes visible with one ``rename``, so a reader (or a
crashed run) sees a whole artifact or none, and a rebuild of the same fingerprint reuses what is there.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg

from release_assets.artifacts import ArtifactRef, FileEntry
from release_assets.hashing import sha256_file

REF_FILE = "_artifact.json"


class LocalArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    # -- build outputs ---------------------------------------------------------------------------------------
    def _artifact_dir(self, release: str, member: str, fingerprint: str) -> Path:
        return self.root / "artifacts" / release / member / fingerprint

    def cached(self, release: str, member: str, fingerprint: str) -> ArtifactRef | None:
        ref_path = self._artifact_dir(release, member, fingerprint) / REF_FILE
        if not ref_path.exists():
            return None
        return ArtifactRef.model_validate_json(ref_path.read_text())

    def build(
        self,
        *,
        release: str,
        member: str,
        kind: str,
        fingerprint: str,
        builder: Callable[[Path], dict[str, Any]],
    ) -> tuple[ArtifactRef, bool]:
        """Return the artifact for ``fingerprint``, building it only if the store lacks it.

        ``builder`` writes files into the folder it is given and returns the summary. The second value tells
        whether the artifact was reused.
        """
        existing = self.cached(release, member, fingerprint)
        if existing is not None:
            return existing, True
        final = self._artifact_dir(release, member, fingerprint)
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

    # -- published releases ----------------------------------------------------------------------------------
    def release_dir(self, name: str, version: str) -> Path:
        return self.root / "releases" / name / version

    def is_published(self, name: str, version: str) -> bool:
        return (self.release_dir(name, version) / "manifest.json").exists()

    def publish(self, name: str, version: str, write: Callable[[Path], None]) -> tuple[Path, bool]:
        """Publish a release folder atomically; an already published version is left untouched.

        ``write`` fills a scratch folder with ``bundle.tar.gz`` and ``manifest.json``; the folder appears under
        ``releases/<name>/<version>/`` by one rename, then the ``latest`` pointer moves by one replace.
        Returns the folder and whether anything new was published.
        """
        final = self.release_dir(name, version)
        if self.is_published(name, version):
            return final, False
        work = self._scratch()
        try:
            write(work)
            final.parent.mkdir(parents=True, exist_ok=True)
            if final.exists():  # a half-written leftover can only come from outside this class; keep it aside
                final.rename(final.with_name(f"{version}.broken-{os.getpid()}"))
            work.rename(final)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        self._write_pointer(name, {"version": version})
        return final, True

    def _write_pointer(self, name: str, value: dict[str, Any]) -> None:
        pointer = self.root / "releases" / name / "latest.json"
        tmp = pointer.with_name(f".latest.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(value, indent=2))
        os.replace(tmp, pointer)

    def latest_version(self, name: str) -> str | None:
        pointer = self.root / "releases" / name / "latest.json"
        return json.loads(pointer.read_text())["version"] if pointer.exists() else None

    def published_versions(self, name: str) -> list[str]:
        base = self.root / "releases" / name
        if not base.exists():
            return []
        return sorted(p.name for p in base.iterdir() if (p / "manifest.json").exists())


class ArtifactStore(dg.ConfigurableResource):
    """Where build outputs and release units live (a local folder; the S3 implementation comes with #4)."""

    root: str = ".release_store"

    def local(self) -> LocalArtifactStore:
        return LocalArtifactStore(Path(self.root))


def build_output(
    context: dg.AssetExecutionContext,
    store: LocalArtifactStore,
    *,
    release: str,
    member: str,
    kind: str,
    inputs: dict[str, ArtifactRef],
    builder: Callable[[Path], dict[str, Any]],
    params: Any = None,
    metadata: Callable[[ArtifactRef], dict[str, Any]] | None = None,
) -> dg.Output:
    """Build (or reuse) an asset's artifact, keyed by its code version and its inputs' content digests."""
    from release_assets.artifacts import fingerprint

    code = context.assets_def.code_versions_by_key.get(context.asset_key) or "unversioned"
    fp = fingerprint(code, {name: ref.digest for name, ref in sorted(inputs.items())}, params)
    ref, reused = store.build(release=release, member=member, kind=kind, fingerprint=fp, builder=builder)
    context.log.info(f"{'reused' if reused else 'built'} {release}/{member} at {ref.location} ({len(ref.files)} files)")
    meta: dict[str, Any] = {
        "reused": reused,
        "fingerprint": fp,
        "path": dg.MetadataValue.path(str(ref.path(store.root))),
        "digest": ref.digest[:16],
        **{k: float(v) for k, v in ref.metrics.items()},
    }
    if metadata:
        meta.update(metadata(ref))
    return dg.Output(ref, data_version=dg.DataVersion(ref.digest[:16]), metadata=meta)
