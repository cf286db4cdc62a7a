"""Release manifests (member roles, the version) and publishing (including resuming an interrupted attempt)."""

from __future__ import annotations

import hashlib

import pytest

from release_assets.artifacts import ArtifactRef, LocalArtifactStore
from release_assets.promotion.policy import Verdict
from release_assets.release.bundle import read_manifest, release_version, verify_bundle
from release_assets.release.publish import build_manifest, publish_release
from release_assets.release.store import LocalReleaseStore

RELEASE = "helpdesk"


def artifact(cache: LocalArtifactStore, member: str, files: dict[str, str], kind: str = "model") -> ArtifactRef:
    def builder(out):
        for name, text in files.items():
            (out / name).write_text(text)
        return {"metrics": {"accuracy": 0.9}}

    # The fingerprint only has to differ between contents here (the cache reuses a folder by fingerprint).
    fingerprint = hashlib.sha256(repr(sorted(files.items())).encode()).hexdigest()[:24]
    ref, _ = cache.build(release=RELEASE, member=member, kind=kind, fingerprint=fingerprint, builder=builder)
    return ref


@pytest.fixture
def cache(tmp_path) -> LocalArtifactStore:
    return LocalArtifactStore(tmp_path / "cache")


@pytest.fixture
def refs(cache) -> dict[str, ArtifactRef]:
    return {
        "intent_model": artifact(cache, "intent_model", {"model.json": '{"w": 1}', "weights.bin": "xx"}),
        "intent_model_report": artifact(cache, "intent_model_report", {"report.md": "p95 12 ms"}, kind="report"),
        "chain": artifact(cache, "chain", {"chain.yaml": "steps: []"}, kind="chain"),
    }


def manifest_of(refs, verdicts=()):
    return build_manifest(RELEASE, refs, list(verdicts), {"git": {"commit": "abc"}})


def test_members_get_roles_files_and_formats(refs):
    m = manifest_of(refs)
    assert m["release"] == RELEASE
    assert {n: v["role"] for n, v in m["members"].items()} == {
        "chain": "artifact",
        "intent_model": "artifact",
        "intent_model_report": "evidence",
    }
    model = m["members"]["intent_model"]
    assert [(f["path"], f["format"]) for f in model["files"]] == [
        ("intent_model/model.json", "json"),
        ("intent_model/weights.bin", "binary"),
    ]
    assert model["digest"] == refs["intent_model"].digest and model["size"] == len('{"w": 1}') + 2
    assert model["metrics"] == {"accuracy": 0.9}
    assert [f["path"] for f in m["members"]["chain"]["files"]] == ["chain/chain.yaml"]
    assert m["version"] == release_version(m["members"])


def test_gates_and_lineage_are_recorded(refs):
    verdict = Verdict("intent_model", "accuracy", "passed", "0.9 >= 0.8", 0.9, {"min": 0.8, "max": None})
    m = build_manifest(RELEASE, refs, [verdict], {"git": {"commit": "abc"}}, weakened_gates=["intent_model.p95_ms"])
    assert m["gates"] == [verdict.as_dict()]
    assert m["weakened_gates"] == ["intent_model.p95_ms"]
    assert m["lineage"] == {"git": {"commit": "abc"}}


def test_an_evidence_member_does_not_change_the_version(cache, refs):
    base = manifest_of(refs)["version"]
    remeasured = {**refs, "intent_model_report": artifact(cache, "intent_model_report", {"report.md": "p95 14 ms"})}
    assert manifest_of(remeasured)["version"] == base
    without_report = {k: v for k, v in refs.items() if k != "intent_model_report"}
    assert manifest_of(without_report)["version"] == base


def test_an_artifact_member_changes_the_version(cache, refs):
    retrained = {**refs, "intent_model": artifact(cache, "intent_model", {"model.json": '{"w": 2}'})}
    assert manifest_of(retrained)["version"] != manifest_of(refs)["version"]


def test_publish_writes_a_verifiable_bundle_and_publishes_it_once(tmp_path, cache, refs):
    releases = LocalReleaseStore(tmp_path / "store")
    manifest = manifest_of(refs)
    bundle, published_manifest, new = publish_release(cache, releases, RELEASE, refs, manifest)
    assert new and published_manifest == manifest
    assert bundle == cache.root / "bundles" / RELEASE / manifest["version"] / "bundle.tar.gz"
    assert verify_bundle(bundle) == manifest
    assert releases.latest(RELEASE) == manifest["version"]
    assert releases.manifest(RELEASE, manifest["version"]) == manifest
    # The same content again: the version exists, nothing is republished.
    assert publish_release(cache, releases, RELEASE, refs, manifest_of(refs))[2] is False


class CrashBeforeManifest(LocalReleaseStore):
    def _put_manifest(self, name, version, manifest):
        raise KeyboardInterrupt("killed between the bundle and the manifest")


def test_an_interrupted_attempts_bundle_is_reused_with_its_own_manifest(tmp_path, cache, refs):
    first = manifest_of(refs)
    with pytest.raises(KeyboardInterrupt):
        publish_release(cache, CrashBeforeManifest(tmp_path / "store"), RELEASE, refs, first)
    bundle = cache.root / "bundles" / RELEASE / first["version"] / "bundle.tar.gz"
    written = bundle.read_bytes()

    # The retry builds a manifest that differs outside the version (a later created_at).
    retry = {**manifest_of(refs), "created_at": "2099-01-01T00:00:00+00:00"}
    assert retry["version"] == first["version"] and retry != first
    releases = LocalReleaseStore(tmp_path / "store")
    out, published_manifest, new = publish_release(cache, releases, RELEASE, refs, retry)
    assert new and out == bundle and bundle.read_bytes() == written
    # Bundle and published manifest agree: both are the first attempt's.
    assert published_manifest == first == read_manifest(bundle)
    assert releases.manifest(RELEASE, first["version"]) == first
