"""Real, verifiable release bundles of one tiny member, for tests of what reads the store (promote, verify)."""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

from release_assets.release.bundle import member_digest, release_version, write_bundle
from release_assets.release.store import ReleaseStore

PASSED = [{"member": "m", "gate": "accuracy", "status": "passed", "severity": "block", "reason": "ok"}]


def unit_manifest(
    release: str,
    content: str,
    gates: list[dict] | None = None,
    member: str = "m",
    kind: str = "model",
    **extra: Any,
) -> dict[str, Any]:
    """One member ``member`` of ``kind`` holding ``<member>/model.json`` = ``content``."""
    sha = hashlib.sha256(content.encode()).hexdigest()
    members = {
        member: {
            "kind": kind,
            "role": "artifact",
            "digest": member_digest({"model.json": sha}),
            "files": [{"path": f"{member}/model.json", "sha256": sha, "size": len(content.encode()), "format": "json"}],
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


def publish_unit(
    store: ReleaseStore,
    release: str,
    content: str,
    gates: list[dict] | None = None,
    member: str = "m",
    kind: str = "model",
    **extra,
) -> str:
    """Write and publish a one-member bundle whose version follows from ``content``; return the version."""
    manifest = unit_manifest(release, content, gates, member, kind, **extra)
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "model.json"
        model.write_text(content)
        bundle = Path(tmp) / "bundle.tar.gz"
        write_bundle({f"{member}/model.json": model}, manifest, bundle)
        store.publish(release, manifest["version"], bundle, manifest)
    return manifest["version"]


def publish_classifier(store: ReleaseStore, release: str, model: dict[str, Any]) -> str:
    """Publish a servable ``tabular_classifier`` (models/tabular.py's JSON logistic regression) written by hand,
    in milliseconds instead of a release run; return its version."""
    content = json.dumps({"format": "release_assets.logistic_regression/v1", **model}, indent=1, sort_keys=True)
    gates = [{**gate, "member": "classifier"} for gate in PASSED]
    return publish_unit(store, release, content, gates, member="classifier", kind="tabular_classifier")
