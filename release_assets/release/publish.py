"""Assemble a release unit from its members' artifacts and publish it atomically."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from release_assets.artifacts import ArtifactRef
from release_assets.keys import is_evidence
from release_assets.promotion.policy import Verdict
from release_assets.release.bundle import MANIFEST, release_version, write_bundle
from release_assets.resources.artifact_store import LocalArtifactStore

BUNDLE = "bundle.tar.gz"
FORMATS = {
    ".safetensors": "safetensors",
    ".json": "json",
    ".jsonl": "jsonl",
    ".md": "markdown",
    ".yaml": "yaml",
    ".j2": "jinja2",
    ".txt": "text",
}


def git_commit(project_root: Path) -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=project_root, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()

    try:
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain"))}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def build_manifest(
    release: str,
    refs: dict[str, ArtifactRef],
    verdicts: list[Verdict],
    lineage: dict[str, Any],
) -> dict[str, Any]:
    members = {}
    for name, ref in sorted(refs.items()):
        files = [
            {
                "path": f"{name}/{path}",
                "sha256": entry.sha256,
                "size": entry.size,
                "format": FORMATS.get(Path(path).suffix, "binary"),
            }
            for path, entry in sorted(ref.files.items())
            if not path.startswith("_")
        ]
        members[name] = {
            "kind": ref.kind,
            "role": "evidence" if is_evidence(name) else "artifact",
            "digest": ref.digest,
            "files": files,
            "size": sum(f["size"] for f in files),
            "metrics": ref.metrics,
            "data_version": ref.digest[:16],
        }
    return {
        "release": release,
        "version": release_version(members),
        "members": members,
        "gates": [v.as_dict() for v in verdicts],
        "lineage": lineage,
        # Outside the version digest: the same content published twice keeps one version.
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def publish_release(
    store: LocalArtifactStore, release: str, refs: dict[str, ArtifactRef], manifest: dict[str, Any]
) -> tuple[Path, bool]:
    """Publish ``bundle.tar.gz`` + ``manifest.json`` under ``releases/<name>/<version>/`` in one rename."""

    def write(folder: Path) -> None:
        entries = {
            f"{name}/{path}": refs[name].path(store.root, path)
            for name in refs
            for path in refs[name].files
            if not path.startswith("_")
        }
        write_bundle(entries, manifest, folder / BUNDLE)
        (folder / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))

    return store.publish(release, manifest["version"], write)
