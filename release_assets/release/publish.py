"""Assemble a release unit from its members' artifacts and publish it atomically.

Each new bundle also carries the release report (``release/report_html.py``) as an evidence member, rendered from
the manifest of the other members, the champion's published manifest and the evidence members' plots.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from release_assets.artifacts import ArtifactRef, LocalArtifactStore
from release_assets.core.atomic import replacing
from release_assets.keys import is_evidence
from release_assets.manifest import installed_kinds
from release_assets.manifest.contracts import offered_interface
from release_assets.promotion.policy import Verdict
from release_assets.provenance.sbom import SBOM_FILE, SBOM_KIND, SBOM_MEMBER
from release_assets.release.bundle import REFERENCE, read_manifest, referenced_files, release_version, write_bundle
from release_assets.release.report_html import (
    REPORT_FILE,
    REPORT_KIND,
    REPORT_MEMBER,
    Champion,
    plot_paths,
    report_bytes,
)
from release_assets.release.store import BUNDLE, ReleaseStore

FORMATS = {
    ".safetensors": "safetensors",
    ".onnx": "onnx",
    ".json": "json",
    ".jsonl": "jsonl",
    ".md": "markdown",
    ".yaml": "yaml",
    ".j2": "jinja2",
    ".txt": "text",
    ".html": "html",
    ".png": "png",
}


def _interface(name: str, ref: ArtifactRef) -> dict[str, Any]:
    offered = offered_interface(name, ref.kind, ref.summary).as_json()
    return offered if len(offered) > 1 else {}  # more than its kind: labels or fields


# Files of rows: what a dataset member (or the evaluation's evidence) holds in bulk, and what a server never reads.
ROW_SUFFIXES = frozenset({".jsonl", ".csv", ".parquet"})
SPLIT_KIND = "split"  # a dataset's split artifact (datasets/assets.py): train, val and test rows


@dataclass(frozen=True)
class ByReference:
    """Which data a release unit holds by reference rather than copying it into the bundle (Settings:
    ``data_by_reference_above``), and where the store keeps it (``data_uri(sha256)``)."""

    above: int  # bytes of a member's row files beyond which they are held by reference
    data_uri: Callable[[str], str]
    always: frozenset[str] = frozenset()  # manifest members whose data is never copied (`asset:` tables)

    def files(self, name: str, ref: ArtifactRef) -> set[str]:
        """The files of bundle member ``name`` held by reference: the row files of a dataset or of evidence,
        when they are big or the member is always held so; everything a model or chain is stays in the bundle."""
        declared = installed_kinds().get(ref.kind)
        data = ref.kind == SPLIT_KIND or (declared is not None and declared.family == "dataset")
        if not data and not is_evidence(name):
            return set()
        rows = {p: e.size for p, e in ref.files.items() if Path(p).suffix in ROW_SUFFIXES and not p.startswith("_")}
        return set(rows) if ref.member in self.always or sum(rows.values()) > self.above else set()


def _member_entry(name: str, ref: ArtifactRef, by_reference: ByReference | None) -> dict[str, Any]:
    held = by_reference.files(name, ref) if by_reference is not None else set()
    files: list[dict[str, Any]] = [
        {
            "path": f"{name}/{path}",
            "sha256": entry.sha256,
            "size": entry.size,
            "format": FORMATS.get(Path(path).suffix, "binary"),
            **(
                {"stored": REFERENCE, "uri": by_reference.data_uri(entry.sha256)}
                if by_reference is not None and path in held
                else {}
            ),
        }
        for path, entry in sorted(ref.files.items())
        if not path.startswith("_")
    ]
    return {
        "kind": ref.kind,
        "role": "evidence" if is_evidence(name) else "artifact",
        "digest": ref.digest,
        "files": files,
        "size": sum(f["size"] for f in files),
        "metrics": ref.metrics,
        "data_version": ref.digest[:16],
        # A model's hyper-parameters, so the registry sync can log them (outside the version, like metrics).
        **({"params": ref.summary["params"]} if "params" in ref.summary else {}),
        # What it offers the members built from it, so a later release's contract gate can tell a label that
        # disappeared from one never emitted (outside the version, like metrics).
        **({"interface": interface} if (interface := _interface(name, ref)) else {}),
        # Which chain file the chain member was built from (chain.yaml, chain.llm.yaml): serving runs that one.
        **({"chain_file": ref.summary.get("chain_file", "chain.yaml")} if ref.kind == "prompt_chain" else {}),
    }


def build_manifest(
    release: str,
    refs: dict[str, ArtifactRef],
    verdicts: list[Verdict],
    lineage: dict[str, Any],
    weakened_gates: list[str] | None = None,
    by_reference: ByReference | None = None,
) -> dict[str, Any]:
    members = {name: _member_entry(name, ref, by_reference) for name, ref in sorted(refs.items())}
    return {
        "release": release,
        "version": release_version(members),
        "members": members,
        "gates": [v.as_dict() for v in verdicts],
        # Gates loosened from the committed manifest for this build (promotion then needs an override).
        "weakened_gates": weakened_gates or [],
        "lineage": lineage,
        # Outside the version digest: the same content published twice keeps one version.
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _cached_member(
    cache: LocalArtifactStore, release: str, member: str, kind: str, filename: str, body: bytes
) -> ArtifactRef:
    """``body`` as the one file of evidence member ``member``, in the build cache under the sha256 of its bytes."""

    def write(out: Path) -> dict[str, Any]:
        (out / filename).write_bytes(body)
        return {}

    fingerprint = hashlib.sha256(body).hexdigest()[:24]
    ref, _ = cache.build(release=release, member=member, kind=kind, fingerprint=fingerprint, builder=write)
    return ref


def report_artifact(
    cache: LocalArtifactStore,
    release: str,
    refs: dict[str, ArtifactRef],
    manifest: dict[str, Any],
    champion: Champion | None,
) -> ArtifactRef:
    """The release report of ``manifest`` (whose members are ``refs``) against ``champion``, in the build cache
    under the sha256 of its bytes; the plots of its evidence members are read from their cached files."""
    plots = {path: _cached_file(cache, refs, path).read_bytes() for path in plot_paths(manifest)}
    html = report_bytes(manifest, champion, plots)
    return _cached_member(cache, release, REPORT_MEMBER, REPORT_KIND, REPORT_FILE, html)


def _with_evidence(
    release: str, refs: dict[str, ArtifactRef], manifest: dict[str, Any], name: str, ref: ArtifactRef
) -> tuple[dict[str, ArtifactRef], dict[str, Any]]:
    """``refs`` and ``manifest`` with ``ref`` added as the evidence member ``name``: the version is unchanged
    (evidence is outside its digest), and so is everything else the manifest says."""
    members = dict(sorted({**manifest["members"], name: _member_entry(name, ref, None)}.items()))
    if release_version(members) != manifest["version"]:  # is_evidence(name) keeps it out
        raise AssertionError(f"{release}: the evidence member {name} changed the version {manifest['version']}")
    return {**refs, name: ref}, {**manifest, "members": members}


def with_report(
    cache: LocalArtifactStore,
    release: str,
    refs: dict[str, ArtifactRef],
    manifest: dict[str, Any],
    champion: Champion | None,
) -> tuple[dict[str, ArtifactRef], dict[str, Any]]:
    """``refs`` and ``manifest`` with the release report added as the evidence member ``REPORT_MEMBER``."""
    return _with_evidence(
        release, refs, manifest, REPORT_MEMBER, report_artifact(cache, release, refs, manifest, champion)
    )


def with_sbom(
    cache: LocalArtifactStore, release: str, refs: dict[str, ArtifactRef], manifest: dict[str, Any], sbom: bytes
) -> tuple[dict[str, ArtifactRef], dict[str, Any]]:
    """``refs`` and ``manifest`` with the CycloneDX SBOM of the building environment as the evidence member
    ``SBOM_MEMBER`` (named by sha256 in the unit's provenance)."""
    ref = _cached_member(cache, release, SBOM_MEMBER, SBOM_KIND, SBOM_FILE, sbom)
    return _with_evidence(release, refs, manifest, SBOM_MEMBER, ref)


def report_file(cache: LocalArtifactStore, release: str, manifest: dict[str, Any]) -> Path | None:
    """The cached copy of the report ``manifest`` carries (None: it carries none, or the cache lost it)."""
    member = manifest["members"].get(REPORT_MEMBER)
    if member is None:
        return None
    entry = next((f for f in member["files"] if f["path"] == f"{REPORT_MEMBER}/{REPORT_FILE}"), None)
    if entry is None:
        return None
    path = cache.artifact_dir(release, REPORT_MEMBER, entry["sha256"][:24]) / REPORT_FILE
    return path if path.is_file() else None


def _cached_file(cache: LocalArtifactStore, refs: dict[str, ArtifactRef], path: str) -> Path:
    name, _, rel = path.partition("/")
    return refs[name].path(cache.root, rel)


# What signs a written bundle: bundle file and its manifest -> the files kept beside it in the store (file name ->
# bytes: the signature and the attestations, ``provenance.attest.unit_files``).
Attest = Callable[[Path, dict[str, Any]], dict[str, bytes]]


def publish_release(
    cache: LocalArtifactStore,
    releases: ReleaseStore,
    release: str,
    refs: dict[str, ArtifactRef],
    manifest: dict,
    *,
    report: bool = False,
    champion: Champion | None = None,
    sbom: bytes | None = None,
    attest: Attest | None = None,
) -> tuple[Path, dict[str, Any], bool]:
    """Write the bundle from the members' cached files, then publish it (bundle, the files beside it, manifest,
    pointer).

    Returns the local bundle (kept under the cache's ``bundles/`` for the registry to log), the manifest actually
    published, and whether the version was new. A bundle written by an earlier, interrupted attempt is reused
    with its own manifest, so the bundle and the published manifest always agree.

    ``report``: a new bundle also carries the release report against ``champion`` (``with_report``); ``sbom``: the
    CycloneDX SBOM of the building environment (``with_sbom``). Both are added only when a bundle is written: a
    version whose bundle exists keeps what it has. ``attest``: signs the bundle; what it returns is stored beside
    the bundle before the manifest makes the version visible (None: published unsigned).
    """
    version = manifest["version"]
    local_bundle = cache.root / "bundles" / release / version / BUNDLE
    if local_bundle.exists():
        manifest = read_manifest(local_bundle)
    else:
        if sbom is not None:
            refs, manifest = with_sbom(cache, release, refs, manifest, sbom)
        if report:  # last: the report lists every other member, the SBOM included
            refs, manifest = with_report(cache, release, refs, manifest, champion)
    held = {f["path"] for f in referenced_files(manifest)}

    if not local_bundle.exists():
        entries = {
            f"{name}/{path}": refs[name].path(cache.root, path)
            for name in refs
            for path in refs[name].files
            if not path.startswith("_") and f"{name}/{path}" not in held
        }
        with replacing(local_bundle) as tmp:
            write_bundle(entries, manifest, tmp)
    if releases.is_published(release, version):
        return local_bundle, manifest, False
    beside = attest(local_bundle, manifest) if attest is not None else None
    # The data held by reference goes to the store before the bundle that names it (ReleaseStore.publish).
    data = {f["sha256"]: _cached_file(cache, refs, f["path"]) for f in referenced_files(manifest)}
    published = releases.publish(release, version, local_bundle, manifest, data=data, beside=beside)
    return local_bundle, manifest, published
