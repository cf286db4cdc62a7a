"""The release unit's whole decision, without Dagster: re-decide every gate, then bundle, publish and record.

``release/assets.py`` only hands this the member artifacts and the stores, and turns what it returns into Dagster
output and metadata. Blocking checks stop downstream steps only within one run, so the gates are decided again
here, with the same function the checks use: materializing the release unit alone can never publish past a
failed gate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from release_assets.artifacts import ArtifactRef, LocalArtifactStore
from release_assets.core.extras import not_installed
from release_assets.core.settings import Settings, get_settings
from release_assets.manifest import ReleaseManifest
from release_assets.models.onnx_parity import release_verdicts as onnx_parity_verdicts
from release_assets.promotion.gates import MemberInputs, consistency_verdicts, member_roles, member_verdicts
from release_assets.promotion.policy import Verdict, release_decision
from release_assets.promotion.weakened import weakened_against_base
from release_assets.provenance.attest import unit_files
from release_assets.provenance.builder import build_record, now
from release_assets.provenance.sbom import sbom_bytes
from release_assets.provenance.signing import UnitSigner, configured_signer
from release_assets.provenance.statements import BuildRecord
from release_assets.record.champion import ChampionView
from release_assets.record.ledger import record_published, replay
from release_assets.release.publish import (
    Attest,
    ByReference,
    build_manifest,
    publish_release,
    report_artifact,
    report_file,
)
from release_assets.release.report_html import REPORT_FILE, Champion
from release_assets.release.store import ReleaseStore


class HeldBack(Exception):
    """The gates hold the release; ``holding`` are the verdicts that do, ``verdicts`` all of them."""

    def __init__(self, release: str, verdicts: list[Verdict], holding: list[Verdict]) -> None:
        self.release, self.verdicts, self.holding = release, verdicts, holding
        listed = "; ".join(f"{v.member}.{v.gate}: {v.reason}" for v in holding)
        super().__init__(f"{release}: held back by {len(holding)} gate(s): {listed}")


@dataclass
class PublishedUnit:
    version: str
    published: bool  # False: this content was already published (nothing new), or nothing was (``evaluated_only``)
    bundle: Path | None  # the local copy in the artifact cache; None when evaluated only
    uri: str | None  # where people find it in the release store; None when evaluated only
    manifest: dict[str, Any]  # the manifest actually published (inside the bundle), or the one it would have
    verdicts: list[Verdict]
    champion: str | None
    weakened_gates: list[str] = field(default_factory=list)
    # Gated and reported, but not published: no bundle written, nothing in the release store, no ledger event.
    evaluated_only: bool = False
    already_published: bool = False  # evaluated only, and this very content is already a published version
    # The release report's cached copy (the bundle's evidence member; evaluated only: rendered for the candidate,
    # bundled nowhere); None when the bundle carries none (written before reports).
    report: Path | None = None


def decide(
    manifest: ReleaseManifest,
    refs_by_key: dict[tuple[str, ...], ArtifactRef],
    cache: LocalArtifactStore,
    releases: ReleaseStore,
) -> list[Verdict]:
    """Every gate of every member, plus the bundle's consistency (each artifact built from the bundled ones)."""

    champion = ChampionView(releases, cache.root, manifest.name)
    verdicts = consistency_verdicts({"/".join(key): ref for key, ref in refs_by_key.items()})
    # Always-on, not a manifest gate: what serving runs (model.onnx) computes what the gates judged (torch).
    # Measured once per model and split (cached), so deciding it again here costs a lookup.
    verdicts += onnx_parity_verdicts(manifest, refs_by_key, cache.root)
    for member in sorted(manifest.gates):
        roles = {role: refs_by_key[tuple(key)] for role, key in member_roles(manifest, member).items()}
        inputs = MemberInputs(refs=roles, store_root=cache.root, champion=champion)
        verdicts += member_verdicts(manifest, member, inputs)
    return verdicts


def release(
    manifest: ReleaseManifest,
    refs: dict[str, ArtifactRef],
    refs_by_key: dict[tuple[str, ...], ArtifactRef],
    *,
    cache: LocalArtifactStore,
    releases: ReleaseStore,
    lineage: dict[str, Any],
    run_id: str,
    project_root: Path | None = None,
    publish: bool = True,
    started_on: str | None = None,
) -> PublishedUnit:
    """Decide, then publish ``refs`` (bundle name -> artifact) as one release unit; raise :class:`HeldBack`.

    The follow-up after publishing (the ledger event) is idempotent, so a run that died half way completes it on
    retry. MLflow is not touched: ``release/registry_sync.py`` registers what the ledger says was published.
    With ``publish=False`` (a pull request's build) everything is decided and reported the same way, but nothing
    is written: no bundle, nothing in the release store, no ledger event.

    A new bundle carries the SBOM of this environment (with the provenance extra) and, with a signing key
    configured, is signed with its attestations beside it (``_attest``); ``started_on``: when the run started,
    for the provenance (default: now).
    """

    if project_root is None:
        project_root = get_settings().project_root
    verdicts = decide(manifest, refs_by_key, cache, releases)
    ok, holding = release_decision(verdicts)
    if not ok:
        raise HeldBack(manifest.name, verdicts, holding)
    weakened, committed_from = weakened_against_base(manifest, project_root)
    lineage = {**lineage, "committed_manifest": committed_from}
    always = frozenset(n for n, m in manifest.members.items() if getattr(m, "asset", None) is not None)
    by_reference = ByReference(get_settings().data_by_reference_above, releases.data_uri, always)
    candidate = build_manifest(manifest.name, refs, verdicts, lineage, weakened, by_reference)
    champion = _champion(releases, manifest.name)
    if not publish:
        report = report_artifact(cache, manifest.name, refs, candidate, champion)
        return PublishedUnit(
            version=candidate["version"],
            published=False,
            bundle=None,
            uri=None,
            manifest=candidate,
            verdicts=verdicts,
            champion=replay(releases.events(manifest.name)).champion,
            weakened_gates=weakened,
            evaluated_only=True,
            already_published=candidate["version"] in releases.versions(manifest.name),
            report=report.path(cache.root, REPORT_FILE),
        )
    settings = get_settings()
    signer = configured_signer(settings)  # a key that cannot be used fails here, before anything is published
    attest = _attest(manifest, signer, project_root, started_on or now(), settings) if signer else None
    bundle, published_manifest, published = publish_release(
        cache,
        releases,
        manifest.name,
        refs,
        candidate,
        report=True,
        champion=champion,
        sbom=sbom_bytes() if not_installed("cyclonedx") is None else None,
        attest=attest,
    )
    version = published_manifest["version"]
    if version not in replay(releases.events(manifest.name)).published:
        record_published(
            releases,
            manifest.name,
            version,
            actor="dagster",
            run_id=run_id,
            weakened_gates=published_manifest.get("weakened_gates"),
        )
    state = replay(releases.events(manifest.name))
    return PublishedUnit(
        version=version,
        published=published,
        bundle=bundle,
        uri=releases.bundle_uri(manifest.name, version),
        manifest=published_manifest,
        verdicts=verdicts,
        champion=state.champion,
        weakened_gates=list(published_manifest.get("weakened_gates") or []),
        report=report_file(cache, manifest.name, published_manifest),
    )


def _attest(
    manifest: ReleaseManifest, signer: UnitSigner, project_root: Path, started_on: str, settings: Settings
) -> Attest:
    """What signs the bundle ``publish_release`` writes: its signature, SLSA provenance and test result."""

    def attest(bundle: Path, bundle_manifest: dict[str, Any]) -> dict[str, bytes]:
        def build() -> BuildRecord:
            return build_record(
                project_root=project_root,
                manifest_source=manifest.source,
                bundle_manifest=bundle_manifest,
                started_on=started_on,
                signer=signer.identity,
                configured_builder=settings.builder_id,
            )

        policy = f"releases/{manifest.name}.yaml" if manifest.source is None else manifest.source.name
        return unit_files(bundle, bundle_manifest, signer, build, policy)

    return attest


def _champion(releases: ReleaseStore, release: str) -> Champion | None:
    """The champion the release report compares with: replayed from the ledger, with its published manifest."""
    version = replay(releases.events(release)).champion
    published = releases.manifest(release, version) if version else None
    return Champion(version, published) if version and published is not None else None
