"""Who built a release unit and with what, as the SLSA provenance records it: the builder (a GitHub Actions run
when there is one), the release manifest file and the dependency lock by sha256, the SBOM's digest, the times."""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from release_assets.core.hashing import sha256_file
from release_assets.provenance.sbom import SBOM_PATH
from release_assets.provenance.statements import BuildRecord

LOCK = "requirements.lock"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def builder_id(configured: str | None, environ: dict[str, str] | None = None) -> str:
    """``configured`` (RELEASE_ASSETS_BUILDER_ID), else the GitHub Actions run building it, else this host."""
    env = os.environ if environ is None else environ
    if configured:
        return configured
    if env.get("GITHUB_ACTIONS") == "true" and env.get("GITHUB_RUN_ID"):
        server = env.get("GITHUB_SERVER_URL", "https://github.com")
        return f"{server}/{env.get('GITHUB_REPOSITORY', '')}/actions/runs/{env['GITHUB_RUN_ID']}"
    return f"release-assets://{platform.node() or 'localhost'}"


def _file(project_root: Path, path: Path | None) -> dict[str, str] | None:
    if path is None or not path.is_file():
        return None
    shown = path.relative_to(project_root) if path.is_relative_to(project_root) else path
    return {"path": shown.as_posix(), "sha256": sha256_file(path)}


def build_record(
    *,
    project_root: Path,
    manifest_source: Path | None,
    bundle_manifest: dict[str, Any],
    started_on: str,
    signer: str,
    configured_builder: str | None,
) -> BuildRecord:
    """The record of the build that wrote ``bundle_manifest``; its SBOM (when it carries one) is named by the
    sha256 the manifest gives the file."""
    sbom = next(
        (
            {"path": f["path"], "sha256": f["sha256"]}
            for m in bundle_manifest["members"].values()
            for f in m["files"]
            if f["path"] == SBOM_PATH
        ),
        None,
    )
    lock = project_root / LOCK
    try:
        ours = metadata.version("release_assets")
    except metadata.PackageNotFoundError:  # run from a checkout without installing it
        ours = "unknown"
    return BuildRecord(
        builder_id=builder_id(configured_builder),
        started_on=started_on,
        finished_on=now(),
        signer=signer,
        manifest_file=_file(project_root, manifest_source),
        lock_sha256=sha256_file(lock) if lock.is_file() else None,
        sbom=sbom,
        builder_version={"release_assets": ours, "python": platform.python_version()},
    )
