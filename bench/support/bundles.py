"""Real, verifiable release bundles of one tiny member, for tests of what reads the store (promote, verify)."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Any

from release_assets.release.bundle import member_digest, release_version, write_bundle
from release_assets.release.store import ReleaseStore

PASSED = [{"member": "m", "gate": "accuracy", "status": "passed", "severity": "block", "reason": "ok"}]


def unit_manifest(release: str, content: str, gates: list[dict] | None = None, **extra: Any) -> dict[str, Any]:
    sha = hashlib.sha256(content.encode()).hexdigest()
    members = {
        "m": {
            "kind": "model",
            "role": "artifact",
            "digest": member_digest({"model.json": sha}),
            "files": [{"path": "m/model.json", "sha256": sha, "size": len(content.encode()), "format": "json"}],
        }
    }
    return {
        "release": release,
        "version": release_version(members),
        "members": members,
        "gates": PASSED if gates is None else gates,
        **extra,
    }


def unit_version(release: str, content: str) -> str:
    return unit_manifest(release, content)["version"]


def publish_unit(store: ReleaseStore, release: str, content: str, gates: list[dict] | None = None, **extra) -> str:
    """Write and publish a one-member bundle whose version follows from ``content``; return the version."""
    manifest = unit_manifest(release, content, gates, **extra)
    with tempfile.TemporaryDirectory() as tmp:
        member = Path(tmp) / "model.json"
        member.write_text(content)
        bundle = Path(tmp) / "bundle.tar.gz"
        write_bundle({"m/model.json": member}, manifest, bundle)
        store.publish(release, manifest["version"], bundle, manifest)
    return manifest["version"]
